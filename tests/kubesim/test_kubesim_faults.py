"""Injected faults, the HTTP control API, bearer tokens and TLS, seen through the real client."""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client

from navigator.kubesim import KubeSim

pytestmark = pytest.mark.timeout(60)


def _call(sim: KubeSim, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(sim.url + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read()), r.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers


def test_status_fault_only_hits_its_kind(sim: KubeSim, core: client.CoreV1Api) -> None:
    sim.faults.set("pods", 500)
    with pytest.raises(client.ApiException) as exc:
        core.list_pod_for_all_namespaces()
    st = json.loads(exc.value.body)
    assert exc.value.status == 500 and st["reason"] == "InternalError" and st["kind"] == "Status"
    assert core.list_service_for_all_namespaces().items
    sim.faults.clear("pods")
    assert len(core.list_pod_for_all_namespaces().items) == 60


def test_429_has_retry_after(sim: KubeSim, core: client.CoreV1Api) -> None:
    sim.faults.set("services", 429)
    with pytest.raises(client.ApiException) as exc:
        core.list_namespaced_service("search")
    assert exc.value.status == 429
    assert exc.value.headers["Retry-After"] == "1"
    st = json.loads(exc.value.body)
    assert st["reason"] == "TooManyRequests" and st["details"]["retryAfterSeconds"] == 1


def test_fault_times_then_recovers(sim: KubeSim, core: client.CoreV1Api) -> None:
    sim.faults.set("pods", 503, times=2)
    for _ in range(2):
        with pytest.raises(client.ApiException) as exc:
            core.list_namespaced_pod("search")
        assert exc.value.status == 503
    assert core.list_namespaced_pod("search").items


def test_fault_limited_to_verbs(sim: KubeSim, core: client.CoreV1Api) -> None:
    sim.faults.set("namespaces", 500, verbs=["list"])
    assert core.read_namespace("default").metadata.name == "default"
    with pytest.raises(client.ApiException):
        core.list_namespace()


def test_latency(sim: KubeSim, core: client.CoreV1Api) -> None:
    sim.faults.latency("pods", 0.4)
    t0 = time.monotonic()
    core.list_namespaced_pod("search")
    assert time.monotonic() - t0 >= 0.4
    t0 = time.monotonic()
    core.list_namespace()
    assert time.monotonic() - t0 < 0.4


def test_drop_mid_list_breaks_the_client_once(sim: KubeSim, core: client.CoreV1Api) -> None:
    sim.faults.drop_mid_list("pods", times=1)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        core.list_pod_for_all_namespaces()
    assert len(core.list_pod_for_all_namespaces().items) == 60


def test_control_endpoint(sim: KubeSim, core: client.CoreV1Api) -> None:
    code, body, _ = _call(sim, "PUT", "/_kubesim/faults", {"kind": "pods", "status": 500, "times": 1})
    assert code == 200 and body["faults"][0]["status"] == 500
    with pytest.raises(client.ApiException):
        core.list_namespaced_pod("search")
    core.list_namespaced_pod("search")
    _call(sim, "PUT", "/_kubesim/faults", [{"kind": "services", "status": 429}, {"kind": "pods", "latency": 0.01}])
    assert len(_call(sim, "GET", "/_kubesim/faults")[1]["faults"]) == 2
    assert _call(sim, "DELETE", "/_kubesim/faults")[1] == {"faults": []}
    rv = int(sim.resource_version)
    code, body, _ = _call(sim, "POST", "/_kubesim/churn", {"n": 4})
    assert code == 200 and len(body["done"]) == 4 and int(body["resourceVersion"]) > rv
    code, body, _ = _call(sim, "POST", "/_kubesim/compact")
    assert body["resourceVersion"] == sim.resource_version
    assert _call(sim, "GET", "/_kubesim/state")[1]["counts"]["pods"] == sim.count("pods")
    assert _call(sim, "PUT", "/_kubesim/faults", {"kind": "pods", "status": 200})[0] == 400


def test_bearer_token(make_sim: Callable[..., KubeSim]) -> None:
    s = make_sim(pods=3, services=1, token="s3cret")
    code, body, _ = _call(s, "GET", "/api/v1/pods")
    assert code == 401 and body["reason"] == "Unauthorized" and body["code"] == 401
    assert _call(s, "GET", "/api/v1/pods", token="wrong")[0] == 401
    assert _call(s, "GET", "/api/v1/pods", token="s3cret")[0] == 200
    with s.api_client() as api:
        assert len(client.CoreV1Api(api).list_pod_for_all_namespaces().items) == 3


def test_tls_kubeconfig(make_sim: Callable[..., KubeSim]) -> None:
    s = make_sim(pods=3, services=1, tls=True, token="t", name="secure", context="ctx")
    assert s.url.startswith("https://127.0.0.1:")
    assert s.kubeconfig_path is not None
    cfg = yaml.safe_load(s.kubeconfig_path.read_text())
    assert cfg["current-context"] == "ctx" and cfg["clusters"][0]["name"] == "secure"
    ca = base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"])
    assert ca.startswith(b"-----BEGIN CERTIFICATE-----")
    with s.api_client() as api:
        assert len(client.CoreV1Api(api).list_pod_for_all_namespaces().items) == 3
    # the CA really is what verifies the server
    with pytest.raises(urllib.error.URLError) as exc:
        urllib.request.urlopen(s.url + "/version", context=ssl.create_default_context(), timeout=5)
    assert isinstance(exc.value.reason, ssl.SSLCertVerificationError)
    ctx = ssl.create_default_context(cadata=ca.decode())
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(s.url + "/version", context=ctx, timeout=5)
    assert denied.value.code == 401  # TLS verified; /version needs the token too
