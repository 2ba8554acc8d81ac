"""Changes applied by other managers sharing the same storage, for this manager's watchers.

A manager's own applies reach its watchers directly. When several managers share
one store (PostgreSQL), a watcher on one of them must also see what the others
applied; a backend that can tell offers ``follow_changes``. It is optional: the
manager looks for the method and, without it, serves watchers its own changes only
(right for a store that one manager uses alone, like SQLite).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from navigator.resource import Change

__all__ = ["ChangeFollower"]


@runtime_checkable
class ChangeFollower(Protocol):
    """What a storage backend implements to fan changes out to every manager sharing it."""

    def follow_changes(self, manager_id: str, deliver: Callable[[Sequence[Change]], None]) -> Callable[[], None]:
        """Call ``deliver`` with the changes other managers commit, until the returned ``stop()`` is called.

        The contract, for backend authors:

        - ``manager_id`` is this manager's id (``ClusterRecord.manager_id`` of what it
          applies). Changes this manager committed itself are never delivered: it already
          has them. Everything committed by any other manager is, once it is committed
          (never a change that was rolled back).
        - ``deliver`` is called from a thread of the backend's own (it is thread-safe and
          returns quickly), one call at a time, with the changes of one cluster in the order
          they were committed; a large apply may come in several consecutive calls.
        - Each ``Change`` is complete, as the manager's reconciler made it: type, uid, old and
          new resource versions, ``applied_at`` and ``observed_at``, ``changed_fields``, and
          for ADDED and MODIFIED the ``resource`` with its labels and data (``None`` for
          DELETED).
        - Once ``follow_changes`` returns, changes committed afterwards are delivered; it
          waits for that no longer than connecting takes (giving up on the wait, not on
          following, when the store is unreachable), and raises ``StorageError`` only when
          following cannot work at all. Losing the backend's connection is not an error:
          reconnect with backoff, log it, and deliver what was committed meanwhile if the
          store can tell.
        - ``stop()`` returns promptly (within about a second), after which ``deliver`` is not
          called again; calling it twice is harmless. ``close()`` on the backend stops any
          follower still running.
        - Following never slows down ``apply`` beyond a small, constant cost per call.
        """
        ...
