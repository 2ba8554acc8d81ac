"""The default, in-memory cluster claims: who holds which cluster, and the grace period after.

A single manager needs nothing more; backends shared by several managers
return their own claims from ``StorageBackend.create_claims``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from navigator.interfaces import Claim, ClaimOutcome, Holding


class InMemoryClaims:
    """Implements the ``ClusterClaims`` rules for one manager process."""

    def __init__(self, manager_id: str, grace_period: float, clock: Callable[[], float] = time.time) -> None:
        self.manager_id = manager_id
        self.grace_period = grace_period
        self._clock = clock
        self._holdings: dict[str, Holding] = {}
        # Claims come from the event loop, reads from query threads.
        self._lock = threading.Lock()

    def claim(self, cluster: str, edge_id: str) -> Claim:
        with self._lock:
            now = self._clock()
            held = self._holdings.get(cluster)
            if held is not None and held.edge_id != edge_id:
                if held.connected:
                    return Claim(ClaimOutcome.ALREADY_HELD, held.edge_id)
                released = held.released_at if held.released_at is not None else held.since
                remaining = released + self.grace_period - now
                if remaining > 0:
                    return Claim(ClaimOutcome.GRACE_PERIOD, held.edge_id, retry_after=remaining)
            self._holdings[cluster] = Holding(cluster, edge_id, self.manager_id, True, now)
            return Claim(ClaimOutcome.ACCEPTED, edge_id)

    def release(self, cluster: str, edge_id: str) -> None:
        with self._lock:
            held = self._holdings.get(cluster)
            if held is None or held.edge_id != edge_id or not held.connected:
                return
            self._holdings[cluster] = Holding(
                cluster, edge_id, held.manager_id, False, held.since, released_at=self._clock()
            )

    def renew(self, cluster: str, edge_id: str) -> bool:
        with self._lock:
            held = self._holdings.get(cluster)
            return held is not None and held.edge_id == edge_id and held.connected

    def holdings(self) -> Mapping[str, Holding]:
        with self._lock:
            return dict(self._holdings)

    def close(self) -> None:
        with self._lock:
            self._holdings.clear()
