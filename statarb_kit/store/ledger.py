"""A monitor's ledger: each pair's event state as of the newest row it evaluated (so a restart
neither repeats nor skips an event), and its notification outbox."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from .alerts import _ALERTS_DDL

#: A monitor's ledger: each pair's event state as of the newest row it evaluated (so a restart
#: neither repeats nor skips an event), and its notification outbox (an event queued for sending,
#: ``sent_ms`` NULL until an endpoint took it; ``failed`` after every retry).
_EVENT_STATES_DDL = """
CREATE TABLE IF NOT EXISTS event_states (
    pair VARCHAR NOT NULL, timeframe VARCHAR NOT NULL,
    evaluated_ms BIGINT NOT NULL,  -- bar time of the newest row whose event test is reflected here
    armed BOOLEAN NOT NULL,
    last_event_ms BIGINT,          -- bar time of the pair's last event (NULL: none)
    PRIMARY KEY (pair, timeframe)
)"""

_NOTIFICATIONS_DDL = _ALERTS_DDL.replace("alerts (", "notifications (", 1).replace(
    "rule VARCHAR", "rule VARCHAR, queued_ms BIGINT NOT NULL, sent_ms BIGINT, failed BOOLEAN DEFAULT false, "
    "PRIMARY KEY (pair, timeframe, time_ms)")


class LedgerRepository:
    """The monitor's event states and notification outbox (a TickStore part)."""

    TABLES: tuple[str, ...] = (_EVENT_STATES_DDL, _NOTIFICATIONS_DDL)

    def save_event_states(self, states: pd.DataFrame) -> None:
        """Upsert rows (pair, timeframe, evaluated_ms, armed, last_event_ms: NULL as -1 or NaN)."""
        if len(states):
            frame = pa.Table.from_pandas(states[["pair", "timeframe", "evaluated_ms", "armed", "last_event_ms"]],
                                         preserve_index=False)
            with self._registered("incoming_states", frame):
                self.con.execute("INSERT OR REPLACE INTO event_states SELECT pair, timeframe, evaluated_ms, armed, "
                                 "CASE WHEN last_event_ms < 0 THEN NULL ELSE last_event_ms END FROM incoming_states")

    def event_states(self) -> pd.DataFrame:
        """Stored event states (last_event_ms -1 when the pair never had an event)."""
        return self.con.execute("SELECT pair, timeframe, evaluated_ms, armed, coalesce(last_event_ms, -1) AS "
                                "last_event_ms FROM event_states").df()

    def queue_notifications(self, events: pd.DataFrame, queued_ms: int) -> set[tuple[str, str, int]]:
        """Add events (ALERT_COLUMNS) to the outbox unless already there; returns the keys
        (pair, timeframe, time_ms) of those that were new."""
        if not len(events):
            return set()
        with self._registered("incoming_outbox", pa.Table.from_pandas(events, preserve_index=False)):
            new = self.con.execute("SELECT DISTINCT pair, timeframe, time_ms FROM incoming_outbox i WHERE NOT EXISTS "
                                   "(SELECT 1 FROM notifications n WHERE n.pair = i.pair AND n.timeframe = i.timeframe "
                                   "AND n.time_ms = i.time_ms)").fetchall()
            self.con.execute(f"INSERT OR IGNORE INTO notifications SELECT *, {int(queued_ms)}, NULL, false "
                             "FROM incoming_outbox")
        return {(p, tf, int(t)) for p, tf, t in new}

    def mark_notified(self, keys: pd.DataFrame, sent_ms: int) -> None:
        """Record the outcome of sends: rows (pair, timeframe, time_ms, ok)."""
        if len(keys):
            with self._registered("incoming_sent", pa.Table.from_pandas(keys, preserve_index=False)):
                self.con.execute(f"UPDATE notifications n SET sent_ms = CASE WHEN s.ok THEN {int(sent_ms)} END, "
                                 "failed = NOT s.ok FROM incoming_sent s WHERE n.pair = s.pair AND "
                                 "n.timeframe = s.timeframe AND n.time_ms = s.time_ms")

    def notifications(self, unsent_only: bool = False) -> pd.DataFrame:
        """The outbox, oldest first (``unsent_only``: neither sent nor failed: to send again)."""
        where = "WHERE sent_ms IS NULL AND NOT failed" if unsent_only else ""
        return self.con.execute(f"SELECT * FROM notifications {where} ORDER BY time_ms, pair").df()
