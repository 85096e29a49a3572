"""What a study measured, read back from its JSON (``statarb study --json``) to stand beside a
scan's q-values: the lift of the scan's method on that data, and the method with the best lift."""

from __future__ import annotations

import math
from pathlib import Path

import orjson

from ..errors import InvalidParameter


def read_study(path: str | Path) -> dict:
    """A study's JSON; one clear error when it is missing or not a study's."""
    p = Path(path)
    try:
        data = orjson.loads(p.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise InvalidParameter(f"--study {p}: not a readable study JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("methods"), list) or "settings" not in data:
        raise InvalidParameter(f"--study {p}: not written by `statarb study --json`")
    return data


def _fmt(m: dict) -> str:
    lo, hi = (m.get("lift_ci") or [None, None])[:2]
    ci = f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
    hit, base = m.get("hit_rate"), m.get("base_rate")
    rates = f" (hit rate {hit:.1%} against {base:.1%} for every pair tested)" if hit is not None and base else ""
    return f"lift {m['lift']:.2f}{ci}{rates}"


def best_method(study: dict) -> str | None:
    """The method with the highest measured lift in ``study`` (None: none measured)."""
    rows = [m for m in study["methods"] if m.get("lift") is not None and math.isfinite(m["lift"])]
    return max(rows, key=lambda m: m["lift"])["method"] if rows else None


def lift_note(study: dict | None, method: str = "engle_granger") -> str:
    """One or two lines: the measured lift of ``method`` (1: selections hold out of sample no more
    often than any pair tested), the best method by lift, or that nothing was measured."""
    if study is None:
        return ("no lift measured on this data: q-values assume the test's null distribution holds; "
                "`statarb study` measures which selection holds out of sample (pass its --json FILE as --study)")
    s = study["settings"]
    where = (f"{s.get('periods')} periods of {s.get('formation')} formation / {s.get('trading')} trading, "
             f"{s.get('symbols')} symbols")
    rows = {m["method"]: m for m in study["methods"] if m.get("lift") is not None and math.isfinite(m["lift"])}
    mine = rows.get(method)
    line = (f"measured by the study ({where}): {method} {_fmt(mine)}" if mine else
            f"the study ({where}) has no lift for {method}")
    if rows:
        best = rows[best_method(study)]
        line += (f"; best measured: {best['method']} {_fmt(best)}" if best["method"] != method
                 else "; the best of the methods measured")
    return line
