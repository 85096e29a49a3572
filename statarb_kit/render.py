"""How results show themselves in a notebook (``_repr_html_``) and as text (``summary()``): a
table of named figures and a small inline SVG line chart, with no plotting dependency."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

#: Line colours of ``curves_svg`` (the first is the main curve).
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def figures_html(title: str, rows: list[tuple[str, str]], note: str = "") -> str:
    """A titled two-column table of (name, value) rows, and a note under it."""
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:right'>"
                   f"{html.escape(v)}</td></tr>" for k, v in rows)
    tail = f"<p style='color:#666'>{html.escape(note)}</p>" if note else ""
    return f"<div class='statarb-result'><p><b>{html.escape(title)}</b></p><table>{body}</table>{tail}</div>"


def figures_text(title: str, rows: list[tuple[str, str]]) -> str:
    """The same rows as aligned text lines."""
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join([title, *(f"  {k:<{width}}  {v}" for k, v in rows)])


def curves_svg(curves: pd.DataFrame | pd.Series, title: str, fmt: str = "{:+.1%}", width: int = 640,
               height: int = 220) -> str:
    """``curves`` (UTC index, a column per curve) as an inline SVG line chart with its range and
    dates; a note when there is nothing to draw."""
    frame = curves.to_frame() if isinstance(curves, pd.Series) else curves
    if frame.empty or not np.isfinite(frame.to_numpy(dtype=float)).any():
        return f"<p>{html.escape(title)}: nothing to draw.</p>"
    t = frame.index.asi8.astype(float)
    v = frame.to_numpy(dtype=float)
    lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
    span_t, span_v = (t[-1] - t[0]) or 1.0, (hi - lo) or 1.0
    lines, legend = [], []
    for k, name in enumerate(frame.columns):
        xs = 60 + (t - t[0]) / span_t * (width - 70)
        ys = 10 + (hi - v[:, k]) / span_v * (height - 40)
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, ys) if np.isfinite(b))
        colour = COLOURS[k % len(COLOURS)]
        lines.append(f"<polyline fill='none' stroke='{colour}' stroke-width='1.5' points='{pts}'/>")
        legend.append(f"<span style='color:{colour}'>&#9632; {html.escape(str(name))}</span>")
    axis = (f"<text x='2' y='14' font-size='11'>{fmt.format(hi)}</text><text x='2' y='{height - 30}' "
            f"font-size='11'>{fmt.format(lo)}</text><text x='60' y='{height - 8}' font-size='11'>"
            f"{frame.index[0]:%Y-%m-%d %H:%M}</text><text x='{width - 110}' y='{height - 8}' font-size='11'>"
            f"{frame.index[-1]:%Y-%m-%d %H:%M}</text>")
    return (f"<p>{html.escape(title)} {' '.join(legend) if len(legend) > 1 else ''}</p><svg width='{width}' "
            f"height='{height}' style='border:1px solid #ddd'>{axis}{''.join(lines)}</svg>")
