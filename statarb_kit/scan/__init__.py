"""Find the pairs: a universe scan with exact batched Engle-Granger, Benjamini-Hochberg q-values
and out-of-sample validation, in-process or on Dask (``scan_pairs``); a synthetic universe with
planted pairs (``synthetic_universe``); and the closes of stored or downloaded symbols."""

from .engle_granger import PairMoments, adf_batch, coint_moments, pair_moments, series_sums
from .scan import COLUMNS, ScanParams, bh_qvalues, mackinnon_p, scan_pairs
from .universe import Universe, synthetic_universe

__all__ = ["COLUMNS", "PairMoments", "ScanParams", "Universe", "adf_batch", "bh_qvalues", "coint_moments", "mackinnon_p", "pair_moments",
           "scan_pairs", "series_sums", "synthetic_universe"]
