"""Raw access to the Kubernetes API through the official client: paged lists and streaming watches.

The client's kubeconfig, auth-provider, exec-plugin and TLS handling is used as
is, but its model classes never are: responses are read raw and parsed with
orjson (building the models is ~20x slower for large lists), or, for a
collector that declares an ``item_type``, decoded by msgspec straight into it
(only the declared fields are built: ~5x faster again). Every call here blocks;
callers run them on threads so collectors proceed concurrently.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import cache
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec
import orjson
import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from navigator.config.edge import KubernetesSection
from navigator.errors import ConfigError

#: A watch is re-opened after this many seconds even when nothing goes wrong (server-side timeout).
WATCH_TIMEOUT_SECONDS = 290


class KubeApiError(Exception):
    """A Kubernetes API call failed. ``status`` is the HTTP status, 0 when no response came back."""

    def __init__(
        self, status: int, message: str, *, reason: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

    @property
    def expired(self) -> bool:
        """410 Gone: a continue token or watch resourceVersion is too old; start over."""
        return self.status == 410

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.reason}: {self.message}" if self.status else self.message


@dataclass(slots=True)
class ListPage:
    #: Plain dicts, or instances of the ``item_type`` the page was listed with.
    items: list[Any]
    resource_version: str
    continue_token: str | None
    #: Bytes of the response body, for sync statistics.
    size: int
    #: Why each object that does not fit ``item_type`` was left out of ``items``.
    rejected: list[str] = field(default_factory=list)


Item = TypeVar("Item")


class _ListMeta(msgspec.Struct, gc=False):
    resourceVersion: str | None = None
    continue_: str | None = msgspec.field(default=None, name="continue")


class _TypedList(msgspec.Struct, Generic[Item], gc=False):
    """A list response as the fast path decodes it: only what paging needs, and the items."""

    metadata: _ListMeta | None = None
    items: list[Item] | None = None


@cache
def _list_decoder(item_type: type[msgspec.Struct]) -> msgspec.json.Decoder[_TypedList[Any]]:
    return msgspec.json.Decoder(_TypedList[item_type])  # type: ignore[valid-type]


@dataclass(slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: dict[str, Any]


def _configuration() -> k8s_client.Configuration:
    """A fresh client configuration whose transport leaves status retries to the edge.

    urllib3 would otherwise retry 429/503 with ``Retry-After`` on its own, hidden
    from the edge's retry accounting and logs; only connection set-up is retried there.
    """
    configuration = type.__call__(k8s_client.Configuration)
    configuration.retries = urllib3.Retry(
        total=2, connect=2, read=0, status=0, other=0, redirect=2, respect_retry_after_header=False
    )
    return configuration


def build_api_client(section: KubernetesSection) -> k8s_client.ApiClient:
    """An ApiClient from ``kubeconfig``+``context``; if no kubeconfig is set, in-cluster then the default one."""
    configuration = _configuration()
    try:
        if section.kubeconfig is not None:
            if not section.kubeconfig.is_file():
                raise ConfigError(f"kubernetes.kubeconfig: file {section.kubeconfig} does not exist")
            k8s_config.load_kube_config(
                config_file=str(section.kubeconfig),
                context=section.context,
                client_configuration=configuration,
                persist_config=False,
            )
            return k8s_client.ApiClient(configuration=configuration)
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
            return k8s_client.ApiClient(configuration=configuration)
        except ConfigException:
            pass
        default = Path(k8s_config.KUBE_CONFIG_DEFAULT_LOCATION).expanduser()
        if not default.is_file():
            raise ConfigError(
                "kubernetes.kubeconfig is not set, this is not a pod with a service account, "
                f"and the default kubeconfig {default} does not exist"
            )
        k8s_config.load_kube_config(
            context=section.context, client_configuration=configuration, persist_config=False
        )
        return k8s_client.ApiClient(configuration=configuration)
    except ConfigException as exc:
        where = f" (context {section.context!r})" if section.context else ""
        raise ConfigError(f"kubernetes: cannot use the kubeconfig{where}: {exc}") from None


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _error_from_body(status: int, reason: str, body: bytes, headers: Any) -> KubeApiError:
    message = body.decode("utf-8", "replace").strip()[:500] or reason
    try:
        parsed = orjson.loads(body)
        if isinstance(parsed, dict) and parsed.get("message"):
            message = str(parsed["message"])
            reason = str(parsed.get("reason") or reason)
    except orjson.JSONDecodeError:
        pass
    return KubeApiError(status, message, reason=reason, retry_after=_retry_after(headers))


class KubeClient:
    """Paged lists and watches over one ApiClient (thread-safe: urllib3 pools per host)."""

    def __init__(self, api_client: k8s_client.ApiClient, request_timeout: float = 60.0) -> None:
        self.api = api_client
        self.request_timeout = request_timeout

    @classmethod
    def from_config(cls, section: KubernetesSection) -> KubeClient:
        return cls(build_api_client(section), section.request_timeout)

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    def close(self) -> None:
        self.api.close()

    def _get(
        self,
        path: str,
        query: list[tuple[str, Any]],
        timeout: float | tuple[float, float],
        gzip: bool = False,
    ) -> Any:
        """Start a GET; returns the raw urllib3 response (body unread) or raises KubeApiError."""
        headers = {"Accept": "application/json"}
        if gzip:  # as kubectl does: API servers compress large responses (urllib3 decodes them)
            headers["Accept-Encoding"] = "gzip"
        try:
            request = self.api.param_serialize(
                method="GET",
                resource_path=path,
                query_params=query,
                header_params=headers,
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(*request, _request_timeout=timeout)
        except k8s_client.ApiException as exc:  # TLS errors surface this way
            raise KubeApiError(int(exc.status or 0), f"{self.host}: {exc.reason}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeApiError(0, f"cannot reach the Kubernetes API at {self.host}: {_root(exc)}") from None
        raw = response.response
        if not 200 <= response.status <= 299:
            try:
                body = raw.data or b""
            except (urllib3.exceptions.HTTPError, OSError):
                body = b""
            raw.release_conn()
            raise _error_from_body(response.status, str(response.reason or ""), body, raw.headers)
        return raw

    def probe(self, timeout: float) -> None:
        """``GET /version`` within ``timeout`` seconds (connect and read): cheap proof that the API answers.

        Raises ``KubeApiError`` when it does not: no answer (status 0), or a status that means the
        server cannot serve (429, 5xx). Any other answer (401, 403, 404 included) is an answer:
        whether the edge may list is for the lists and watches to find out.
        """
        try:
            raw = self._get("/version", [], (timeout, timeout))
        except KubeApiError as exc:
            if exc.status and exc.status != 429 and exc.status < 500:
                return
            if not exc.status and "timed out" in exc.message.lower():
                raise KubeApiError(
                    0, f"cannot reach the Kubernetes API at {self.host}: no answer to GET /version within {timeout:g}s"
                ) from None
            if not exc.status:
                raise KubeApiError(0, f"{exc.message} (GET /version)") from None
            raise
        try:
            raw.data  # noqa: B018 - read the (small) body so the connection goes back to the pool
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeApiError(
                0, f"cannot reach the Kubernetes API at {self.host}: no answer to GET /version within {timeout:g}s "
                f"({_root(exc)})"
            ) from None
        finally:
            raw.release_conn()

    def list_page(
        self,
        path: str,
        *,
        limit: int,
        continue_token: str | None = None,
        label_selector: str | None = None,
        item_type: type[msgspec.Struct] | None = None,
    ) -> ListPage:
        """One page of a list; ``items`` are plain dicts, or ``item_type`` instances when given.

        Objects that do not fit ``item_type`` are left out, each with its reason in
        ``rejected``; the rest of the page is kept.
        """
        query: list[tuple[str, Any]] = [("limit", limit)]
        if continue_token:
            query.append(("continue", continue_token))
        if label_selector:
            query.append(("labelSelector", label_selector))
        raw = self._get(path, query, self.request_timeout, gzip=True)
        try:
            body = raw.data
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeApiError(0, f"reading a list from {self.host}{path} failed: {_root(exc)}") from None
        finally:
            raw.release_conn()
        if item_type is not None:
            try:
                with _gc_paused():
                    typed = _list_decoder(item_type).decode(body)
            except msgspec.ValidationError:  # an object of an unexpected shape: sort them out one by one
                return _lenient_page(body, item_type, f"{self.host}{path}")
            except msgspec.DecodeError as exc:
                raise KubeApiError(0, f"{self.host}{path} returned a list that is not JSON: {exc}") from None
            except Exception:  # the item type's own __post_init__ refused an object
                return _lenient_page(body, item_type, f"{self.host}{path}")
            meta = typed.metadata
            return ListPage(
                items=typed.items or [],
                resource_version=(meta.resourceVersion or "") if meta is not None else "",
                continue_token=(meta.continue_ or None) if meta is not None else None,
                size=len(body),
            )
        items, resource_version, continue_token = _dict_page(body, f"{self.host}{path}")
        return ListPage(items, resource_version, continue_token, size=len(body))

    def watch(
        self,
        path: str,
        resource_version: str,
        *,
        label_selector: str | None = None,
        timeout_seconds: int = WATCH_TIMEOUT_SECONDS,
        stop: WatchStop | None = None,
        idle_timeout: float | None = None,
        opened: Callable[[], None] | None = None,
    ) -> Iterator[WatchEvent]:
        """Stream events after ``resource_version`` until the server ends the watch or ``stop`` is set.

        An ``ERROR`` event becomes ``KubeApiError`` (410 when the version is too old); nothing at
        all (no event, no bookmark) for ``idle_timeout`` seconds too: a silently dead connection.
        ``opened`` is called once the server accepted the watch (before any event).
        """
        query: list[tuple[str, Any]] = [
            ("watch", 1),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", timeout_seconds),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        # Connect within the request timeout; reads may idle until the server-side timeout plus a margin,
        # or less when bookmarks are expected sooner.
        read_timeout = timeout_seconds + 30.0 if idle_timeout is None else min(timeout_seconds + 30.0, idle_timeout)
        raw = self._get(path, query, (self.request_timeout, read_timeout))
        if stop is not None and not stop.attach(raw):
            raw.release_conn()
            return
        if opened is not None:
            opened()
        buffer = b""
        try:
            while True:
                try:
                    chunk = raw.read1(65536)
                except urllib3.exceptions.ReadTimeoutError:
                    if stop is not None and stop.stopped:
                        return
                    raise KubeApiError(
                        0, f"watch on {self.host}{path} was silent for {read_timeout:g}s (no event, no bookmark)"
                    ) from None
                except (urllib3.exceptions.HTTPError, OSError, ValueError, AttributeError) as exc:
                    if stop is not None and stop.stopped:
                        return
                    raise KubeApiError(0, f"watch on {self.host}{path} broke: {_root(exc)}") from None
                if not chunk:
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    yield _watch_event(line, path)
        finally:
            if stop is not None:
                stop.detach()
            with contextlib.suppress(Exception):  # the connection may already be torn down
                raw.release_conn()


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic GC off while a page is decoded (restored after, if it was on).

    A page allocates tens of thousands of objects and none forms a cycle, yet
    each ~700 allocations would start a collection pass: 30 % of orjson's time
    on a pod page, 5-15 % of a typed decode. Both decoders hold the GIL
    throughout, so other threads do not run meanwhile.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _dict_page(body: bytes, where: str) -> tuple[list[Any], str, str | None]:
    """(items, resourceVersion, continue token) of a list response parsed into dicts."""
    try:
        with _gc_paused():
            parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise KubeApiError(0, f"{where} returned a list that is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise KubeApiError(0, f"{where} returned {type(parsed).__name__}, expected a list object")
    meta = parsed.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    items = parsed.get("items")
    return (
        items if isinstance(items, list) else [],
        str(meta.get("resourceVersion") or ""),
        meta.get("continue") or None,
    )


def _lenient_page(body: bytes, item_type: type[msgspec.Struct], where: str) -> ListPage:
    """A page whose typed decoding failed: parsed into dicts, then converted object by object.

    Conversion is lenient (``strict=False``: e.g. ``"80"`` is accepted for an int);
    what still does not fit is left out with its reason.
    """
    raw_items, resource_version, continue_token = _dict_page(body, where)
    items: list[Any] = []
    rejected: list[str] = []
    for obj in raw_items:
        try:
            items.append(msgspec.convert(obj, item_type, strict=False))
        except Exception as exc:  # mostly msgspec.ValidationError, which names the field
            why = str(exc) if isinstance(exc, msgspec.ValidationError) else repr(exc)
            rejected.append(f"{_describe(obj)} does not fit {item_type.__name__}: {why}")
    return ListPage(items, resource_version, continue_token, size=len(body), rejected=rejected)


def _describe(obj: Any) -> str:
    """``namespace/name`` of a raw object as far as it has them, for messages."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict) or not meta.get("name"):
        return "an object"
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


