"""Tables ``alerts`` and ``alert_events``: what the rule found, stored and paged through."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from ..errors import InvalidParameter

_ALERTS_DDL = """
CREATE TABLE IF NOT EXISTS alerts (
    time_ms BIGINT NOT NULL,       -- open time of the bar that fired, ms since epoch, UTC
    pair VARCHAR NOT NULL, timeframe VARCHAR NOT NULL, direction VARCHAR NOT NULL,
    z DOUBLE, corr DOUBLE, alpha DOUBLE, beta DOUBLE, price_x DOUBLE, price_y DOUBLE,
    rule VARCHAR
)"""

#: Alert events (a pair entering the condition) have the alerts' columns.
_EVENTS_DDL = _ALERTS_DDL.replace("alerts (", "alert_events (", 1)


class AlertRepository:
    """Alerts and events of a store (a TickStore part)."""

    TABLES: tuple[str, ...] = (_ALERTS_DDL, _EVENTS_DDL)

    def insert_alerts(self, alerts: pd.DataFrame, table: str = "alerts") -> None:
        """Append alerts (columns as ``alerts.ALERT_COLUMNS``) to ``alerts`` or ``alert_events``."""
        if table not in ("alerts", "alert_events"):
            raise InvalidParameter(f"no alert table {table!r}")
        if len(alerts):
            with self._registered("incoming_alerts", pa.Table.from_pandas(alerts, preserve_index=False)):
                self.con.execute(f"INSERT INTO {table} SELECT * FROM incoming_alerts")

    def alerts(self, table: str = "alerts") -> pd.DataFrame:
        """All stored alerts (or ``alert_events``), oldest first."""
        if table not in ("alerts", "alert_events"):
            raise InvalidParameter(f"no alert table {table!r}")
        if not self.has_table(table):
            return pd.DataFrame()
        return self.con.execute(f"SELECT * FROM {table} ORDER BY time_ms, pair").df()

    def alerts_after(self, table: str, after: tuple[int, str, str] | None, limit: int) -> pd.DataFrame:
        """The next ``limit`` stored alerts (or ``alert_events``) in (time_ms, pair, timeframe)
        order after the key ``after`` (None: from the first): a page of the history."""
        if table not in ("alerts", "alert_events"):
            raise InvalidParameter(f"no alert table {table!r}")
        t, pair, tf = after if after is not None else (-(2**62), "", "")
        return self.con.execute(
            f"SELECT * FROM {table} WHERE time_ms > ? OR (time_ms = ? AND (pair > ? OR (pair = ? AND timeframe > ?))) "
            "ORDER BY time_ms, pair, timeframe LIMIT ?", [t, t, pair, pair, tf, int(limit)]).df()

    def event_keys(self, table: str = "alert_events") -> set[tuple[str, str, int]]:
        """(pair, timeframe, time_ms) of every stored event (``notifications``: of the outbox)."""
        if table not in ("alert_events", "notifications"):
            raise InvalidParameter(f"no event table {table!r}")
        return {(p, tf, int(t)) for p, tf, t in self.con.execute(
            f"SELECT pair, timeframe, time_ms FROM {table}").fetchall()}
