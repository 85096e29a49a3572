"""Pure statistics of a pair: arrays in, frozen results out. No I/O, asyncio or widgets."""

from .align import AlignedPair, align_pair
from .hedge import HedgeFit, KalmanParams, hedge_path, ols_hedge, rolling_ols
from .signals import PairFrame, PairParams, log_returns, pair_frame, rolling_corr, rolling_zscore
from .stationarity import ADFResult, EngleGrangerResult, HalfLife, adf, engle_granger, half_life

__all__ = [
    "ADFResult", "AlignedPair", "EngleGrangerResult", "HalfLife", "HedgeFit", "KalmanParams", "PairFrame",
    "PairParams", "adf", "align_pair", "engle_granger", "half_life", "hedge_path", "log_returns", "ols_hedge",
    "pair_frame", "rolling_corr", "rolling_ols", "rolling_zscore",
]
