"""Who may read the query service: ``auth.readers``, each a bearer token or an mTLS identity, optionally
limited to some clusters.

Without readers configured the query service is open (the manager warns at startup).
With readers, every query and watch needs a reader's token (gRPC metadata
``authorization: Bearer ...``) or a client certificate named as a reader's
``identity``; edge tokens and edge certificates are not readers. A refusal never
echoes the token it was given.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from navigator.config.common import read_token_file
from navigator.config.manager import AuthSection
from navigator.errors import ConfigError
from navigator.interfaces import PeerInfo, QueryRefused

#: What the manager's own process passes for a query it makes itself (the test harness, tools in the
#: same process): it reads everything. Compared by identity: no transport can build it from a request.
IN_PROCESS = PeerInfo(address="in-process")


@dataclass(frozen=True, slots=True)
class Reader:
    """A caller the query service answers: ``clusters`` ``None`` sees every cluster."""

    name: str
    clusters: frozenset[str] | None = None

    @property
    def limited(self) -> bool:
        return self.clusters is not None

    def may_see(self, cluster: str) -> bool:
        return self.clusters is None or cluster in self.clusters

    def check(self, cluster: str) -> None:
        """Refuse an explicit request for a cluster this reader may not see (an empty one means "mine")."""
        if cluster and not self.may_see(cluster):
            raise QueryRefused("PERMISSION_DENIED", f"reader {self.name!r} may not read cluster {cluster!r}")

    def scope(self, cluster: str) -> list[str] | None:
        """The clusters a query asking for ``cluster`` ('' for any) covers, in order; ``None``: every cluster."""
        self.check(cluster)
        if cluster:
            return [cluster]
        return None if self.clusters is None else sorted(self.clusters)


#: The reader of an open query service (no ``auth.readers``), and of ``IN_PROCESS``.
ANYONE = Reader("anyone")


@dataclass(frozen=True, slots=True)
class _Entry:
    reader: Reader
    #: SHA-256 of the token: every comparison is of 32 bytes, whatever the tokens' lengths.
    token: bytes | None
    identity: str | None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Readers:
    """The configured readers; ``resolve`` turns a caller into one of them or refuses it."""

    def __init__(self, entries: Iterable[_Entry] = ()) -> None:
        self._entries = tuple(entries)
        self._identities = {e.identity: e.reader for e in self._entries if e.identity is not None}

    @classmethod
    def from_config(cls, auth: AuthSection | None) -> Readers:
        """Token files are read now, at startup: an unreadable or empty one is a ``ConfigError`` naming it.

        A reader token equal to an edge token is refused too: whoever holds a cluster's
        edge token would read as that reader.
        """
        if auth is None:
            return cls()
        entries = []
        edge_tokens = set(auth.tokens.values())
        for i, section in enumerate(auth.readers):
            key = f"auth.readers[{i}]"
            token = section.token
            if section.token_file is not None:
                token = read_token_file(section.token_file, f"{key}.token_file")
            if token is not None and token in edge_tokens:
                raise ConfigError(f"{key}: reader {section.name!r} has the token of an edge; give it its own")
            clusters = frozenset(section.clusters) if section.clusters is not None else None
            entries.append(
                _Entry(Reader(section.name, clusters), _digest(token) if token else None, section.identity)
            )
        return cls(entries)

    @property
    def open(self) -> bool:
        """No readers configured: anyone who reaches the manager may query it."""
        return not self._entries

    def resolve(self, peer: PeerInfo | None) -> Reader:
        """The reader ``peer`` is; ``QueryRefused`` UNAUTHENTICATED if it is none.

        A token, when given, decides (a wrong one is refused even with a reader's
        certificate); without one, the client certificate's names are looked up.
        """
        if self.open or peer is IN_PROCESS:
            return ANYONE
        if peer is not None and peer.token:
            given = _digest(peer.token)
            found: Reader | None = None
            for entry in self._entries:  # every entry compared: the time taken says nothing about which
                if entry.token is not None and hmac.compare_digest(given, entry.token):
                    found = entry.reader
            if found is None:
                raise QueryRefused("UNAUTHENTICATED", "the token is not a reader's token (auth.readers)")
            return found
        names = (peer.names or ((peer.identity,) if peer.identity else ())) if peer is not None else ()
        for name in names:
            if name in self._identities:
                return self._identities[name]
        if names:
            raise QueryRefused(
                "UNAUTHENTICATED", f"client certificate {names[0]!r} is not a reader's identity (auth.readers)"
            )
        raise QueryRefused(
            "UNAUTHENTICATED",
            "queries need a reader's token (authorization: Bearer <token>) or client certificate (auth.readers)",
        )
