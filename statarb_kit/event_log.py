"""EventLog: the alerts and events an owner has published or received, in memory, with counts,
listeners, what is still to be stored and the owner's error count. A Session (which stores them)
and a monitor's viewer (``RemoteSession``, which only shows the monitor's) are both one; the
widgets read them through it."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import pandas as pd

from .alerts import Alert, alerts_frame
from .errors import StatarbError

log = logging.getLogger(__name__)

#: Called with each new alert (or event).
AlertListener = Callable[[Alert], None]
#: The tables alerts and events are stored in.
ALERTS, EVENTS = "alerts", "alert_events"


class EventLog:
    """The newest ``size`` alerts and events (newest last), how many ever came, their listeners;
    with ``stored``, what was published and not stored yet (``take_unstored``)."""

    def __init__(self, size: int, stored: bool = False) -> None:
        self.alert_log: deque[Alert] = deque(maxlen=size)
        self.event_log: deque[Alert] = deque(maxlen=size)
        self.alerts_fired = 0
        self.events_fired = 0
        self._alert_listeners: list[AlertListener] = []
        self._event_listeners: list[AlertListener] = []
        #: table -> items published and not stored yet (None: the owner stores nothing)
        self._unstored: dict[str, list[Alert]] | None = {ALERTS: [], EVENTS: []} if stored else None
        self._errors = 0
        self._last_error = ""

    def subscribe_alerts(self, listener: AlertListener) -> Callable[[], None]:
        """Call ``listener(alert)`` for every new alert of any pair; returns unsubscribe."""
        self._alert_listeners.append(listener)
        return lambda: self._alert_listeners.remove(listener)

    def subscribe_events(self, listener: AlertListener) -> Callable[[], None]:
        """Call ``listener(event)`` for every new alert event of any pair; returns unsubscribe."""
        self._event_listeners.append(listener)
        return lambda: self._event_listeners.remove(listener)

    def events(self, last: int | None = None) -> pd.DataFrame:
        """The newest ``last`` alert events held, indexed by bar time (UTC)."""
        items = list(self.event_log)
        return alerts_frame(items if last is None else items[-last:] if last > 0 else [])

    def held_events(self, pair: str, timeframe: str) -> list[Alert]:
        """The events held of one pair and timeframe, oldest first (what a page marks)."""
        return [e for e in self.event_log if e.pair == pair and e.timeframe == timeframe]

    def alerts(self, last: int | None = None) -> pd.DataFrame:
        """The newest ``last`` alerts held, indexed by bar time (UTC)."""
        items = list(self.alert_log)
        return alerts_frame(items if last is None else items[-last:] if last > 0 else [])

    def publish_alerts(self, alerts: list[Alert], logged: bool = True) -> None:
        """Loop thread: hold, count, queue for storage and hand new alerts to the subscribers."""
        self.alert_log.extend(alerts)
        self.alerts_fired += len(alerts)
        if self._unstored is not None:
            self._unstored[ALERTS].extend(alerts)
        self._hand_over(alerts, self._alert_listeners, "alert", logged)

    def publish_events(self, events: list[Alert], logged: bool = True) -> None:
        """Loop thread: as ``publish_alerts`` for events (a pair entering the condition; table
        ``alert_events``), e.g. to a Notifier."""
        self.event_log.extend(events)
        self.events_fired += len(events)
        if self._unstored is not None:
            self._unstored[EVENTS].extend(events)
        self._hand_over(events, self._event_listeners, "event", logged)

    def take_unstored(self) -> list[tuple[str, list[Alert]]]:
        """(table, items) published since the last call, no longer held here: the caller stores
        them, or hands them back with ``put_back`` when it could not."""
        if self._unstored is None:
            return []
        out = [(table, items) for table, items in self._unstored.items() if items]
        for table, _ in out:
            self._unstored[table] = []
        return out

    def put_back(self, table: str, items: list[Alert]) -> None:
        """Items ``take_unstored`` gave that could not be stored: first in line again."""
        self._unstored[table][:0] = items

    def _hand_over(self, items: list[Alert], listeners: list[AlertListener], kind: str, logged: bool = True) -> None:
        if logged and kind == "event" and items:  # one INFO line a batch (a history's events: not one each)
            if len(items) == 1:
                log.info("event: %s", items[0])
            else:
                log.info("%d events, the last: %s (each at DEBUG)", len(items), items[-1])
        for item in items:
            if logged and (kind != "event" or len(items) > 1):
                log.debug("%s: %s", kind, item)
            for listener in list(listeners):
                try:
                    listener(item)
                except Exception as exc:
                    self.report_error(f"{kind} listener", exc)

    def report_error(self, where: str, exc: BaseException) -> None:
        """Count and log a failure of ``where`` (the status shows the last one); never raises."""
        self._errors += 1
        self._last_error = f"{where}: {type(exc).__name__}: {exc}"
        if isinstance(exc, StatarbError):  # an expected failure with a message that says it all
            log.error("%s failed: %s", where, exc)
        else:
            log.error("%s failed", where, exc_info=exc)
