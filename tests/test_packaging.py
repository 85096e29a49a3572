"""The project's own files agree with each other: dependency lists, README and CI."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_same_runtime_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    deps = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_part = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    conda = {_name(d): d.replace(" ", "") for d in deps if _name(d) not in {"python", "pip"}}
    pypi = {_name(d): d.replace(" ", "") for d in project["dependencies"]}
    assert conda == pypi
    assert "python>=3.11" in deps
    assert pip_part == [["-e ."]]  # the package itself is installed with pip


def test_named_dependencies_are_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_name(d) for d in project["dependencies"]}
    test = {_name(d) for d in project["optional-dependencies"]["test"]}
    assert {"jupyterlab", "ipywidgets", "bqplot", "websockets", "nest-asyncio", "duckdb", "pandas", "numpy",
            "statsmodels", "voila", "papermill"} <= runtime
    assert {"pytest", "nbval", "hypothesis", "playwright"} <= test


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, flags=re.S)
    assert len(commands) >= 2, "README must open with the install-and-run and the test commands"
    test_cmd = commands[1].strip()
    assert f'TEST_COMMAND=\'{test_cmd}\'' in ci


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "statarb_kit.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "record" in out.stdout


def test_no_asyncio_wait_for_in_the_package():
    """On Python 3.11 asyncio.wait_for can swallow a cancellation that arrives as the awaited
    thing completes (CPython gh-86296): Session.stop() then hung about 1 run in 3. Timeouts use
    ``asyncio.timeout`` instead; this keeps wait_for from coming back."""
    calls = [f"{path.relative_to(ROOT)}:{n}" for path in sorted((ROOT / "statarb_kit").rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\bwait_for\(", line.split("#")[0])]
    assert calls == []


def test_statistics_import_light_and_backtests_do_not_import_the_app():
    """``import statarb_kit.analytics`` (or the scan's statistics) loads no DuckDB, websockets or
    httpx; the backtest package does not load the app (an import pointing up)."""
    code = ("import sys, statarb_kit.analytics, statarb_kit.scan.engle_granger; "
            "print(sorted(m for m in ('duckdb', 'websockets', 'httpx') if m in sys.modules)); "
            "import statarb_kit.backtest; print('statarb_kit.app' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "False"


def test_the_live_client_is_loaded_only_by_a_live_source():
    """The CLI, a Session and the pages' settings load neither the live client nor its WebSocket
    library (picows) until a live source is built."""
    code = ("import sys, statarb_kit.cli.main, statarb_kit.session, statarb_kit.app; "
            "print(sorted(m for m in ('picows', 'statarb_kit.exchange.binance.live') if m in sys.modules)); "
            "from statarb_kit.sources.options import live_source; "
            "from statarb_kit.exchange.binance.live import BinanceLive; print('picows' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "True"


def test_a_built_wheel_holds_every_module_notebook_and_template(tmp_path):
    """``pip install .`` (or the package from an index) gets every file the clone has: each module
    under statarb_kit/ (packages are discovered, never listed by hand: a hand list once left out
    statarb_kit.monitor), the shipped notebooks and the Voila template. Built from a copy of the
    tree, as a release would be."""
    import shutil
    import zipfile

    src = tmp_path / "src"
    shutil.copytree(ROOT / "statarb_kit", src / "statarb_kit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "notebooks", src / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for name in ("pyproject.toml", "setup.py", "setup.cfg", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, capture_output=True, text=True)
    (wheel,) = (tmp_path / "dist").glob("statarb_kit-*.whl")
    held = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("statarb_kit/")}
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "statarb_kit").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    on_disk |= {f"statarb_kit/notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert sorted(on_disk - held) == [] and sorted(held - on_disk) == []
    assert "statarb_kit/monitor/service.py" in held


def test_the_package_imports_have_no_cycle():
    """Every import of every module (at the top and inside functions; not those only for type
    checkers) as a graph of the package's modules: a cycle (a module needing one that needs it)
    fails, with its modules named."""
    import ast

    pkg = ROOT / "statarb_kit"
    mods = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in pkg.rglob("*.py")}

    def targets(name: str, node: ast.Import | ast.ImportFrom) -> set[str]:
        if isinstance(node, ast.Import):
            return {a.name for a in node.names if a.name in mods}
        here = name if mods[name].name == "__init__.py" else name.rsplit(".", 1)[0]
        base = here.split(".")[: len(here.split(".")) - node.level + 1] if node.level else []
        mod = ".".join(base + ([node.module] if node.module else []))
        return {f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names} & set(mods)

    def imports(name: str, node: ast.AST) -> set[str]:
        out: set[str] = set()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # for type checkers only: never imported at run time
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out |= targets(name, child)
            out |= imports(name, child)
        return out - {name}

    graph = {name: imports(name, ast.parse(path.read_text())) for name, path in mods.items()}
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = 2
        path.pop()
        return None

    for v in sorted(graph):
        if v not in state:
            cycle = visit(v)
            assert cycle is None, " -> ".join(cycle)
    assert len(graph) > 90 and graph["statarb_kit.session"]  # the walk saw the package
