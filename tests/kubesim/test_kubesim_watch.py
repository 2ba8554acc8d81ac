"""Watches through ``kubernetes.watch.Watch``: initial events, resume, bookmarks, selectors, 410."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from navigator.kubesim import KubeSim

pytestmark = pytest.mark.timeout(60)


def _collect(stream: Any, n: int) -> list[tuple[str, str, str]]:
    out = []
    for ev in stream:
        obj = ev["object"]
        out.append((ev["type"], obj.metadata.name, obj.metadata.resource_version))
        if len(out) >= n:
            break
    return out


def test_initial_events_then_live_changes(sim: KubeSim, core: client.CoreV1Api) -> None:
    w = watch.Watch()
    n = sim.count("pods", "search")
    stream = w.stream(core.list_namespaced_pod, "search", timeout_seconds=10)
    initial = _collect(stream, n)
    assert {t for t, _, _ in initial} == {"ADDED"}
    assert sorted(name for _, name, _ in initial) == sorted(p["metadata"]["name"] for p in sim.list("pods", "search"))
    victim = initial[0][1]

    def mutate() -> None:
        time.sleep(0.2)
        sim.patch("pods", "search", victim, {"metadata": {"labels": {"touched": "1"}}})
        sim.delete("pods", "search", victim)

    threading.Thread(target=mutate).start()
    live = _collect(stream, 2)
    w.stop()
    assert [(t, name) for t, name, _ in live] == [("MODIFIED", victim), ("DELETED", victim)]
    assert int(live[1][2]) > int(live[0][2])


def test_resume_from_resource_version(sim: KubeSim, core: client.CoreV1Api) -> None:
    rv = core.list_pod_for_all_namespaces().metadata.resource_version
    done = sim.churn(6)
    # churn also writes EndpointSlices; the pod watch sees only pod events, in rv order
    events = []
    for ev in watch.Watch().stream(core.list_pod_for_all_namespaces, resource_version=rv, timeout_seconds=1):
        events.append(ev)
    assert events, done
    rvs = [int(e["object"].metadata.resource_version) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)
    assert all(e["type"] in ("ADDED", "MODIFIED", "DELETED") for e in events)
    touched = {d.split(" ", 1)[1].split("/", 1)[1] for d in done}
    assert {e["object"].metadata.name for e in events} == touched


def test_bookmarks(sim: KubeSim, core: client.CoreV1Api) -> None:
    sim.bookmark_interval = 0.2
    rv = core.list_namespaced_pod("search").metadata.resource_version
    resp = core.list_namespaced_pod("search", watch=True, resource_version=rv, allow_watch_bookmarks=True,
                                    timeout_seconds=1, _preload_content=False)
    lines = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
    marks = [e for e in lines if e["type"] == "BOOKMARK"]
    assert len(marks) >= 2
    assert marks[0]["object"]["kind"] == "Pod" and marks[0]["object"]["metadata"]["resourceVersion"] == rv


def test_timeout_seconds_ends_the_stream(sim: KubeSim, core: client.CoreV1Api) -> None:
    rv = sim.resource_version
    t0 = time.monotonic()
    events = list(watch.Watch().stream(core.list_namespaced_pod, "search", resource_version=rv, timeout_seconds=1))
    assert events == [] and 0.8 < time.monotonic() - t0 < 5


def test_selector_watch_sees_objects_enter_and_leave(sim: KubeSim, core: client.CoreV1Api) -> None:
    name = sim.list("pods", "search")[0]["metadata"]["name"]
    rv = sim.resource_version
    sim.patch("pods", "search", name, {"metadata": {"labels": {"tier": "gold"}}})
    sim.patch("pods", "search", name, {"metadata": {"labels": {"color": "red"}}})
    sim.patch("pods", "search", name, {"metadata": {"labels": {"tier": None}}})
    sim.patch("pods", "search", sim.list("pods", "search")[1]["metadata"]["name"], {"metadata": {"labels": {"x": "1"}}})
    events = list(watch.Watch().stream(core.list_namespaced_pod, "search", label_selector="tier=gold",
                                       resource_version=rv, timeout_seconds=1))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [
        ("ADDED", name), ("MODIFIED", name), ("DELETED", name)]
    named = list(watch.Watch().stream(core.list_pod_for_all_namespaces, field_selector=f"metadata.name={name}",
                                      resource_version=rv, timeout_seconds=1))
    assert len(named) == 3 and {e["type"] for e in named} == {"MODIFIED"}


def test_too_old_resource_version_gives_410(sim: KubeSim, core: client.CoreV1Api) -> None:
    rv = core.list_namespaced_pod("search").metadata.resource_version
    sim.churn(5)
    sim.compact()
    # the real server answers 200 and streams one ERROR event carrying a 410 Status ...
    req = urllib.request.Request(f"{sim.url}/api/v1/namespaces/search/pods?watch=1&resourceVersion={rv}")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
        lines = [json.loads(x) for x in r.read().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0]["type"] == "ERROR"
    st = lines[0]["object"]
    assert st["kind"] == "Status" and st["code"] == 410 and st["reason"] == "Expired"
    assert st["message"].startswith(f"too old resource version: {rv} (")
    # ... which kubernetes.watch.Watch retries once, then raises as ApiException(410)
    with pytest.raises(ApiException) as exc:
        list(watch.Watch().stream(core.list_namespaced_pod, "search", resource_version=rv, timeout_seconds=2))
    assert exc.value.status == 410


def test_history_limit_bounds_resume(sim: KubeSim, core: client.CoreV1Api) -> None:
    sim.set_history_limit(5)
    rv = sim.resource_version
    sim.churn(20)
    with pytest.raises(ApiException) as exc:
        list(watch.Watch().stream(core.list_pod_for_all_namespaces, resource_version=rv, timeout_seconds=1))
    assert exc.value.status == 410
    recent = sim.store.history[-1].rv - 1
    events = list(watch.Watch().stream(core.list_pod_for_all_namespaces, resource_version=str(recent),
                                       timeout_seconds=1))
    assert len(events) <= 1


def test_watch_survives_server_stop(make_sim: Any) -> None:
    s = make_sim(pods=5, services=1)
    with s.api_client() as api:
        core = client.CoreV1Api(api)
        got: list[str] = []

        def consume() -> None:
            try:
                for ev in watch.Watch().stream(core.list_pod_for_all_namespaces, timeout_seconds=30):
                    got.append(ev["type"])
            except Exception:
                got.append("error")

        t = threading.Thread(target=consume)
        t.start()
        started = time.monotonic() + 30  # the watch is open once its initial events are in
        while len(got) < 5 and time.monotonic() < started:
            time.sleep(0.02)
        t0 = time.monotonic()
        s.stop()
        t.join(10)
        assert not t.is_alive() and time.monotonic() - t0 < 10
        assert got[:5] == ["ADDED"] * 5
