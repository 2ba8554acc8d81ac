"""The HTTP API's routes (``/api/v1``): thin — parse the query string, ask ``Queries``, send JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from navigator.client.client import watch_request
from navigator.client.times import TimeError, parse_time
from navigator.web import models, sse
from navigator.web.auth import CallerDep
from navigator.web.queries import KIND_VIEWS, Filters, Queries, invalid

router = APIRouter(prefix="/api/v1")

#: The refusals every data route may answer with (the body says which and why).
REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"model": models.ErrorBody, "description": "a bad filter, time, selector or continue token"},
    401: {"model": models.ErrorBody, "description": "readers are configured and no reader's token was given"},
    403: {"model": models.ErrorBody, "description": "the reader may not read the cluster asked for"},
    409: {"model": models.ErrorBody, "description": "the manager cannot answer it (history is off)"},
}

Cluster = Annotated[str | None, Query(description="only this cluster")]
Namespace = Annotated[str | None, Query(description="only this namespace")]
Selector = Annotated[str | None, Query(description="label selector, as kubectl's -l: app=web,tier!=db")]
Name = Annotated[str | None, Query(description="only objects of this name")]
Kind = Annotated[str | None, Query(description="only this kind (collector name): pods, services, ...")]
Limit = Annotated[int, Query(ge=1, le=1000, description="rows per page")]
Continue = Annotated[
    str | None, Query(alias="continue", description="the token of the previous page's `continue`")
]
At = Annotated[str | None, Query(description="as it was at this time (RFC 3339 or an age such as 10m)")]
Sort = Annotated[
    str | None,
    Query(
        pattern=r"^-?[A-Za-z_][A-Za-z0-9_]*$",
        description="a row field to sort by, `-` first for descending; only for at most 10,000 matches. "
        "Left out: the storage order (cluster, kind, namespace, name), any number of rows",
    ),
]


def _time(value: str | None, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except (TimeError, ValueError, OverflowError) as exc:
        raise invalid(f"{name}: {exc}") from None


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def _queries(request: Request) -> Queries:
    queries: Queries = request.app.state.queries
    return queries


@router.get("/clusters", response_model=models.Clusters, responses=REFUSALS, summary="Clusters and their status")
async def clusters(request: Request, caller: CallerDep, cluster: Cluster = None, at: At = None) -> Response:
    """Every cluster the reader may see: status, freshness, counts per kind, errors."""
    rows = await _queries(request).clusters(caller, cluster, _time(at, "at"))
    return _json(orjson.dumps({"items": rows}))


async def _page(
    request: Request, caller: CallerDep, view: str, filters: Filters, limit: int, sort: str | None, token: str | None
) -> Response:
    page = await _queries(request).resources(caller, view, filters, limit, sort or "", token)
    tail = b'],"count":' + str(page.count).encode() + b',"continue":' + orjson.dumps(page.next) + b"}"
    return _json(b'{"items":[' + page.items + tail)


@router.get("/resources", response_model=models.ResourcePage, responses=REFUSALS, summary="Objects of any kind")
async def resources(
    request: Request, caller: CallerDep, kind: Kind = None, cluster: Cluster = None, namespace: Namespace = None,
    selector: Selector = None, name: Name = None, limit: Limit = 100, sort: Sort = None,
    continue_: Continue = None, at: At = None,
) -> Response:  # fmt: skip
    """Objects of any kind (`navigator query resources -o json` rows: `kind`, `labels`, `data`), a page at a time."""
    filters = Filters(kind or None, cluster or None, namespace or None, selector or None, name or None, _time(at, "at"))
    return await _page(request, caller, "resources", filters, limit, sort, continue_)


def _kind_route(view: str) -> None:
    async def listing(
        request: Request, caller: CallerDep, cluster: Cluster = None, namespace: Namespace = None,
        selector: Selector = None, name: Name = None, limit: Limit = 100, sort: Sort = None,
        continue_: Continue = None, at: At = None,
    ) -> Response:  # fmt: skip
        filters = Filters(view, cluster or None, namespace or None, selector or None, name or None, _time(at, "at"))
        return await _page(request, caller, view, filters, limit, sort, continue_)

    listing.__doc__ = f"{view.capitalize()} as `navigator query {view} -o json` rows, a page at a time."
    router.add_api_route(
        f"/{view}", listing, methods=["GET"], response_model=models.ResourcePage, responses=REFUSALS,
        summary=view.capitalize(), operation_id=f"list_{view}",
    )  # fmt: skip


for _view in KIND_VIEWS:
    _kind_route(_view)


@router.get(
    "/services/{namespace}/{name}",
    response_model=models.ServiceView,
    responses={**REFUSALS, 404: {"model": models.ErrorBody, "description": "no cluster has this service"}},
    summary="One service across clusters",
)
async def service(
    request: Request, caller: CallerDep, namespace: Annotated[str, Path()], name: Annotated[str, Path()],
    cluster: Cluster = None,
) -> Response:  # fmt: skip
    """The service in every cluster: endpoint slices with ready/serving/terminating counts, endpoints, pods."""
    views = await _queries(request).service(caller, namespace, name, cluster or None)
    if not views:
        body = {"detail": {"code": "NOT_FOUND", "message": f"no cluster has service {namespace}/{name}"}}
        return Response(orjson.dumps(body), status_code=404, media_type="application/json")
    return _json(orjson.dumps({"namespace": namespace, "name": name, "clusters": views}))


@router.get("/changes", response_model=models.ChangePage, responses=REFUSALS, summary="Recorded changes")
async def changes(
    request: Request, caller: CallerDep, since: Annotated[str | None, Query(description="RFC 3339 or an age")] = None,
    until: Annotated[str | None, Query(description="RFC 3339 or an age")] = None, cluster: Cluster = None,
    kind: Kind = None, namespace: Namespace = None, selector: Selector = None, name: Name = None,
    limit: Limit = 100, continue_: Continue = None,
) -> Response:  # fmt: skip
    """Changes kept in the history, newest first (`navigator query changes -o json` rows)."""
    start, end = _time(since, "since"), _time(until, "until")
    filters = Filters(kind or None, cluster or None, namespace or None, selector or None, name or None)
    rows, token = await _queries(request).changes(caller, filters, start, end, limit, continue_)
    return _json(orjson.dumps({"items": rows, "continue": token}))


@router.get("/diff", response_model=models.DiffPage, responses=REFUSALS, summary="What changed between two times")
async def diff(
    request: Request, caller: CallerDep,
    from_: Annotated[str, Query(alias="from", description="the earlier time: RFC 3339 or an age")],
    to: Annotated[str | None, Query(description="the later time; left out: now")] = None,
    cluster: Cluster = None, kind: Kind = None, namespace: Namespace = None, selector: Selector = None,
    limit: Limit = 100, continue_: Continue = None,
) -> Response:  # fmt: skip
    """Objects ADDED, REMOVED or CHANGED between two times (`navigator query diff -o json` rows)."""
    start = _time(from_, "from")
    if start is None:
        raise invalid("from: a time is required")
    filters = Filters(kind or None, cluster or None, namespace or None, selector or None)
    rows, token = await _queries(request).diff(caller, filters, start, _time(to, "to"), limit, continue_)
    return _json(orjson.dumps({"items": rows, "continue": token}))


@router.get(
    "/events",
    responses={
        **REFUSALS,
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "`ready`, then a `change` event per applied change (data: a changes row)",
        },
    },
    response_class=StreamingResponse,
    summary="The live change feed (Server-Sent Events)",
)
async def events(
    request: Request, caller: CallerDep, kind: Kind = None, cluster: Cluster = None, namespace: Namespace = None,
    selector: Selector = None, name: Name = None,
    initial: Annotated[bool, Query(description="first the matching objects, as ADDED")] = False,
) -> StreamingResponse:  # fmt: skip
    """Changes as the manager applies them, filtered like `navigator watch`."""
    Filters(kind, cluster, namespace, selector, name).check()
    caller.reader.check(cluster or "")
    watch = watch_request(kind, cluster, namespace, selector, name, initial)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    body = sse.stream(request.app.state.manager, caller, watch)
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)
