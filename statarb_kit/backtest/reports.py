"""Readable reports: the backtest notebook executed by papermill for chosen combinations."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from ..resources import notebook_path
from .data import DataSpec
from .params import BacktestParams

log = logging.getLogger(__name__)

NOTEBOOK = "backtest.ipynb"


def notebook_parameters(data: DataSpec, params: BacktestParams, metrics_path: str | None = None) -> dict:
    """The backtest notebook's parameters for ``params`` on ``data``."""
    return {**data.as_dict(), **params.as_dict(), "metrics_path": metrics_path}


def render_report(data: DataSpec, params: BacktestParams, out_dir: str | Path, name: str,
                  kernel: str | None = None) -> tuple[Path, Path]:
    """Execute the backtest notebook for one combination into ``out_dir/name.ipynb``; its metrics
    row goes to ``out_dir/name.json``. Returns both paths. Raises papermill's
    PapermillExecutionError (naming the failing cell) if the notebook fails."""
    import papermill as pm  # papermill and its nbclient stack are only needed for reports

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    data = replace(data, db=str(Path(data.db).resolve()) if data.db else None,  # the notebook runs in out_dir
                   files=tuple(str(Path(f).resolve()) for f in data.files) if data.files else None)
    report, metrics = out_dir / f"{name}.ipynb", out_dir / f"{name}.json"
    pm.execute_notebook(str(notebook_path(NOTEBOOK)), str(report),
                        parameters=notebook_parameters(data, params, str(metrics)),
                        kernel_name=kernel, progress_bar=False, cwd=str(out_dir))
    log.info("report %s", report)
    return report, metrics
