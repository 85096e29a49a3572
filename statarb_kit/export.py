"""CSV export of bars, a pair view's analytics frame and alerts (times as ISO-8601 UTC)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from .pair import PairView
    from .session import Session


def bars_csv(session: Session, symbols: tuple[str, ...], timeframe: str) -> str:
    """Held bars of ``symbols`` on ``timeframe``, one block per symbol, with a ``symbol`` column."""
    frames = [session.bars(s, timeframe, last=None).assign(symbol=s) for s in symbols]
    frame = pd.concat(frames) if frames else pd.DataFrame()
    return frame.to_csv(date_format="%Y-%m-%dT%H:%M:%S.%fZ")


def frame_csv(view: PairView) -> str:
    """The pair view's analytics frame."""
    return view.frame().to_csv(date_format="%Y-%m-%dT%H:%M:%S.%fZ")


def alerts_csv(session: Session) -> str:
    """The session's alerts, oldest first."""
    return session.alerts().to_csv(date_format="%Y-%m-%dT%H:%M:%S.%fZ")


def export_csv(session: Session, view: PairView, directory: str | Path) -> list[Path]:
    """Write bars, analytics frame and alerts of ``view`` as CSV files into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{view.symbols[0]}_{view.symbols[1]}_{view.timeframe}"
    files = {
        out / f"bars_{stem}.csv": bars_csv(session, view.symbols, view.timeframe),
        out / f"analytics_{stem}.csv": frame_csv(view),
        out / f"alerts_{stem}.csv": alerts_csv(session),
    }
    for path, text in files.items():
        path.write_text(text)
    return list(files)
