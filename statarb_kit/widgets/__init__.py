"""ipywidgets + bqplot components. They observe a PairView / Session and own no data or tasks."""

from .charts import CorrChart, PriceChart, SpreadChart, ZChart
from .dashboard import Dashboard
from .panels import AlertLog, Controls, ExportPanel, HedgePanel, StatusBar, TestsPanel

__all__ = ["AlertLog", "Controls", "CorrChart", "Dashboard", "ExportPanel", "HedgePanel", "PriceChart",
           "SpreadChart", "StatusBar", "TestsPanel", "ZChart"]
