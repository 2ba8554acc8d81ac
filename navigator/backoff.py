"""Exponential backoff with jitter: the one retry pacing of edges, sinks and storage plugins.

Jitter matters: a manager restart must not see every edge of a fleet come back
in the same millisecond, nor a database blip every manager retry in step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol


class BackoffSettings(Protocol):
    """What a backoff needs; ``BackoffPolicy`` and the YAML's backoff sections both have it."""

    @property
    def initial(self) -> float: ...
    @property
    def max(self) -> float: ...
    @property
    def multiplier(self) -> float: ...
    @property
    def jitter(self) -> float: ...


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Backoff settings for code that has no YAML section of its own (a plugin's options)."""

    initial: float = 1.0
    max: float = 60.0
    multiplier: float = 2.0
    #: Fraction of each wait randomised, ± (0.2: between 80 % and 120 %).
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial < 0 or self.max < self.initial:
            raise ValueError(f"backoff needs 0 <= initial <= max (got {self.initial}s, {self.max}s)")
        if self.multiplier < 1.0 or not 0.0 <= self.jitter <= 1.0:
            raise ValueError("backoff needs multiplier >= 1 and jitter between 0 and 1")


class Backoff:
    """Waits ``initial * multiplier**attempt`` capped at ``max``, each randomised by ± ``jitter``."""

    def __init__(self, config: BackoffSettings, rng: random.Random | None = None) -> None:
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
