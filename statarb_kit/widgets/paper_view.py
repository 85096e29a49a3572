"""The pair page's paper-trading panel: start following the page's rule on paper, then its
position, open and realised PnL and newest trades (``statarb_kit.paper``)."""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as w
import pandas as pd

from ..paper import PaperBook, PaperPosition
from ..rule import Rule
from .panels import _table, set_value, utc_text

#: Newest trades the panel lists.
SHOWN_TRADES = 5


def _pnl(v: float) -> str:
    return f"{v:+.4%}"


class PaperPanel:
    """Button that starts a paper book of the page's rule, and the book once it runs."""

    LABEL = "Paper trade this rule"

    def __init__(self, on_start: Callable[[], None], trading: Rule) -> None:
        self.button = w.Button(description=self.LABEL, icon="file-text-o", layout=w.Layout(width="320px"))
        self.button.on_click(lambda _: on_start())
        self.result = w.HTML()
        self.widget = w.VBox([self.button, self.result])
        self.clear(trading)

    def clear(self, trading: Rule) -> None:
        """Not trading (yet, or since the page's pair changed)."""
        self.button.disabled, self.button.description = False, self.LABEL
        set_value(self.result, f"<span class='sak-muted'>Follows the rule forward from the next bar as the "
                               f"backtest trades it: exit at z {trading.z_exit:+g}, fills one bar after the signal, "
                               f"{trading.fee_bps:g} bps fee and {trading.slippage_bps:g} bp slippage per leg and "
                               f"fill; stored in table paper_trades.</span>")

    def starting(self) -> None:
        self.button.disabled, self.button.description = True, "starting..."

    def failed(self, text: str) -> None:
        self.button.disabled, self.button.description = False, self.LABEL
        set_value(self.result, f"<span class='sak-err'>{html.escape(text)}</span>")

    @staticmethod
    def _legging(book: PaperBook, p: PaperPosition) -> str:
        """The newest fill with one leg done and the other pending (``PaperPosition``)."""
        done, pending = (book.view.symbols if p.pending_leg == "y" else book.view.symbols[::-1])
        until = pd.Timestamp(p.pending_until, unit="ms", tz="UTC").strftime("%H:%M:%S.%f")[:-3]
        return (f"<span id='sak-paper-legging'>{p.pending_fill}: {html.escape(done)} filled, {html.escape(pending)} "
                f"pending until {until} UTC (unhedged {p.exposure:+.2%} of capital)</span>")

    def show(self, book: PaperBook) -> None:
        """The book now (call on refresh: only a changed text is sent)."""
        p = book.position()
        self.button.disabled = not book.paused
        self.button.description = "paper trading" if not book.paused else "Paper trade the new rule"
        since = utc_text(book.state.start_ms) if book.state.start_ms > 0 else "the first bar"
        rows = [("position", f"<b id='sak-paper-position'>{p.direction}</b>"
                 + (f" since {utc_text(p.entry_ms)}" if p.side else "")),
                ("open PnL", _pnl(p.open_pnl) if p.side else "-"),
                *([("one leg filled", self._legging(book, p))] if p.pending_leg else []),
                ("realised PnL", f"<span id='sak-paper-realised'>{_pnl(p.realised_pnl)}</span>"),
                ("closed trades", f"<span id='sak-paper-trades'>{p.trades}</span>"),
                ("funding", "not included (no rates)" if book.funding is None else
                 f"left out: {html.escape(book.funding_note)}" if book.funding_note else "at each settlement"),
                ("since", since)]
        recent = book.trades().tail(SHOWN_TRADES).iloc[::-1]
        lines = "".join(
            f"<tr><td>{utc_text(int(t.entry_ms))[11:19]}</td><td>{t.direction.split('_')[0].lower()}</td>"
            f"<td>{t.reason if t.status == 'closed' else 'open'}</td>"
            f"<td>{_pnl(t.pnl if t.status == 'closed' else p.open_pnl)}</td></tr>"
            for t in recent.itertuples())
        trades = (f"<table class='sak-table' id='sak-paper-log'><tr><th>entry</th><th>side</th><th>exit</th>"
                  f"<th>net PnL</th></tr>{lines}</table>" if lines else "")
        paused = f"<div class='sak-err'>{html.escape(book.paused)}</div>" if book.paused else ""
        note = " (the view no longer holds the bars from its resume point)" if book.truncated else ""
        set_value(self.result, f"<div id='sak-paper'>{_table(rows)}{trades}{paused}{note}</div>")
