"""Research that holds out of sample: a walk-forward universe study of selection methods
(``study``), each method a pure function of a formation window (``methods``; PCA residuals in
``pca``), and what a study measured, read back beside a scan (``measured``)."""

from .methods import METHODS, Candidates, Formation, MethodParams
from .periods import PRESETS, Period, parse_span, rolling_periods
from .study import StudyResult, stationary, study

__all__ = ["METHODS", "Candidates", "Formation", "MethodParams", "PRESETS", "Period", "StudyResult", "parse_span",
           "rolling_periods", "stationary", "study"]
