"""The backtest rule as a plain per-bar loop: the executable specification the vectorized engine
is tested against, and the baseline its benchmark is timed against. Slow by design."""

from __future__ import annotations

import math

from ..funding import PairFunding
from .frame import SignalFrame
from .params import BacktestParams


def loop_backtest(f: SignalFrame, p: BacktestParams,
                  funding: PairFunding | None = None) -> tuple[list[dict], list[float]]:
    """(trades, equity after each bar). Each trade: entry/exit signal and fill bars, side,
    reason, funding and net PnL. Orders decided at bar t's close fill at bar t + lag's close.
    A position held into bar t settles each funding time T of each leg with
    time[t-1] < T <= time[t], at the leg's close at T (bar t's if T is its close, else bar t-1's)."""
    n = len(f)
    legs = [] if funding is None else [(funding.x, f.price_x, 0), (funding.y, f.price_y, 1)]
    nxt = [0, 0]  # each leg's next settlement
    equity, cash = [], 1.0
    qx = qy = 0.0
    state = "flat"  # flat | long | short: the position held (an order waits in `pending`)
    pending: tuple | None = None  # ("open", fill bar, side, signal bar) or ("close", fill bar, reason, signal bar)
    waiting_calm = False
    trades: list[dict] = []
    trade: dict = {}
    for t in range(n):
        px, py = f.price_x[t], f.price_y[t]
        if t > 0:  # mark to market
            cash += qx * (px - f.price_x[t - 1]) + qy * (py - f.price_y[t - 1])
        for rates, price, leg in legs:  # settlements up to this bar's close
            while nxt[leg] < len(rates) and rates.time[nxt[leg]] <= f.time[t]:
                T, rate = rates.time[nxt[leg]], rates.rate[nxt[leg]]
                nxt[leg] += 1
                if t > 0 and state != "flat" and T > f.time[t - 1]:  # held into this bar, over T
                    paid = -(qx if leg == 0 else qy) * (price[t] if T == f.time[t] else price[t - 1]) * rate
                    cash += paid
                    trade["pnl"] += paid
                    trade["funding"] += paid
        if pending and pending[1] == t:
            if pending[0] == "open":
                _, _, side, sig = pending
                beta = f.beta[sig]
                if p.log_prices:
                    qx, qy = side / (1 + abs(beta)) / px, -side * beta / (1 + abs(beta)) / py
                else:
                    k = 1.0 / (px + abs(beta) * py)
                    qx, qy = side * k, -side * beta * k
                cost = p.cost_rate * (abs(qx) * px + abs(qy) * py)
                cash -= cost
                trade = {"entry_signal": sig, "entry_fill": t, "side": side, "pnl": -cost, "funding": 0.0}
                state = "long" if side == 1 else "short"
            else:
                _, _, reason, sig = pending
                cost = p.cost_rate * (abs(qx) * px + abs(qy) * py)
                cash -= cost
                trade["pnl"] += qx * (px - f.price_x[trade["entry_fill"]]) + qy * (py - f.price_y[trade["entry_fill"]]) - cost
                trade.update(exit_signal=sig, exit_fill=t, reason=reason)
                trades.append(trade)
                qx = qy = 0.0
                state = "flat"
            pending = None
        z, corr, beta = f.z[t], f.corr[t], f.beta[t]
        if pending is None and state == "flat":
            if waiting_calm and not math.isnan(z) and abs(z) < p.z_entry:
                waiting_calm = False
            can_fill = t + p.lag <= n - 2
            if (not waiting_calm and can_fill and not math.isnan(z) and not math.isnan(beta)
                    and not math.isnan(corr) and corr >= p.corr_min and abs(z) >= p.z_entry):
                pending = ("open", t + p.lag, 1 if z < 0 else -1, t)
        elif pending is None and state != "flat":
            side = 1 if state == "long" else -1
            held = t - trade["entry_signal"]
            reason = None
            if p.z_stop is not None and not math.isnan(z) and side * z <= -p.z_stop:
                reason = "stop"
                waiting_calm = True
            elif not math.isnan(z) and side * z >= -p.z_exit:
                reason = "exit"
            elif p.max_hold is not None and held >= p.max_hold:
                reason = "max_hold"
            if reason:
                pending = ("close", min(t + p.lag, n - 1), reason if t + p.lag <= n - 1 else "end", t)
        if t == n - 1 and state != "flat":
            cost = p.cost_rate * (abs(qx) * px + abs(qy) * py)  # close what is still open at the end
            cash -= cost
            trade["pnl"] += qx * (px - f.price_x[trade["entry_fill"]]) + qy * (py - f.price_y[trade["entry_fill"]]) - cost
            trade.update(exit_signal=pending[3] if pending else n - 1, exit_fill=t, reason="end")
            trades.append(trade)
        equity.append(cash)
    return trades, equity
