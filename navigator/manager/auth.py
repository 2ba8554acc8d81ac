"""Edge authentication: a token bound to the cluster id, or an mTLS identity mapped to it."""

from __future__ import annotations

import hmac

from navigator.config.manager import AuthSection


def authenticate(auth: AuthSection | None, cluster: str, token: str | None, identity: str | None) -> str | None:
    """Why the edge may not speak for ``cluster``, or ``None`` if it may.

    The message never says whether a token belongs to another cluster.
    """
    if auth is None:
        return None
    if identity is not None and identity in auth.identities:
        if auth.identities[identity] == cluster:
            return None
        return f"client certificate {identity!r} is not allowed to speak for cluster {cluster!r}"
    expected = auth.tokens.get(cluster)
    if expected is None:
        return f"no credentials are configured for cluster {cluster!r}"
    if not token:
        return f"cluster {cluster!r} requires a token and none was given"
    if not hmac.compare_digest(token.encode(), expected.encode()):
        return f"the token is not valid for cluster {cluster!r}"
    return None
