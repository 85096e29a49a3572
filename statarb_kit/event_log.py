"""EventLog: the alerts and events an owner has published or received, in memory, with counts,
listeners and the owner's error count. A Session and a monitor's viewer (``RemoteSession``) are
both one; the widgets read them through it."""

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


class EventLog:
    """The newest ``size`` alerts and events (newest last), how many ever came, their listeners."""

    def __init__(self, size: int) -> None:
        self.alert_log: deque[Alert] = deque(maxlen=size)
        self.event_log: deque[Alert] = deque(maxlen=size)
        self.alerts_fired = 0
        self.events_fired = 0
        self._alert_listeners: list[AlertListener] = []
        self._event_listeners: list[AlertListener] = []
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

    def alerts(self, last: int | None = None) -> pd.DataFrame:
        """The newest ``last`` alerts held, indexed by bar time (UTC)."""
        items = list(self.alert_log)
        return alerts_frame(items if last is None else items[-last:] if last > 0 else [])

    def _hand_over(self, items: list[Alert], listeners: list[AlertListener], kind: str, logged: bool = True) -> None:
        for item in items:
            if logged:
                (log.info if kind == "event" else log.debug)("%s: %s", kind, item)
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
