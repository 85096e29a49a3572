"""The dashboard app: settings from the URL query string / environment, source, session, UI.

Precedence: Voila URL query (``?symbols=btcusdt,ethusdt&timeframe=1m&z_entry=2.5``) over
``STATARB_*`` environment variables (set by ``statarb dashboard``) over defaults.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from urllib.parse import parse_qs

import ipywidgets as w

from .bars import DEFAULT_TIMEFRAMES, check_timeframe
from .config import SessionConfig
from .errors import InvalidParameter
from .exchange.binance.endpoints import REST_URL, WS_URL
from .notify import ENV as NOTIFY_ENV
from .notify import Notifier
from .resources import notebook_path  # noqa: F401  (re-exported: app.notebook_path)
from .rule import ALIASES, DEFAULT, LIVE_FIELDS, Rule
from .session import Session
from .sources import Source, SyntheticGroups, SyntheticPair
from .sources.options import live_source
from .ticks import normalize_symbol, now_ms
from .view_options import ViewOptions
from .watchlist import Watchlist, parse_pairs, read_watchlist
from .widgets import Dashboard
from .widgets.watchlist_view import WatchlistView

SOURCES = ("synthetic", "live")
#: Settings only the server's operator chooses (``statarb dashboard`` options / environment): a URL
#: must not make the kernel write a file of its choosing or connect to a host of its choosing.
#: Each maps to its ``statarb dashboard`` option, if it has one (all have a STATARB_<NAME> variable).
#: Bars per symbol and timeframe a watchlist page holds in memory (2 h of 1s bars; a pair page:
#: Session's default); its in-memory store keeps 2 h of ticks.
WATCHLIST_RETAIN_BARS = 7_200
#: Recent ticks per symbol a watchlist page holds in memory (``Session.ticks``; 44 bytes each).
WATCHLIST_RETAIN_TICKS = 2_000
SERVER_ONLY: dict[str, str | None] = {"db": "--db", "speed": None, "watchlist": "--watchlist", "ws_url": "--ws-url", "ws_path": "--ws-path",
                                      "rest_url": "--rest-url", "preview_s": None, "monitor": "--monitor"}
#: Query keys the server itself reads (Jupyter's token), not settings.
SERVER_KEYS = ("token",)
#: Most synthetic history (minutes) generated at start: a day of trades is already ~3M ticks.
MAX_HISTORY_MIN = 1_440.0


@dataclass(frozen=True)
class AppSettings:
    """What the dashboard shows. Windows in bars; ``history_min`` minutes of synthetic history
    generated at start so analytics are warm at once; ``preview_s`` > 0 stops the app after that
    many seconds (notebook test runs)."""

    source: str = "synthetic"
    symbols: tuple[str, str] = ("BTCUSDT", "ETHUSDT")
    timeframe: str = "1s"
    z_entry: float = DEFAULT.z_entry  # the rule's parameters and defaults (statarb_kit.rule)
    corr_min: float = DEFAULT.corr_min
    z_window: int = DEFAULT.z_window
    corr_window: int = DEFAULT.corr_window
    hedge_window: int = DEFAULT.hedge_window
    hedge_mode: str = DEFAULT.hedge_mode
    log_prices: bool = DEFAULT.log_prices
    z_exit: float | None = None  # how paper trading trades the rule (None: statarb_kit.rule.default_exit)
    fee_bps: float = DEFAULT.fee_bps
    slippage_bps: float = DEFAULT.slippage_bps
    price: str = DEFAULT.price  # "mid": the analytics on the quote mid at each close (a one-pair page with quotes)
    paper: bool = False  # follow the rule on paper from the page's start (statarb_kit.paper)
    seed: int = 7
    history_min: float = 20.0
    speed: float = 0.0  # synthetic only: > 0 plays from history_min ago at that many times real time (soak runs)
    pairs: str = ""  # a watchlist: "X/Y,A/B", or "synthetic" (groups of cointegrated symbols)
    watchlist: str = ""  # a watchlist file (server only)
    db: str = ":memory:"
    preview_s: float = 0.0
    ws_url: str = WS_URL
    ws_path: str = ""  # "": by tier (@trade on /public/stream)
    rest_url: str = REST_URL
    quotes: bool = True  # a one-pair page records the best bid and ask (live: @bookTicker) and shows their spread
    monitor: str = ""  # HOST:PORT of a running `statarb monitor`: the pages attach to it (server only)

    @classmethod
    def parse(cls, query: str = "", env: Mapping[str, str] | None = None) -> AppSettings:
        """Settings from a query string and ``STATARB_<NAME>`` environment variables.

        The query string may not set the SERVER_ONLY settings (InvalidParameter says where they go)."""
        env = os.environ if env is None else env
        raw: dict[str, str] = {}
        for f in fields(cls):
            for name in (f.name, *(old for old, new in ALIASES.items() if new == f.name)):
                if f"STATARB_{name.upper()}" in env:
                    raw[f.name] = env[f"STATARB_{name.upper()}"]
        for key, values in parse_qs(query.lstrip("?")).items():
            if key in SERVER_KEYS:
                continue
            key = ALIASES.get(key, key)
            if key not in {f.name for f in fields(cls)}:
                raise InvalidParameter(f"unknown setting {key!r} in the URL: use one of "
                                       f"{', '.join(f.name for f in fields(cls) if f.name not in SERVER_ONLY)}")
            if key in SERVER_ONLY:
                option = SERVER_ONLY[key]
                where = f"statarb dashboard {option}, or " if option else ""
                raise InvalidParameter(f"setting {key!r} is chosen when the server starts ({where}"
                                       f"STATARB_{key.upper()} in its environment), not in the URL")
            raw[key] = values[-1]
        kw: dict[str, object] = {}
        types = {f.name: f.type for f in fields(cls)}
        for key, text in raw.items():
            kind = types[key].removesuffix(" | None") if isinstance(types[key], str) else types[key]
            try:
                if kind != types[key] and text.strip().lower() in ("", "none"):
                    kw[key] = None
                    continue
                if key == "symbols":
                    parts = [normalize_symbol(s) for s in text.split(",") if s.strip()]
                    if len(parts) != 2 or parts[0] == parts[1]:
                        raise InvalidParameter(f"symbols must be two different symbols, got {text!r}")
                    kw[key] = (parts[0], parts[1])
                elif kind in ("bool", bool):
                    if text.strip().lower() not in ("true", "false", "1", "0"):
                        raise InvalidParameter(f"setting {key}={text!r} must be true or false")
                    kw[key] = text.strip().lower() in ("true", "1")
                elif kind in ("int", int):
                    kw[key] = int(text)
                elif kind in ("float", float):
                    kw[key] = float(text)
                else:
                    kw[key] = text
            except InvalidParameter:
                raise
            except ValueError:
                raise InvalidParameter(f"setting {key}={text!r} is not a valid {types[key]}") from None
        settings = cls(**kw)
        check_timeframe(settings.timeframe)
        if not 0.0 <= settings.history_min <= MAX_HISTORY_MIN:
            raise InvalidParameter(f"history_min must be between 0 and {MAX_HISTORY_MIN:g} minutes, "
                                   f"got {settings.history_min:g}")
        if settings.source not in SOURCES:
            raise InvalidParameter(f"source {settings.source!r} is not available here: use one of {SOURCES}")
        ViewOptions().params(settings.trading_rule())  # validate early (a live view's analytics)
        if settings.price == "mid" and (settings.pairs or settings.monitor or not settings.quotes):
            raise InvalidParameter("price=mid needs the page's quotes: a one-pair page with quotes=true (a watchlist "
                                   "records trades only; a page attached to a monitor: its --price mid)")
        return settings

    def session_config(self, watchlist: bool) -> SessionConfig:
        """The page's session (``watchlist``: of many pairs): a watchlist keeps a view per pair over many symbols, so it holds 2 h
        of 1s bars and of stored ticks, and few ticks per symbol in memory (100,000 each would be
        4.4 MB a symbol)."""
        if watchlist:
            return SessionConfig(timeframes=DEFAULT_TIMEFRAMES, retain_bars=WATCHLIST_RETAIN_BARS,
                                 memory_retention_h=2.0, retain_ticks=WATCHLIST_RETAIN_TICKS)
        return SessionConfig(timeframes=DEFAULT_TIMEFRAMES)

    def trading_rule(self) -> Rule:
        """The rule these settings name (statarb_kit.rule validates it)."""
        return Rule(**{name: getattr(self, name) for name in LIVE_FIELDS})

    def watched(self) -> list[tuple[str, str]] | None:
        """The watchlist's pairs (None: a single-pair dashboard). "synthetic" names every pair of
        the synthetic groups; a file (``watchlist``) or a list (``pairs``) names them."""
        if self.watchlist:
            return read_watchlist(self.watchlist)
        if self.pairs == "synthetic":
            return SyntheticGroups().pairs()
        return parse_pairs(self.pairs) if self.pairs else None

    def make_source(self, pairs: list[tuple[str, str]] | None = None) -> Source:
        symbols = tuple(dict.fromkeys(s for p in pairs for s in p)) if pairs else self.symbols
        if self.source == "live":  # quotes on a one-pair page: a watchlist's hundreds of symbols only trade
            return live_source(symbols, self.ws_url, self.ws_path, self.rest_url, quotes=self.quotes and not pairs)
        start = now_ms() - int(self.history_min * 60_000)
        accelerated = {"realtime": False, "chunk_s": 1.0, "speed": self.speed} if self.speed > 0 else {"realtime": True}
        if pairs:
            groups = SyntheticGroups(seed=self.seed, start_ms=start, **accelerated)
            unknown = sorted(set(symbols) - set(groups.symbols))
            if unknown:
                raise InvalidParameter(f"the synthetic watchlist records groups {groups.symbols[0]}...: "
                                       f"{', '.join(unknown[:3])} are not among them (use pairs=synthetic, "
                                       "or source=live)")
            return groups
        # accelerated time (speed): bars become final by later trades, not the wall clock
        return SyntheticPair(symbols=self.symbols, seed=self.seed, start_ms=start, quotes=self.quotes, **accelerated)


def error_box(exc: Exception) -> w.HTML:
    """A readable error in place of the dashboard (bad URL settings, locked database...)."""
    return w.HTML(f"<div id='sak-error' style='color:#b00;font-size:14px;padding:8px'><b>statarb_kit could not "
                  f"start:</b> {html.escape(str(exc))}</div>")


class App:
    """A running session with its dashboard. Create it in a notebook cell (it needs the
    kernel's event loop); display ``app.widget``; ``await app.stop()`` ends it."""

    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings
        if settings.monitor:
            self._attach(settings)
            return
        notifier = (Notifier(link_base=os.environ.get("STATARB_LINK_BASE") or None)
                    if os.environ.get(NOTIFY_ENV) else None)  # the operator's URLs, never the page's
        pairs = settings.watched()
        self.session = Session(source=settings.make_source(pairs), db=settings.db, config=settings.session_config(bool(pairs)),
                               notifier=notifier).start()
        self.watchlist: Watchlist | None = None
        self.view: Dashboard | WatchlistView
        if pairs:
            self.watchlist = Watchlist(self.session, pairs, settings.timeframe, settings.trading_rule())
            self.view = WatchlistView(self.session, self.watchlist)
            if settings.paper:
                self.view.start_paper()
        else:
            self.view = Dashboard(self.session, *settings.symbols, timeframe=settings.timeframe,
                                  rule=settings.trading_rule(), paper=settings.paper)
        self.widget = self.view.widget

    def _attach(self, settings: AppSettings) -> None:
        """The pages of a running monitor: its watchlist (or one of its pairs, ``symbols`` in the
        URL), its rule, its numbers; nothing ingested here."""
        from .monitor.remote import RemoteSession

        remote = RemoteSession(settings.monitor, os.environ.get("STATARB_MONITOR_TOKEN") or None).start()
        self.session = remote
        pair = settings.symbols if settings.symbols != AppSettings.symbols else None
        self.watchlist = None
        if pair is None and len(remote.pairs) > 1:
            with remote.keeping(remote.rule.hedge_window + 1):  # the table's rows, not each pair's history
                self.watchlist = Watchlist(remote, remote.pairs, remote.timeframe, remote.rule, remote.options)
            self.view = WatchlistView(remote, self.watchlist)
        else:
            x, y = pair or remote.pairs[0]
            self.view = Dashboard(remote, x, y, timeframe=remote.timeframe, rule=remote.rule, options=remote.options)
        self.widget = self.view.widget

    @property
    def dashboard(self) -> Dashboard:
        """The pair dashboard (of a single-pair app; a watchlist's open pair)."""
        return self.view if isinstance(self.view, Dashboard) else self.view.dashboard

    @classmethod
    def from_environment(cls) -> App:
        """Settings from Voila's ``QUERY_STRING`` and ``STATARB_*`` variables."""
        return cls(AppSettings.parse(os.environ.get("QUERY_STRING", "")))

    async def stop(self) -> None:
        self.view.close()
        if self.watchlist is not None:
            self.watchlist.close()
        await self.session.stop()
