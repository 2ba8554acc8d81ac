"""``KubeSim``: the in-process handle tests use to run, inspect and disturb a simulated cluster."""

from __future__ import annotations

import builtins
import os
import random
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
from loguru import logger

from . import kubeconfig as kubeconfig_mod
from . import loader
from . import tls as tls_mod
from .api import Api
from .churn import Churner
from .defaults import now_str
from .endpoints import EndpointSliceController
from .errors import ApiError
from .faults import Faults
from .generate import ClusterSpec, Generated, generate
from .resources import Registry, ResourceType, builtin_types
from .selectors import FieldSelector, parse_label_selector
from .server import KubeHTTPServer, ServerState
from .store import Store


class KubeSim:
    """A simulated Kubernetes API server; use as a context manager to serve it.

    Python-API writes are "raw": they may set ``status`` directly and create missing
    namespaces; HTTP writes follow the real server's rules.
    """

    def __init__(
        self,
        pods: int = 0,
        services: int = 0,
        namespaces: int = 1,
        *,
        nodes: int | None = None,
        seed: int = 0,
        token: str | None = None,
        tls: bool = False,
        name: str = "sim",
        host: str = "127.0.0.1",
        port: int = 0,
        kubeconfig_path: str | os.PathLike[str] | None = None,
        user: str | None = None,
        context: str | None = None,
        load: Iterable[str | os.PathLike[str]] = (),
        faults: Mapping[str, int] | None = None,
        history_limit: int = 20000,
        bookmark_interval: float = 10.0,
        watch_timeout: float = 1800.0,
        controllers: bool = True,
        now: float | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.token = token
        self.tls = tls
        self.user = user or f"{name}-user"
        self.context = context or name
        self._kubeconfig_arg = Path(kubeconfig_path) if kubeconfig_path is not None else None
        self._tmpdir: str | None = None
        self.kubeconfig_path: Path | None = None
        self.registry = Registry(builtin_types())
        self.store = Store(history_limit=history_limit)
        self.api = Api(self.store, self.registry, random.Random(seed + 1))
        self.faults = Faults()
        for kind, status in (faults or {}).items():
            self.faults.set(kind, status)
        self.generated: Generated = generate(
            self.store, self.registry,
            ClusterSpec(pods=pods, services=services, namespaces=namespaces, nodes=nodes, seed=seed, name=name,
                        now=now),
        )
        self.controller = EndpointSliceController(self.store, self.registry, random.Random(seed + 2))
        if controllers:
            self.controller.attach()
        self.churner = Churner(self.store, self.registry, self.api, seed)
        for path in load:
            self.load(path)
        self._state = ServerState(
            self.store, self.registry, self.api, self.faults, token=token, bookmark_interval=bookmark_interval,
            watch_timeout=watch_timeout, churn=self.churn, churn_rate=self._churn_rate,
        )
        self._server: KubeHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tls: tls_mod.TLSMaterial | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> KubeSim:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def bookmark_interval(self) -> float:
        return self._state.bookmark_interval

    @bookmark_interval.setter
    def bookmark_interval(self, seconds: float) -> None:
        self._state.bookmark_interval = seconds

    def start(self) -> KubeSim:
        if self._server is not None:
            return self
        ssl_ctx = None
        if self.tls:
            self._tls = self._tls or tls_mod.generate()
            ssl_ctx = self._tls.server_context()
        self.store.closed = False
        self._server = KubeHTTPServer((self.host, self.port), self._state, ssl_ctx)
        self.port = int(self._server.server_address[1])
        self._state.address = f"{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"kubesim-{self.name}", daemon=True)
        self._thread.start()
        self.write_kubeconfig()
        logger.debug("kubesim {} listening on {}", self.name, self.url)
        return self

    def stop(self) -> None:
        self.churner.stop_background()
        srv = self._server
        if srv is None:
            return
        self._server = None
        self.store.close()
        srv.shutdown()
        srv.close_all()
        srv.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    @property
    def url(self) -> str:
        """Where clients connect; a wildcard listen address is reached through loopback."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def ca_pem(self) -> bytes | None:
        return self._tls.ca_pem if self._tls else None

    def kubeconfig(self) -> dict[str, Any]:
        return kubeconfig_mod.build(self.url, cluster=self.name, user=self.user, context=self.context,
                                    token=self.token, ca_pem=self.ca_pem)

    def write_kubeconfig(self, path: str | os.PathLike[str] | None = None) -> Path:
        target = Path(path) if path is not None else self._kubeconfig_arg
        if target is None:
            if self._tmpdir is None:
                self._tmpdir = tempfile.mkdtemp(prefix="kubesim-")
            target = Path(self._tmpdir) / "kubeconfig"
        written = kubeconfig_mod.write(target, self.kubeconfig())
        if path is None:
            self.kubeconfig_path = written
        return written

    def api_client(self) -> Any:
        """An official ``kubernetes.client.ApiClient`` for this server (imports kubernetes lazily)."""
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig_path), context=self.context,
                                client_configuration=cfg)
        return client.ApiClient(cfg)

    # -- object access -----------------------------------------------------------------------------

    def resource(self, name: str) -> ResourceType:
        """A registered type by plural, singular, kind, short name or ``plural.group``."""
        try:
            return self.registry.resolve(name)
        except ApiError:
            raise KeyError(f"unknown resource {name!r}") from None

    def _type_of(self, obj: Mapping[str, Any]) -> ResourceType:
        rt = self.registry.by_kind(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        if rt is None:
            raise KeyError(f"unknown kind {obj.get('apiVersion')}/{obj.get('kind')}; register_kind() it first")
        return rt

    @staticmethod
    def _decode(body: bytes) -> dict[str, Any]:
        d: dict[str, Any] = orjson.loads(body)
        return d

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        rt = self._type_of(obj)
        o = orjson.loads(orjson.dumps(obj))
        ns = (o.get("metadata") or {}).get("namespace") or None
        return self._decode(rt.full(self.api.create(rt, ns, o, raw=True).body))

    def update(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        rt = self._type_of(obj)
        o = orjson.loads(orjson.dumps(obj))
        meta = o.get("metadata") or {}
        e = self.api.replace(rt, meta.get("namespace", "") if rt.namespaced else "", meta.get("name", ""), o,
                             raw=True)
        return self._decode(rt.full(e.body))

    def patch(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        patch: Any,
        patch_type: str = "merge",
        subresource: str | None = None,
    ) -> dict[str, Any]:
        rt = self.resource(kind)
        ptype = {"merge": "application/merge-patch+json", "strategic": "application/strategic-merge-patch+json",
                 "json": "application/json-patch+json", "apply": "application/apply-patch+yaml"}.get(
            patch_type, patch_type)
        p = orjson.loads(orjson.dumps(patch))
        e = self.api.patch(rt, namespace or "", name, p, ptype, subresource=subresource, raw=True)
        return self._decode(rt.full(e.body))

    def delete(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        rt = self.resource(kind)
        return self._decode(rt.full(self.api.delete(rt, namespace or "", name)[0].body))

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        rt = self.resource(kind)
        e = self.store.get(rt, namespace or "", name)
        return self._decode(rt.full(e.body)) if e is not None else None

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        rt = self.resource(kind)
        fields = FieldSelector.parse(field_selector, lambda f: True)
        page = self.store.page(rt, namespace, labels=parse_label_selector(label_selector), fields=fields)
        return [self._decode(rt.full(e.body)) for e in page.entries]

    def count(self, kind: str, namespace: str | None = None) -> int:
        return self.store.count(self.resource(kind), namespace)

    @property
    def resource_version(self) -> str:
        return str(self.store.rv)

    def register_kind(
        self,
        group: str,
        version: str,
        kind: str,
        plural: str,
        namespaced: bool = True,
        *,
        short_names: tuple[str, ...] = (),
        status_subresource: bool = False,
        categories: tuple[str, ...] = (),
    ) -> ResourceType:
        """Serve a new kind (e.g. a custom resource); returns the existing one if identical."""
        return self.registry.add(ResourceType(
            group, version, kind, plural, namespaced, short_names=short_names, categories=categories,
            custom=True, status_subresource=status_subresource,
        ))

    # -- loading --------------------------------------------------------------------------------------

    def load(self, path: str | os.PathLike[str]) -> int:
        """Store the objects of a JSON/YAML file as given (like restoring etcd); returns how many."""
        return self.load_objects(loader.read(path))

    def load_objects(self, objs: Iterable[Mapping[str, Any]]) -> int:
        n = 0
        with self.store.lock:
            was = self.controller.enabled
            self.controller.enabled = False
            try:
                for obj in objs:
                    o = orjson.loads(orjson.dumps(obj))
                    av, kind = str(o.get("apiVersion", "")), str(o.get("kind", ""))
                    rt = self.registry.by_kind(av, kind)
                    meta = o.setdefault("metadata", {})
                    if rt is None:
                        group, _, version = av.rpartition("/")
                        rt = self.register_kind(group, version, kind, kind.lower() + "s",
                                                namespaced=bool(meta.get("namespace")))
                    meta.setdefault("uid", str(uuid.uuid4()))
                    meta.setdefault("creationTimestamp", now_str())
                    if rt.namespaced and not meta.get("namespace"):
                        meta["namespace"] = "default"
                    self.store.put(rt, o, keep_rv=True)
                    n += 1
            finally:
                self.controller.enabled = was
                self.controller._index = None  # rebuilt lazily, now including loaded services
        return n

    # -- disturbance ------------------------------------------------------------------------------------

    def churn(self, n: int) -> builtins.list[str]:
        """Do ``n`` seeded mutations synchronously; returns a description of each."""
        return self.churner.run(n)

    def start_churn(self, rate: float) -> None:
        self.churner.start_background(rate)

    def stop_churn(self) -> None:
        self.churner.stop_background()

    def _churn_rate(self, rate: float) -> None:
        if rate > 0:
            self.start_churn(rate)
        else:
            self.stop_churn()

    def set_history_limit(self, n: int) -> None:
        """Keep at most ``n`` watch events; older resourceVersions then get 410 Gone."""
        self.store.set_history_limit(n)

    def compact(self) -> str:
        """Drop all watch history now, like an etcd compaction; returns the compacted rv."""
        return str(self.store.compact())
