"""Grids of a rule's parameters (the parameters themselves are ``statarb_kit.rule.Rule``)."""

from __future__ import annotations

import itertools
import math
from typing import Any

from ..errors import InvalidParameter
from ..rule import PARAM_NAMES, Rule, check_type

#: A backtest's parameters are the rule's (``statarb_kit.rule``): one vocabulary, one validation.
BacktestParams = Rule


def expand_grid(grid: dict[str, list], base: BacktestParams | None = None) -> list[BacktestParams]:
    """Every combination of ``grid`` values over ``base``; invalid combinations (say z_exit >=
    z_entry) are left out, unknown names raise."""
    base = base or BacktestParams()
    unknown = sorted(set(grid) - set(PARAM_NAMES))
    if unknown:
        raise InvalidParameter(f"unknown backtest parameter(s) {unknown}; known: {', '.join(PARAM_NAMES)}")
    names = list(grid)
    out = []
    for values in itertools.product(*(grid[n] for n in names)):
        try:
            out.append(base.with_(**dict(zip(names, values))))
        except InvalidParameter:
            continue
    return out


def parse_grid_spec(spec: str) -> tuple[str, list]:
    """``name=v1,v2,...`` or ``name=start:stop:step`` (stop included) into (name, values).
    Values become int, float, bool or None ("none") as written."""
    if "=" not in spec:
        raise InvalidParameter(f"grid spec {spec!r}: use name=v1,v2 or name=start:stop:step")
    name, text = (s.strip() for s in spec.split("=", 1))
    if name not in PARAM_NAMES:
        raise InvalidParameter(f"unknown backtest parameter {name!r}; known: {', '.join(PARAM_NAMES)}")
    if text.count(":") == 2:
        start, stop, step = (_value(v) for v in text.split(":"))
        if not all(isinstance(v, (int, float)) for v in (start, stop, step)) or step <= 0:
            raise InvalidParameter(f"grid spec {spec!r}: start:stop:step needs numbers and step > 0")
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        values = [start + i * step for i in range(max(count, 0))]
        if all(isinstance(v, int) for v in (start, stop, step)):
            values = [int(v) for v in values]
        else:
            values = [round(float(v), 10) for v in values]
    else:
        values = [_value(v) for v in text.split(",") if v.strip()]
    if not values:
        raise InvalidParameter(f"grid spec {spec!r} has no values")
    for v in values:
        check_type(name, v)
    return name, values


def _value(text: str) -> Any:
    t = text.strip()
    low = t.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return t
