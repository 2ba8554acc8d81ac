"""The dashboard in real Chromium against ``navigator demo`` (simulated clusters, a manager, edges: real
processes): the overview, a label search across clusters, a service's page, and a pod deleted through the
cluster's API leaving the page without a reload.

Both clusters get the same ``shop/checkout`` service with two ready pods, written through
their Kubernetes API as kubectl would. With ``NAVIGATOR_SCREENSHOTS=DIR`` the tests save the
pages they look at into DIR (the docs' images are made this way).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, Page, expect, sync_playwright

from navigator.testing.processes import Fleet

from .conftest import CHROMIUM_ARGS

CLUSTERS = ("production-east", "staging-west")
T = TypeVar("T")


def wait(what: str, check: Callable[[], T | None], timeout: float = 90.0) -> T:
    """Until ``check`` gives something; the test fails saying what it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g}s for {what}")
        time.sleep(0.2)


class Kube:
    """A simulated cluster's API over plain HTTP, as kubectl talks to it."""

    def __init__(self, kubeconfig: Path) -> None:
        server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        self.http = httpx.Client(base_url=server, timeout=10)

    def create(self, path: str, body: dict[str, Any]) -> None:
        response = self.http.post(path, json=body)
        assert response.status_code in (200, 201, 409), response.text

    def ready_pod(self, name: str, ip: str) -> None:
        """A pod of the checkout service, Running and Ready (the status a kubelet would report)."""
        self.create("/api/v1/namespaces/shop/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": "checkout"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "shop/checkout:1"}]},
        })  # fmt: skip
        status = {
            "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0, "image": "shop/checkout:1",
                                   "imageID": "", "started": True, "state": {"running": {}}}],
        }  # fmt: skip
        response = self.http.patch(
            f"/api/v1/namespaces/shop/pods/{name}/status", json={"status": status},
            headers={"Content-Type": "application/merge-patch+json"},
        )  # fmt: skip
        assert response.status_code == 200, response.text

    def delete_pod(self, name: str) -> None:
        response = self.http.delete(f"/api/v1/namespaces/shop/pods/{name}")
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Iterator[tuple[str, dict[str, Kube]]]:
    """``navigator demo`` with two clusters, each given ``shop/checkout`` with two ready pods; its dashboard URL."""
    tmp = tmp_path_factory.mktemp("demo")
    fleet = Fleet(tmp)
    try:
        proc = fleet.start(
            "demo", "demo", "--clusters", "2", "--pods", "30", "--interval", "2s", "--dir", str(tmp / "fleet"),
            "--no-dashboard", "--port", "0", "--metrics-port", "0", "--duration", "900",
        )  # fmt: skip
        url = proc.wait_for(re.compile(r"dashboard: (http://\S+)"), timeout=120).group(1).rstrip("/")
        api = httpx.Client(base_url=url, timeout=10)
        wait("both clusters HEALTHY", lambda: _up(api))
        kubes = {c: Kube(tmp / "fleet" / "clusters" / f"{c}.kubeconfig") for c in CLUSTERS}
        for i, kube in enumerate(kubes.values()):
            kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
            kube.create("/api/v1/namespaces/shop/services", {
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "checkout", "namespace": "shop", "labels": {"app": "checkout"}},
                "spec": {"selector": {"app": "checkout"},
                         "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
            })  # fmt: skip
            kube.ready_pod("checkout-1", f"10.{i}.0.11")
            kube.ready_pod("checkout-2", f"10.{i}.0.12")

        def synced() -> bool:
            view = api.get("/api/v1/services/shop/checkout")
            return view.status_code == 200 and sorted(
                (c["cluster"], c["ready_endpoints"]) for c in view.json()["clusters"]
            ) == [(c, 2) for c in CLUSTERS]

        wait("the checkout service ready in both clusters", synced)
        yield url, kubes
    finally:
        fleet.stop_all()


def _up(api: httpx.Client) -> bool:
    try:
        items = api.get("/api/v1/clusters").json()["items"]
    except httpx.HTTPError:
        return False
    return sorted(c["cluster"] for c in items if c["status"] == "HEALTHY") == list(CLUSTERS)


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    outside: list[str] = []
    # No request leaves the manager: the page must work offline (no CDN, no third-party script).
    opened.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:")) else outside.append(r.url))
    try:
        yield opened
    finally:
        context.close()
    assert not outside, f"the dashboard asked for something outside the manager: {outside}"


def screenshot(page: Page, name: str) -> None:
    folder = os.environ.get("NAVIGATOR_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"dashboard-{name}.png"), full_page=True)


def test_overview_lists_the_demo_clusters_healthy(demo: tuple[str, dict[str, Kube]], page: Page) -> None:
    url, _ = demo
    page.goto(url + "/")
    for cluster in CLUSTERS:
        row = page.locator(f'#clusters tr[data-cluster="{cluster}"]')
        expect(row.locator(".status .badge")).to_have_text("HEALTHY", timeout=30_000)
    expect(page.locator("#clusters tbody tr")).to_have_count(2)
    screenshot(page, "overview")


def test_label_search_finds_pods_in_two_clusters(demo: tuple[str, dict[str, Kube]], page: Page) -> None:
    url, _ = demo
    page.goto(url + "/#/search")
    page.fill("#search input[name=selector]", "app=checkout")
    page.click("#search button[type=submit]")
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(4, timeout=15_000)
    found = sorted(rows.nth(i).get_attribute("data-cluster") or "" for i in range(4))
    assert found == sorted([*CLUSTERS, *CLUSTERS])
    screenshot(page, "search")


def test_service_page_shows_ready_endpoints_per_cluster(demo: tuple[str, dict[str, Kube]], page: Page) -> None:
    url, _ = demo
    page.goto(url + "/#/service/shop/checkout")
    for cluster in CLUSTERS:
        card = page.locator(f'.service-cluster[data-cluster="{cluster}"]')
        expect(card.locator("h3 .badge")).to_have_text("2/2 ready", timeout=15_000)
        expect(card.locator("tr.pod")).to_have_count(2)
    screenshot(page, "service")


def test_deleted_pod_leaves_the_page_without_a_reload(demo: tuple[str, dict[str, Kube]], page: Page) -> None:
    url, kubes = demo
    page.goto(url + "/#/service/shop/checkout")
    card = page.locator(f'.service-cluster[data-cluster="{CLUSTERS[0]}"]')
    pod = card.locator('tr.pod[data-pod="checkout-2"]')
    expect(pod).to_have_count(1, timeout=15_000)
    expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"), timeout=15_000)  # the feed is subscribed
    page.evaluate("window.navigatorMarker = 'still the same page'")
    kubes[CLUSTERS[0]].delete_pod("checkout-2")
    expect(pod).to_have_count(0, timeout=30_000)
    expect(card.locator("h3 .badge")).to_have_text("1/1 ready", timeout=30_000)
    assert page.evaluate("window.navigatorMarker") == "still the same page"
    # The other cluster's copy is untouched.
    expect(page.locator(f'.service-cluster[data-cluster="{CLUSTERS[1]}"] tr.pod')).to_have_count(2)


def test_change_feed_shows_changes_live(demo: tuple[str, dict[str, Kube]], page: Page) -> None:
    url, kubes = demo
    page.goto(url + "/#/changes?namespace=shop")
    expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"), timeout=15_000)
    kubes[CLUSTERS[1]].ready_pod("checkout-3", "10.1.0.13")
    row = page.locator('#feed tbody tr[data-name="checkout-3"]').first
    expect(row).to_be_visible(timeout=30_000)
    screenshot(page, "changes")
