"""The ASGI application: the API routes, health probes, the OpenAPI document and the dashboard's files.

No interactive API docs page: the usual ones load their scripts from a CDN, and the
dashboard must work offline; ``/openapi.json`` is the published document.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from navigator import __version__
from navigator.interfaces import QueryRefused, StorageError
from navigator.manager.readers import Readers
from navigator.web import models
from navigator.web.auth import HTTP_STATUS
from navigator.web.queries import Queries
from navigator.web.routes import router

if TYPE_CHECKING:
    from navigator.manager.app import Manager

STATIC = Path(str(files("navigator.web") / "static"))


def _problem(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"detail": {"code": code, "message": message}})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def create_app(manager: Manager, readers: Readers) -> FastAPI:
    """The HTTP face of ``manager``; ``readers`` are the manager's ``auth.readers``."""
    app = FastAPI(
        title="Navigator",
        version=__version__,
        description="The manager's view of every cluster: clusters, objects, services across clusters, "
        "history and the live change feed. Field names are those of `navigator query -o json`.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.manager = manager
    app.state.readers = readers
    app.state.queries = Queries(manager)
    app.include_router(router)

    @app.exception_handler(QueryRefused)
    async def refused(request: Request, exc: QueryRefused) -> Response:
        status = HTTP_STATUS.get(exc.code, 500)
        headers = {"WWW-Authenticate": 'Bearer realm="navigator"'} if status == 401 else None
        return _problem(status, exc.code, exc.message, headers)

    @app.exception_handler(StorageError)
    async def storage_failed(request: Request, exc: StorageError) -> Response:
        return _problem(503, "UNAVAILABLE", f"storage: {exc}")

    @app.get("/healthz", response_model=models.Health, tags=["probes"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=models.Health,
        tags=["probes"],
        summary="Readiness",
        responses={503: {"model": models.Health, "description": "starting or stopping"}},
    )
    async def readyz() -> Response:
        """The manager is started and not stopping: it answers queries."""
        try:
            ready = not manager.context.stopping
        except RuntimeError:
            ready = False
        body = orjson.dumps({"status": "ready" if ready else "not ready"})
        return Response(body, status_code=200 if ready else 503, media_type="application/json")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
