"""The constants of the ``navigator.v1`` wire contract that both sides must agree on.

Edge and manager import them from here, so a change to the protocol is one edit.
"""

from __future__ import annotations

import re

#: Sent in ``Identify.protocol_version``. 2 adds per-object observation times and
#: resumption by sequence (docs/protocol.md); a manager also serves version 1 edges.
PROTOCOL_VERSION = 2

#: The versions a manager accepts in ``Identify.protocol_version``.
SUPPORTED_PROTOCOL_VERSIONS = (1, 2)

#: Cluster ids: 1-63 lowercase letters, digits, '-', '_' or '.', alphanumeric at both ends.
CLUSTER_ID_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$")


def cluster_id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid cluster id, or ``None`` when it is."""
    if CLUSTER_ID_PATTERN.match(value):
        return None
    return (
        f"invalid cluster id {value!r}: use 1-63 lowercase letters, digits, '-', '_' or '.', "
        "starting and ending with a letter or digit"
    )


def check_cluster_id(value: str) -> str:
    """``value`` if it is a valid cluster id; ``ValueError`` naming the rule otherwise."""
    problem = cluster_id_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value
