"""Exponential backoff with jitter, shared by Kubernetes retries and manager reconnects.

Jitter matters: a manager restart must not see every edge of a fleet come back
in the same millisecond.
"""

from __future__ import annotations

import random

from navigator.config.common import BackoffConfig


class Backoff:
    """Waits ``initial * multiplier**attempt`` capped at ``max``, each randomised by ± ``jitter``."""

    def __init__(self, config: BackoffConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.attempt = 0
        self._rng = rng or random.Random()

    def base(self, attempt: int) -> float:
        """The un-jittered wait before retry number ``attempt`` (0-based)."""
        c = self.config
        # Avoid float overflow for long outages: once past max, stay there.
        if c.multiplier > 1.0 and attempt > 200:
            return c.max
        return min(c.max, c.initial * c.multiplier**attempt)

    def next(self) -> float:
        """The wait before the next attempt; each call grows it until ``max``."""
        wait = self.base(self.attempt)
        self.attempt += 1
        jitter = self.config.jitter
        if jitter:
            wait *= 1.0 + jitter * self._rng.uniform(-1.0, 1.0)
        return max(0.0, min(wait, self.config.max))

    def reset(self) -> None:
        """Success: the next failure starts from ``initial`` again."""
        self.attempt = 0
