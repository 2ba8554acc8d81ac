"""HTTP(S) front end speaking the Kubernetes REST API, plus the ``/_kubesim`` control API.

A threaded ``http.server`` with HTTP/1.1 keep-alive: lists are joined from cached bytes and
written in one go, watches hold their thread and stream chunks.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import select
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import yaml
from loguru import logger

from . import discovery
from .api import Api
from .errors import ApiError
from .faults import Faults
from .resources import Registry, ResourceType
from .selectors import FieldSelector, LabelSelector, parse_label_selector
from .store import Entry, Store
from .tables import table
from .watch import Watch, WatchFormat

EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - objects "
    "that were created, modified, or deleted between the time the first chunk was returned and now may show "
    "up in the list."
)
_TRUE = ("1", "true", "True")


@dataclass
class ServerState:
    """Everything a request handler needs; owned by ``KubeSim``."""

    store: Store
    registry: Registry
    api: Api
    faults: Faults
    token: str | None = None
    bookmark_interval: float = 10.0
    watch_timeout: float = 1800.0
    churn: Callable[[int], list[str]] | None = None
    churn_rate: Callable[[float], None] | None = None
    address: str = "127.0.0.1:0"


def encode_continue(rv: int, key: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": key + "\x00"})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        d = orjson.loads(raw)
        rv, start = int(d["rv"]), str(d["start"])
        if d.get("v") != "meta.k8s.io/v1" or not start.endswith("\x00") or rv <= 0:
            raise ValueError(token)
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise ApiError.expired(f"continue key is not valid: {EXPIRED_CONTINUE}") from None
    return rv, start[:-1]


def _accept(header: str) -> tuple[str, str]:
    """('table'|'partial'|'plain', meta.k8s.io version) from an Accept header, first match wins."""
    for part in header.split(","):
        params = {}
        for p in part.split(";")[1:]:
            k, _, v = p.strip().partition("=")
            params[k] = v
        as_ = params.get("as")
        if as_ and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            if as_ == "Table":
                return "table", params["v"]
            if as_ in ("PartialObjectMetadataList", "PartialObjectMetadata"):
                return "partial", params["v"]
        elif part.split(";")[0].strip() in ("application/json", "*/*", "application/*"):
            return "plain", "v1"
    return "plain", "v1"


class KubeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: ServerState, ssl_ctx: ssl.SSLContext | None) -> None:
        self.state = state
        self.ssl_ctx = ssl_ctx
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(address, Handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        if self.ssl_ctx is not None:
            sock = self.ssl_ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def track(self, s: socket.socket, add: bool) -> None:
        with self.conns_lock:
            if add:
                self.conns.add(s)
            else:
                self.conns.discard(s)

    def close_all(self) -> None:
        with self.conns_lock:
            conns = list(self.conns)
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # handshake failures, resets: the client's business
            return
        logger.opt(exception=True).warning("kubesim connection error from {}", client_address)


class _Dropped(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kubesim"
    sys_version = ""
    disable_nagle_algorithm = True
    server: KubeHTTPServer

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(30)
            try:
                self.request.do_handshake()
            except (OSError, ssl.SSLError):
                self.request.close()
                raise
            self.request.settimeout(None)
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def state(self) -> ServerState:
        return self.server.state

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _head(self, code: int, ctype: str, length: int | None, headers: dict[str, str] | None = None) -> bytes:
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = ""
        lines = [f"HTTP/1.1 {code} {phrase}", f"Content-Type: {ctype}", "Cache-Control: no-cache, private",
                 f"Date: {self.date_time_string()}"]
        if length is None:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append(f"Content-Length: {length}")
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, code: int, body: bytes, ctype: str = "application/json",
              headers: dict[str, str] | None = None, drop: bool = False) -> None:
        head = self._head(code, ctype, len(body), headers)
        if self.command == "HEAD":
            self.wfile.write(head)
            return
        if drop:
            self.wfile.write(head + body[: max(1, len(body) // 2)])
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            raise _Dropped
        if len(body) < 256 * 1024:
            self.wfile.write(head + body)
        else:
            self.wfile.write(head)
            self.wfile.write(memoryview(body))

    def _send_json(self, code: int, obj: Any) -> None:
        self._send(code, orjson.dumps(obj))

    def _send_error(self, err: ApiError) -> None:
        self._send(err.code, err.body(), headers=err.headers)

    # -- dispatch ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            self._authorize()
            self._route(url.path, q, body)
        except ApiError as err:
            self._send_error(err)
        except _Dropped:
            pass
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True
        except Exception as exc:
            logger.exception("kubesim: error serving {} {}", self.command, self.path)
            self._send_error(ApiError(500, f"Internal error occurred: {exc}", "InternalError"))

    def _authorize(self) -> None:
        token = self.state.token
        if token is None:
            return
        if self.headers.get("Authorization", "") != f"Bearer {token}":
            raise ApiError(401, "Unauthorized", "Unauthorized")

    def _route(self, path: str, q: dict[str, str], body: bytes) -> None:
        st = self.state
        path = path.rstrip("/") or "/"
        if path.startswith("/_kubesim/"):
            return self._control(path[len("/_kubesim/"):], q, body)
        if path in ("/healthz", "/livez", "/readyz"):
            return self._send(200, b"ok", "text/plain; charset=utf-8")
        if path == "/version":
            return self._send_json(200, discovery.VERSION_INFO)
        if path == "/api":
            return self._send_json(200, discovery.api_versions(st.address))
        if path == "/apis":
            return self._send_json(200, discovery.group_list(st.registry))
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 2:
            if len(parts) == 2:
                versions = st.registry.groups().get(parts[1])
                if not versions:
                    raise ApiError.not_found_type(path)
                return self._send_json(200, discovery.api_group(parts[1], versions))
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "the server could not find the requested resource", "NotFound",
                           {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})
        if not rest:
            doc = discovery.resource_list(st.registry, group, version)
            if doc is None:
                raise ApiError.not_found_type(path)
            return self._send_json(200, doc)
        self._resource(group, version, rest, q, body)

    # -- resources -------------------------------------------------------------------------------

    def _resource(self, group: str, version: str, rest: list[str], q: dict[str, str], body: bytes) -> None:
        reg = self.state.registry
        watch_path = False
        if rest[0] == "watch":
            watch_path, rest = True, rest[1:]
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            nrt = reg.get(group, version, rest[2])
            if nrt is not None and nrt.namespaced:
                namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError.not_found_type("/".join(rest))
        rt = reg.get(group, version, rest[0])
        if rt is None:
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if (rt.namespaced and name is not None and namespace is None) or (not rt.namespaced and namespace):
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        if sub is not None and sub != "status":
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        m = self.command
        watching = watch_path or q.get("watch") in _TRUE
        if m in ("GET", "HEAD"):
            verb = "watch" if watching else ("get" if name else "list")
        elif m == "POST":
            if name:
                raise ApiError.method_not_allowed()
            verb = "create"
        elif m == "PUT":
            verb = "update"
        elif m == "PATCH":
            verb = "patch"
        else:
            verb = "delete" if name else "deletecollection"
        if verb in ("update", "patch") and not name:
            raise ApiError.method_not_allowed()
        if verb in ("create", "deletecollection") and rt.namespaced and namespace is None:
            raise ApiError.method_not_allowed()
        decision = self.state.faults.check(rt.plural, verb)
        if decision.latency:
            time.sleep(decision.latency)
        if decision.error is not None:
            raise decision.error
        ns = namespace or ""
        dry = q.get("dryRun") == "All"
        api = self.state.api
        if verb == "list":
            return self._list(rt, namespace, q, drop=decision.drop)
        if verb == "watch":
            return self._watch(rt, namespace, name, q)
        if verb == "get":
            assert name is not None
            entry = api.get(rt, ns, name)
            return self._send_entry(200, rt, entry, for_read=True)
        if verb == "create":
            return self._send_entry(201, rt, api.create(rt, namespace, self._decode(body), dry_run=dry))
        assert name is not None or verb == "deletecollection"
        if verb == "update":
            assert name is not None
            return self._send_entry(200, rt, api.replace(rt, ns, name, self._decode(body), subresource=sub,
                                                         dry_run=dry))
        if verb == "patch":
            assert name is not None
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            return self._send_entry(200, rt, api.patch(rt, ns, name, body, ctype, subresource=sub, dry_run=dry))
        opts = self._decode(body) if body.strip() else {}
        if verb == "delete":
            assert name is not None
            entry, gone = api.delete(rt, ns, name, opts if isinstance(opts, dict) else None, dry_run=dry)
            if not gone:
                return self._send_entry(202, rt, entry)
            if rt.return_deleted:
                return self._send_entry(200, rt, entry)
            details = {**rt.details(name), "uid": (orjson.loads(entry.body).get("metadata") or {}).get("uid", "")}
            return self._send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                         "details": details})
        page = self._page(rt, namespace, q)
        deleted = api.delete_collection(rt, page.entries, dry_run=dry)
        self._send_list(rt, deleted, {"resourceVersion": str(self.state.store.rv)}, q)

    def _decode(self, body: bytes) -> Any:
        ctype = (self.headers.get("Content-Type") or "application/json").lower()
        try:
            if "yaml" in ctype:
                return yaml.safe_load(body)
            return orjson.loads(body)
        except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
            raise ApiError.bad_request(f"the body of the request could not be decoded: {exc}") from None

    def _format(self) -> tuple[str, str]:
        return _accept(self.headers.get("Accept") or "application/json")

    def _send_entry(self, code: int, rt: ResourceType, entry: Entry, for_read: bool = False) -> None:
        kind, version = self._format() if for_read else ("plain", "v1")
        if kind == "plain":
            return self._send(code, rt.full(entry.body))
        obj = orjson.loads(rt.full(entry.body))
        meta = obj.get("metadata") or {}
        if kind == "table":
            return self._send(code, table(rt, [entry.body], version=version, include=self._q_include(),
                                          list_meta={"resourceVersion": meta.get("resourceVersion", "")}))
        self._send_json(code, {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{version}",
                               "metadata": meta})

    def _q_include(self) -> str:
        q = parse_qs(urlsplit(self.path).query)
        return (q.get("includeObject") or ["Metadata"])[0]

    def _selectors(self, rt: ResourceType, q: dict[str, str]) -> tuple[LabelSelector, FieldSelector]:
        labels = parse_label_selector(q.get("labelSelector"))
        fields = FieldSelector.parse(
            q.get("fieldSelector"), lambda f: f in ("metadata.name", "metadata.namespace") or f in rt.field_index
        )
        return labels, fields

    def _page(self, rt: ResourceType, namespace: str | None, q: dict[str, str]) -> Any:
        store = self.state.store
        labels, fields = self._selectors(rt, q)
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            raise ApiError.bad_request(f"invalid limit {q.get('limit')!r}") from None
        start_after = None
        list_rv = None
        token = q.get("continue")
        if token:
            list_rv, start_after = decode_continue(token)
            try:
                store.check_rv(list_rv)
            except ApiError:
                raise ApiError.expired(EXPIRED_CONTINUE) from None
        rv = q.get("resourceVersion")
        if rv and q.get("resourceVersionMatch") == "Exact" and not token:
            if not rv.isdigit():
                raise ApiError.bad_request(f'invalid resource version "{rv}"')
            store.check_rv(int(rv))
        page = store.page(rt, namespace, start_after=start_after, limit=limit, labels=labels, fields=fields)
        if list_rv is not None:
            page.rv = list_rv
        return page

    def _list(self, rt: ResourceType, namespace: str | None, q: dict[str, str], drop: bool = False) -> None:
        page = self._page(rt, namespace, q)
        meta: dict[str, Any] = {"resourceVersion": str(page.rv)}
        if page.next_key is not None:
            meta["continue"] = encode_continue(page.rv, page.next_key)
            if page.remaining:
                meta["remainingItemCount"] = page.remaining
        self._send_list(rt, page.entries, meta, q, drop=drop)

    def _send_list(self, rt: ResourceType, entries: list[Entry], meta: dict[str, Any], q: dict[str, str],
                   drop: bool = False) -> None:
        kind, version = self._format()
        if kind == "plain":
            body = b"".join((
                b'{"kind":"', rt.list_kind.encode(), b'","apiVersion":"', rt.api_version.encode(),
                b'","metadata":', orjson.dumps(meta), b',"items":[', b",".join(e.body for e in entries), b"]}",
            ))
            return self._send(200, body, drop=drop)
        if kind == "table":
            body = table(rt, [e.body for e in entries], version=version, include=q.get("includeObject", "Metadata"),
                         list_meta=meta)
            return self._send(200, body, drop=drop)
        head = b'{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/' + version.encode() + b'","metadata":'
        items = [head + orjson.dumps(orjson.loads(e.body).get("metadata") or {}) + b"}" for e in entries]
        doc = {"kind": "PartialObjectMetadataList", "apiVersion": f"meta.k8s.io/{version}", "metadata": meta}
        self._send(200, orjson.dumps(doc)[:-1] + b',"items":[' + b",".join(items) + b"]}", drop=drop)

    def _watch(self, rt: ResourceType, namespace: str | None, name: str | None, q: dict[str, str]) -> None:
        st = self.state
        labels, fields = self._selectors(rt, q)
        if name:
            fields.terms.append(("metadata.name", True, name))
        kind, version = self._format()
        fmt = WatchFormat(rt, version if kind == "table" else None, q.get("includeObject", "Metadata"))
        try:
            timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else st.watch_timeout
        except ValueError:
            raise ApiError.bad_request(f"invalid timeoutSeconds {q.get('timeoutSeconds')!r}") from None
        send_initial = None
        if "sendInitialEvents" in q:
            send_initial = q["sendInitialEvents"] in _TRUE
        w = Watch(
            st.store, rt, namespace, labels, fields, fmt,
            resource_version=q.get("resourceVersion"), timeout=timeout,
            bookmarks=q.get("allowWatchBookmarks") in _TRUE, bookmark_interval=st.bookmark_interval,
            send_initial=send_initial,
        )
        epoch = st.faults.watch_epoch()
        self.close_connection = True
        self.wfile.write(self._head(200, "application/json", None))

        def write(data: bytes) -> None:
            self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))

        try:
            w.run(write, self._client_alive, lambda: st.faults.silenced(rt.plural, epoch))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass

    def _client_alive(self) -> bool:
        """False once the peer closed: lets idle watches end without waiting for their timeout."""
        sock = self.connection
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return True
            if isinstance(sock, ssl.SSLSocket):
                return sock.recv(1) != b""  # a watch client sends nothing, so nothing is lost
            return sock.recv(1, socket.MSG_PEEK) != b""
        except (OSError, ValueError):
            return False

    # -- control API -------------------------------------------------------------------------------

    def _control(self, what: str, q: dict[str, str], body: bytes) -> None:
        st = self.state
        m = self.command
        data: Any = orjson.loads(body) if body.strip() else {}
        if what == "faults":
            if m == "GET":
                return self._send_json(200, {"faults": st.faults.snapshot()})
            if m in ("PUT", "POST"):
                for rule in data if isinstance(data, list) else [data]:
                    try:
                        st.faults.apply(rule)
                    except (ValueError, TypeError) as exc:
                        raise ApiError.bad_request(str(exc)) from None
                return self._send_json(200, {"faults": st.faults.snapshot()})
            if m == "DELETE":
                st.faults.clear(q.get("kind") or (data.get("kind") if isinstance(data, dict) else None))
                return self._send_json(200, {"faults": st.faults.snapshot()})
        elif what == "churn" and m == "POST":
            done: list[str] = []
            if "rate" in data and st.churn_rate is not None:
                st.churn_rate(float(data["rate"]))
            if data.get("n") and st.churn is not None:
                done = st.churn(int(data["n"]))
            return self._send_json(200, {"done": done, "resourceVersion": str(st.store.rv)})
        elif what == "compact" and m == "POST":
            return self._send_json(200, {"resourceVersion": str(st.store.compact())})
        elif what == "history" and m in ("PUT", "POST"):
            st.store.set_history_limit(int(data.get("limit", 0)))
            return self._send_json(200, {"limit": st.store.history_limit})
        elif what == "state" and m == "GET":
            counts = {rt.qualified: st.store.count(rt) for rt in st.registry}
            return self._send_json(200, {"resourceVersion": str(st.store.rv), "compactedResourceVersion":
                                         str(st.store.compacted_rv), "counts": counts})
        raise ApiError(404, f"unknown kubesim control endpoint {m} /_kubesim/{what}", "NotFound")
