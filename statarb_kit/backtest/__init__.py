"""Backtests of pair alert rules: signal frames, a vectorized engine (and its basket form), data
loading and sweeps."""

from .basket import BasketResult, basket_backtest
from .data import DataSpec, PairBars, backtest_bars, bars_from_files, bars_from_store, bars_synthetic
from .engine import BacktestResult, Metrics, backtest, bar_seconds, evaluate, run_backtest
from .frame import SignalFrame, signal_frame
from .params import BacktestParams, expand_grid, parse_grid_spec

__all__ = [
    "BacktestParams",
    "BacktestResult",
    "BasketResult",
    "DataSpec",
    "Metrics",
    "PairBars",
    "SignalFrame",
    "backtest",
    "backtest_bars",
    "basket_backtest",
    "bar_seconds",
    "bars_from_files",
    "bars_from_store",
    "bars_synthetic",
    "evaluate",
    "expand_grid",
    "parse_grid_spec",
    "run_backtest",
    "signal_frame",
]