def _watch_event(line: bytes, path: str) -> WatchEvent:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise KubeApiError(0, f"watch on {path} sent a line that is not JSON: {exc}") from None
    kind = str(event.get("type", "")) if isinstance(event, dict) else ""
    obj = event.get("object") if isinstance(event, dict) else None
    if not isinstance(obj, dict):
        raise KubeApiError(0, f"watch on {path} sent an event without an object")
    if kind == "ERROR":
        code = int(obj.get("code") or 0)
        raise KubeApiError(
            code, str(obj.get("message") or "watch error"), reason=str(obj.get("reason") or "")
        )
    return WatchEvent(kind, obj)


class WatchStop:
    """Lets another thread end a blocked watch read at once (closing its socket)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._response: Any = None
        self._event = threading.Event()

    @property
    def stopped(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True if stopped meanwhile."""
        return self._event.wait(timeout)

    def attach(self, response: Any) -> bool:
        with self._lock:
            if self._event.is_set():
                return False
            self._response = response
            return True

    def detach(self) -> None:
        with self._lock:
            self._response = None

    def set(self) -> None:
        with self._lock:
            self._event.set()
            response, self._response = self._response, None
        _close(response)



def _close(response: Any) -> None:
    if response is not None:
        try:
            if hasattr(response, "shutdown"):
                response.shutdown()
            else:  # urllib3 < 2.3
                response.close()
        except Exception:  # best effort, the read raises either way
            pass


def _root(exc: BaseException) -> str:
    """The innermost cause of a urllib3 error, e.g. 'Connection refused'."""
    reason = getattr(exc, "reason", None)
    while isinstance(reason, BaseException) and getattr(reason, "reason", None) is not None:
        reason = getattr(reason, "reason", None)
    text = str(reason if reason is not None else exc)
    return text.split(": ", 1)[-1] if "Failed to establish" in text else text
