"""Message rates and the silence limits derived from them (pure: no I/O)."""

from __future__ import annotations

import math


class RateMeter:
    """Events per second, exponentially weighted with time constant ``tau_s``.

    Early on, the count observed is scaled to the time actually observed (no start-up bias);
    a ``prior`` rate (events/s, e.g. from REST's recent trades) weighs in for the part of the
    window not observed yet, fading as observations replace it.
    """

    def __init__(self, tau_s: float = 60.0, prior: float | None = None, now: float = 0.0) -> None:
        self.tau = tau_s
        self.prior = prior
        self._count = 0.0
        self._t = self._t0 = now

    def add(self, n: int, now: float) -> None:
        self._count = self._count * math.exp(-(now - self._t) / self.tau) + n
        self._t = now

    def rate(self, now: float) -> float:
        """Current estimate (0 with neither observations over some time nor a prior)."""
        unseen = math.exp(-max(0.0, now - self._t0) / self.tau)  # weight of the window not observed
        observed = self._count * math.exp(-(now - self._t) / self.tau)
        if self.prior is not None:
            return (observed + self.prior * self.tau * unseen) / self.tau
        seen = 1.0 - unseen
        return observed / (self.tau * seen) if seen > 1e-3 else 0.0

    def reset_prior(self, prior: float, now: float) -> None:
        """Start again from ``prior`` (events/s) at ``now``."""
        self.prior, self._t0 = prior, now
        self._count = 0.0
        self._t = now


def silence_limit(rate: float, expected: float, lo: float, hi: float) -> float:
    """Seconds of silence after which a stream is worth checking: the time ``expected`` messages
    take at ``rate`` per second, within [lo, hi] (``hi`` for a stream with no known rate)."""
    if rate <= 0 or not math.isfinite(rate):
        return hi
    return min(hi, max(lo, expected / rate))
