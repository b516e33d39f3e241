"""Timing policy of the connection, without a clock of its own: send pacing and reconnect backoff.

Both take the current time (or a random source) as arguments, so their behaviour is
tested exactly, with no sleeping and no wall clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

# Below chatd's own limit (10 at once, then 4 per second), so its backlog stays empty;
# servers cut clients that flood them, and a pasted file must not end the session.
BURST_LINES: Final = 8
RATE_LINES_PER_S: Final = 3.0
# Refilling exactly up to one token can land a hair below 1.0 in floating point; without
# this slack the caller would wait a vanishing time again and again.
_TOKEN_SLACK: Final = 1e-9


class TokenBucket:
    """``burst`` lines at once, then ``rate_per_s`` lines per second on average."""

    def __init__(self, burst: int, rate_per_s: float, now: float) -> None:
        if burst < 1 or rate_per_s <= 0:
            raise ValueError("burst must be at least 1 and the rate positive")
        self.burst = burst
        self.rate_per_s = rate_per_s
        self._tokens = float(burst)
        self._stamp = now

    def wait_s(self, now: float) -> float:
        """Seconds until one line may go; 0.0 means now. Does not use up the token."""
        self._refill(now)
        return 0.0 if self._tokens >= 1.0 - _TOKEN_SLACK else (1.0 - self._tokens) / self.rate_per_s

    def take(self, now: float) -> bool:
        """Use one token if there is one; False means wait ``wait_s(now)`` first."""
        self._refill(now)
        if self._tokens < 1.0 - _TOKEN_SLACK:
            return False
        self._tokens = max(0.0, self._tokens - 1.0)
        return True

    def _refill(self, now: float) -> None:
        self._tokens = min(float(self.burst), self._tokens + max(0.0, now - self._stamp) * self.rate_per_s)
        self._stamp = max(self._stamp, now)


class Backoff:
    """Reconnect delays: ``initial_s`` doubling up to ``max_s``, each with ±20 % jitter.

    Jitter keeps the clients of a restarted server from all coming back in the same
    instant. ``reset()`` after a session that got registered: that server was fine.
    """

    def __init__(self, initial_s: float, max_s: float, uniform: Callable[[float, float], float] = random.uniform):
        self.initial_s = initial_s
        self.max_s = max_s
        self._uniform = uniform
        self._next_s = initial_s

    def next_delay_s(self) -> float:
        delay = self._next_s * self._uniform(0.8, 1.2)
        self._next_s = min(self._next_s * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self._next_s = self.initial_s
