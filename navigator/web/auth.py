"""Who asks over HTTP: the bearer token of ``Authorization: Bearer ...``, checked against the same
``auth.readers`` as the gRPC query service, and how the core's refusals become HTTP statuses.

The token is handed to the manager as the ``PeerInfo`` a gRPC call would give, so the
manager's own reader check decides; the web layer resolves the reader too, to know which
clusters to list for a cluster-limited one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from navigator.interfaces import PeerInfo, QueryRefused
from navigator.manager.readers import Reader, Readers

#: gRPC status names the core refuses with -> HTTP status.
HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "FAILED_PRECONDITION": 409,
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
}


class Caller:
    """The asking peer (as the manager's methods take it) and the reader it resolves to."""

    __slots__ = ("peer", "reader")

    def __init__(self, peer: PeerInfo, reader: Reader) -> None:
        self.peer = peer
        self.reader = reader


def refusal(exc: QueryRefused) -> HTTPException:
    """The HTTP error for a refusal; a 401 names the scheme, as RFC 9110 wants."""
    status = HTTP_STATUS.get(exc.code, 500)
    headers = {"WWW-Authenticate": 'Bearer realm="navigator"'} if status == 401 else None
    return HTTPException(status, detail={"code": exc.code, "message": exc.message}, headers=headers)


#: Declares the scheme in the OpenAPI document; the readers decide, so a missing header is no error here.
_BEARER = HTTPBearer(auto_error=False, description="a reader's token (auth.readers); needed when readers are configured")


def caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
) -> Caller:
    """The ``Caller`` of a request; 401 when readers are configured and the token is not one of theirs."""
    readers: Readers = request.app.state.readers
    client = request.client
    token = credentials.credentials.strip() if credentials is not None else None
    peer = PeerInfo(address=f"http:{client.host}:{client.port}" if client else "http:?", token=token or None)
    try:
        reader = readers.resolve(peer)
    except QueryRefused as exc:
        raise refusal(exc) from None
    return Caller(peer, reader)


#: A route parameter that authenticates the request.
CallerDep = Annotated[Caller, Depends(caller)]
