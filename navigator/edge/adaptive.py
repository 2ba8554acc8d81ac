"""Adaptive sync timing: sync sooner while the cluster churns, relax when it is quiet.

Halving on a busy sync and doubling back on a quiet one reacts within a couple
of intervals either way, without oscillating on a single noisy sync.
"""

from __future__ import annotations

from navigator.config.edge import AdaptiveConfig


class AdaptiveInterval:
    """The current time between syncs, driven by how many objects changed in the last one."""

    def __init__(self, base: float, config: AdaptiveConfig) -> None:
        self.base = base
        self.config = config
        self.current = self._clamp(base)

    def _clamp(self, value: float) -> float:
        return min(self.config.max_interval, max(self.config.min_interval, value))

    def observe(self, changes: int | None) -> float:
        """Record the changes of one sync (None: unknown) and return the next interval."""
        if not self.config.enabled:
            self.current = self._clamp(self.base)
        elif changes is None:
            pass
        elif changes >= self.config.busy_changes:
            # Busy: shorten toward min_interval.
            self.current = self._clamp(self.current / 2.0)
        elif self.current < self.base:
            # Quiet: lengthen back toward the base interval, never past it.
            self.current = self._clamp(min(self.base, self.current * 2.0))
        elif self.current > self.base:
            self.current = self._clamp(max(self.base, self.current / 2.0))
        return self.current
