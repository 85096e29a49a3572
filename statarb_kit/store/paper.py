"""Paper trading's tables (``statarb_kit.paper``): each book's rule and where it stands, and
its trades."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

#: Paper trading (``statarb_kit.paper``): each book's rule and where it stands, and its trades
#: (closed ones, and the open one marked at the newest bar; times are fill bar close times).
_PAPER_BOOKS_DDL = """
CREATE TABLE IF NOT EXISTS paper_books (
    book VARCHAR PRIMARY KEY, pair VARCHAR NOT NULL, timeframe VARCHAR NOT NULL,
    rule VARCHAR NOT NULL,         -- the Rule as JSON
    start_ms BIGINT NOT NULL,      -- first bar (open time) whose signal counts
    resume_ms BIGINT NOT NULL,     -- bar (open time) from which trades are found again
    after_stop BOOLEAN NOT NULL, closed INTEGER NOT NULL, paused VARCHAR NOT NULL,
    updated_ms BIGINT NOT NULL
)"""

_PAPER_TRADES_DDL = """
CREATE TABLE IF NOT EXISTS paper_trades (
    book VARCHAR NOT NULL, seq BIGINT NOT NULL, status VARCHAR NOT NULL, pair VARCHAR NOT NULL,
    timeframe VARCHAR NOT NULL, entry_ms BIGINT NOT NULL, exit_ms BIGINT NOT NULL, direction VARCHAR NOT NULL,
    entry_z DOUBLE, exit_z DOUBLE, reason VARCHAR NOT NULL, beta DOUBLE, units_x DOUBLE, units_y DOUBLE,
    entry_x DOUBLE, entry_y DOUBLE, exit_x DOUBLE, exit_y DOUBLE, hold_bars BIGINT, gross_pnl DOUBLE,
    fees DOUBLE, slippage DOUBLE, costs DOUBLE, funding DOUBLE, pnl DOUBLE,
    PRIMARY KEY (book, seq)
)"""


class PaperRepository:
    """Paper books and their trades (a TickStore part)."""

    TABLES: tuple[str, ...] = (_PAPER_BOOKS_DDL, _PAPER_TRADES_DDL)

    def save_paper(self, books: list[tuple], trades: pd.DataFrame, updated_ms: int) -> None:
        """Upsert paper books (book, pair, timeframe, rule, start_ms, resume_ms, after_stop,
        closed, paused) and their trades (``paper.TRADE_COLUMNS``): a book's open trade is
        replaced, closed ones are added (or replaced, when booked again after a restart)."""
        if books:
            frame = pd.DataFrame(books, columns=["book", "pair", "timeframe", "rule", "start_ms", "resume_ms",
                                                 "after_stop", "closed", "paused"]).assign(updated_ms=updated_ms)
            with self._registered("incoming_books", pa.Table.from_pandas(frame, preserve_index=False)):
                self.con.execute("INSERT OR REPLACE INTO paper_books SELECT * FROM incoming_books")
                self.con.execute("DELETE FROM paper_trades WHERE status = 'open' AND book IN "
                                 "(SELECT book FROM incoming_books)")
        if len(trades):
            with self._registered("incoming_paper", pa.Table.from_pandas(trades, preserve_index=False)):
                self.con.execute("INSERT OR REPLACE INTO paper_trades SELECT * FROM incoming_paper")

    def paper_book(self, book: str) -> dict | None:
        """A stored paper book's row (None: not stored)."""
        if not self.has_table("paper_books"):
            return None
        rows = self.con.execute("SELECT * FROM paper_books WHERE book = ?", [book]).df()
        return rows.iloc[0].to_dict() if len(rows) else None

    def paper_trades(self, book: str | None = None, status: str | None = None) -> pd.DataFrame:
        """Stored paper trades (of one book, of one status), by book and seq."""
        if not self.has_table("paper_trades"):
            return pd.DataFrame()
        where, args = ["1 = 1"], []
        for name, value in (("book", book), ("status", status)):
            if value is not None:
                where.append(f"{name} = ?")
                args.append(value)
        return self.con.execute(f"SELECT * FROM paper_trades WHERE {' AND '.join(where)} ORDER BY book, seq",
                                args).df()
