"""Cluster claims on the manager: the default in-memory claims, and how sessions reach any claims.

``InMemoryClaims`` is all a single manager needs; backends shared by several
managers return their own claims from ``StorageBackend.create_claims``.

``ClaimKeeper`` is the one way the manager's sessions use a claims:

- in-memory claims answer on the event loop (a dict and an uncontended lock:
  cheaper than any thread hop); claims that answer over the network (e.g.
  PostgreSQL) run on one thread of their own, in submission order, so a
  release always lands before a later claim of the same cluster;
- renewals are one pass per interval for every connected session (one thread
  hop at most, one statement when the claims offers ``renew_many``), not a
  timer and a thread hop per session;
- a session whose claim was lost is told through the callback it registered.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol, runtime_checkable

from loguru import logger

from navigator.interfaces import Claim, ClaimOutcome, ClusterClaims, Holding

#: How often every connected session's claim is renewed, in one pass.
RENEW_INTERVAL = 2.0

Held = tuple[str, str]


@runtime_checkable
class RenewsMany(Protocol):
    """Optional for a ``ClusterClaims``: renew many claims at once (one round trip instead of one each)."""

    def renew_many(self, held: Collection[Held]) -> set[Held]:
        """Renew every (cluster, edge id) in ``held``; returns those still held (``renew`` of each, at once)."""
        ...


class InMemoryClaims:
    """Implements the ``ClusterClaims`` rules for one manager process.

    Epochs count per cluster from the highest one storage holds (``seed_epochs``, at start),
    so a restarted manager's claims still fence out writes made under its earlier ones.
    """

    def __init__(self, manager_id: str, grace_period: float, clock: Callable[[], float] = time.time) -> None:
        self.manager_id = manager_id
        self.grace_period = grace_period
        self._clock = clock
        self._holdings: dict[str, Holding] = {}
        #: cluster -> the epoch of its latest claim (or the highest stored, before any).
        self._epochs: dict[str, int] = {}
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
            epoch = self._epochs[cluster] = self._epochs.get(cluster, 0) + 1
            return Claim(ClaimOutcome.ACCEPTED, edge_id, epoch=epoch)

    def seed_epochs(self, stored: Mapping[str, int]) -> None:
        """Start each cluster's epochs above ``stored`` (cluster -> the highest epoch storage holds)."""
        with self._lock:
            for cluster, epoch in stored.items():
                self._epochs[cluster] = max(self._epochs.get(cluster, 0), epoch)

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
            return self._holds(cluster, edge_id)

    def renew_many(self, held: Collection[Held]) -> set[Held]:
        with self._lock:
            return {(cluster, edge_id) for cluster, edge_id in held if self._holds(cluster, edge_id)}

    def _holds(self, cluster: str, edge_id: str) -> bool:
        holding = self._holdings.get(cluster)
        return holding is not None and holding.edge_id == edge_id and holding.connected

    def holdings(self) -> Mapping[str, Holding]:
        with self._lock:
            return dict(self._holdings)

    def close(self) -> None:
        with self._lock:
            self._holdings.clear()


class ClaimKeeper:
    """The manager's sessions' access to its ``ClusterClaims``: claim, release, and renewal in passes."""

    def __init__(self, claims: ClusterClaims, interval: float = RENEW_INTERVAL) -> None:
        self.claims = claims
        self.interval = interval
        #: In-memory claims answer at once: no thread.
        self.in_memory = isinstance(claims, InMemoryClaims)
        self._thread: ThreadPoolExecutor | None = None
        if not self.in_memory:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="navigator-claims")
        #: Registered sessions (any hashable token) -> (cluster, edge id, what to do when the claim is lost).
        self._watched: dict[object, tuple[str, str, Callable[[], None]]] = {}
        self._renewer: asyncio.Task[None] | None = None

    async def claim(self, cluster: str, edge_id: str) -> Claim:
        if self._thread is None:
            return self.claims.claim(cluster, edge_id)
        future = self._thread.submit(self.claims.claim, cluster, edge_id)
        try:
            return await asyncio.shield(asyncio.wrap_future(future))
        except asyncio.CancelledError:
            # The handshake was cancelled while the claim was on its way: nobody will hold it.
            future.add_done_callback(lambda done: self._drop(done, cluster, edge_id))
            raise

    def _drop(self, done: Future[Claim], cluster: str, edge_id: str) -> None:
        if not done.cancelled() and done.exception() is None and done.result().accepted:
            self.release(cluster, edge_id)

    def release(self, cluster: str, edge_id: str) -> None:
        """Never waits: a claims on a thread gets it in order, before any later claim."""
        if self._thread is None:
            self.claims.release(cluster, edge_id)
            return
        # Once shut down, closing the claims releases what is left.
        with contextlib.suppress(RuntimeError):
            self._thread.submit(self._release, cluster, edge_id)

    def _release(self, cluster: str, edge_id: str) -> None:
        try:
            self.claims.release(cluster, edge_id)
        except Exception as exc:
            logger.opt(exception=exc).warning("releasing the claim on cluster {} failed", cluster)

    # -- renewals --------------------------------------------------------------------

    def watch(self, token: object, cluster: str, edge_id: str, lost: Callable[[], None]) -> None:
        """Renew ``token``'s claim from now on; ``lost()`` is called (on the loop) once it is lost."""
        self._watched[token] = (cluster, edge_id, lost)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    def unwatch(self, token: object) -> None:
        self._watched.pop(token, None)

    async def _renew_forever(self) -> None:
        while self._watched:
            await asyncio.sleep(self.interval)
            try:
                await self.renew_once()
            except Exception as exc:
                logger.opt(exception=exc).warning("renewing cluster claims failed; retrying in {:g}s", self.interval)

    async def renew_once(self) -> None:
        """One renewal pass over every watched claim; ends the sessions whose claim was lost."""
        watched = dict(self._watched)
        if not watched:
            return
        held = {(cluster, edge_id) for cluster, edge_id, _ in watched.values()}
        if self._thread is None:
            kept = self._renew_all(held)
        else:
            kept = await asyncio.wrap_future(self._thread.submit(self._renew_all, held))
        for token, entry in watched.items():
            cluster, edge_id, lost = entry
            # Only a registration still in place is told (a session that ended meanwhile is not).
            if (cluster, edge_id) not in kept and self._watched.get(token) is entry:
                del self._watched[token]
                lost()

    def _renew_all(self, held: Collection[Held]) -> set[Held]:
        claims = self.claims
        if isinstance(claims, RenewsMany):
            return claims.renew_many(held)
        kept: set[Held] = set()
        for cluster, edge_id in held:
            try:
                if claims.renew(cluster, edge_id):
                    kept.add((cluster, edge_id))
            except Exception as exc:  # not a lost claim: the claims could not say
                logger.opt(exception=exc).warning("renewing the claim on cluster {} failed", cluster)
                kept.add((cluster, edge_id))
        return kept

    async def close(self) -> None:
        """Stop renewing and let queued releases land; the claims itself is closed by its owner."""
        self._watched.clear()
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.wait([self._renewer])
            self._renewer = None
        if self._thread is not None:
            await asyncio.to_thread(self._thread.shutdown, True)
