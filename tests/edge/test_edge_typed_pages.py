"""The fast path at the edge: pages decoded into a collector's item_type, odd objects left out, GC left as found."""

from __future__ import annotations

import asyncio
import gc
import time
from types import SimpleNamespace
from typing import Any

import msgspec
import orjson
import pytest
from loguru import logger
from navigator_plugins.collectors import pods

from navigator.config.edge import KubernetesSection
from navigator.edge.collect import KindCollector
from navigator.edge.kube import KubeApiError, KubeClient
from navigator.edge.watch import KindWatcher
from navigator.interfaces import Collector
from navigator.kubesim import KubeSim
from navigator.resource import Resource

from .conftest import PROTOBUF, kube_section


class Canned(KubeClient):
    """Answers every list with ``body``: pages no simulated API server would send."""

    def __init__(self, body: bytes) -> None:
        super().__init__(SimpleNamespace(configuration=SimpleNamespace(host="https://k8s.test")))  # type: ignore[arg-type]
        self.body = body

    def _get(self, path: str, query: Any, timeout: Any, gzip: bool = False) -> Any:
        return SimpleNamespace(data=self.body, release_conn=lambda: None)


def pod(name: str, **fields: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "1"}
    return {"metadata": meta, **fields}


def page(*items: Any, token: str = "next") -> bytes:
    meta = {"resourceVersion": "42", "continue": token, "remainingItemCount": 9}
    return orjson.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": list(items)})


class SizeSpec(msgspec.Struct):
    size: int | None = None


class Sized(msgspec.Struct):
    """A third party's item type, strictly typed (and not gc=False)."""

    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    spec: SizeSpec | None = None


def sized_resource(obj: Sized) -> Resource:
    meta = obj.metadata
    return Resource(
        kind="gadgets", namespace=meta.get("namespace", ""), name=meta.get("name", ""), uid=meta.get("uid", ""),
        resource_version=meta.get("resourceVersion", ""), data={"size": obj.spec.size if obj.spec else None},
    )  # fmt: skip


def test_a_typed_page_pages_like_a_dict_page(kubesim: KubeSim, kube_client: KubeClient) -> None:
    plain = kube_client.list_page("/api/v1/pods", limit=7)
    typed = kube_client.list_page("/api/v1/pods", limit=7, item_type=pods.Pod)
    assert all(isinstance(item, pods.Pod) for item in typed.items) and typed.rejected == []
    assert [p.metadata.name for p in typed.items] == [p["metadata"]["name"] for p in plain.items]
    assert (typed.resource_version, typed.size) == (plain.resource_version, plain.size)
    assert typed.continue_token and typed.continue_token == plain.continue_token


def test_an_object_of_the_wrong_shape_is_left_out_with_its_reason() -> None:
    client = Canned(page(pod("a"), pod("b", spec={"containers": "oops"}), 7, pod("c")))
    result = client.list_page("/api/v1/pods", limit=10, item_type=pods.Pod)
    assert [p.metadata.name for p in result.items] == ["a", "c"]
    assert result.rejected == [
        "default/b does not fit Pod: Expected `array | null`, got `str` - at `$.spec.containers`",
        "an object does not fit Pod: Expected `object`, got `int`",
    ]
    assert (result.resource_version, result.continue_token) == ("42", "next")


def test_a_page_that_fails_strict_decoding_is_read_again_leniently() -> None:
    client = Canned(
        page({"metadata": {"name": "g"}, "spec": {"size": "3"}}, {"spec": {"size": "big"}}, token="")
    )
    result = client.list_page("/apis/example.com/v1/gadgets", limit=10, item_type=Sized)
    assert [g.spec.size for g in result.items] == [3]  # "3" is taken for an int; "big" is not
    assert result.rejected == [
        "an object does not fit Sized: Expected `int | null`, got `str` - at `$.spec.size`"
    ]
    assert result.continue_token is None


class Picky(msgspec.Struct):
    """An item type whose own check refuses some objects, with any exception."""

    name: str = ""

    def __post_init__(self) -> None:
        if self.name == "key":
            raise KeyError(self.name)
        if self.name == "value":
            raise ValueError("not this one")


def test_an_item_types_own_checks_refuse_only_their_object() -> None:
    client = Canned(page({"name": "a"}, {"name": "key"}, {"name": "value"}, {"name": "b"}, token=""))
    result = client.list_page("/x", limit=10, item_type=Picky)
    assert [p.name for p in result.items] == ["a", "b"]
    assert result.rejected == [
        "an object does not fit Picky: KeyError('key')",
        "an object does not fit Picky: not this one",
    ]


@pytest.mark.parametrize("item_type", [None, pods.Pod], ids=["dicts", "typed"])
@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"items": [', "https://k8s.test/api/v1/pods returned a list that is not JSON: "),
        (b"", "https://k8s.test/api/v1/pods returned a list that is not JSON: "),
        (b"[1, 2]", "https://k8s.test/api/v1/pods returned list, expected a list object"),
    ],
    ids=["truncated", "empty", "array"],
)
def test_a_response_that_is_not_a_list_is_an_api_error(body: bytes, error: str, item_type: Any) -> None:
    with pytest.raises(KubeApiError) as err:
        Canned(body).list_page("/api/v1/pods", limit=10, item_type=item_type)
    assert err.value.status == 0 and str(err.value).startswith(error)


@pytest.mark.parametrize("item_type", [None, pods.Pod], ids=["dicts", "typed"])
def test_null_items_and_metadata_are_an_empty_last_page(item_type: Any) -> None:
    result = Canned(b'{"metadata": null, "items": null}').list_page(
        "/api/v1/pods", limit=10, item_type=item_type
    )
    assert (result.items, result.resource_version, result.continue_token, result.rejected) == (
        [],
        "",
        None,
        [],
    )


class Watched(msgspec.Struct):
    """Notes whether the garbage collector was on while it was decoded."""

    def __post_init__(self) -> None:
        SEEN_GC.append(gc.isenabled())


SEEN_GC: list[bool] = []


def test_the_gc_is_off_while_a_page_decodes_and_left_as_found() -> None:
    assert gc.isenabled()
    SEEN_GC.clear()
    Canned(page({}, {}, token="")).list_page("/x", limit=10, item_type=Watched)
    assert SEEN_GC == [False, False] and gc.isenabled()
    with pytest.raises(KubeApiError):
        Canned(b"{").list_page("/x", limit=10, item_type=Watched)
    with pytest.raises(KubeApiError):
        Canned(b"{").list_page("/x", limit=10)
    assert gc.isenabled()
    gc.disable()
    try:
        Canned(page({}, token="")).list_page("/x", limit=10, item_type=Watched)
        Canned(page({}, token="")).list_page("/x", limit=10)
        assert not gc.isenabled()  # whoever turned it off keeps it off
    finally:
        gc.enable()


async def test_objects_that_do_not_fit_are_skipped_counted_and_named() -> None:
    client = Canned(page(pod("a"), pod("b", status={"conditions": {"Ready": True}}), pod("c"), token=""))
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(m.record["message"]), level="WARNING")
    try:
        result = await KindCollector(pods.COLLECTOR, client, KubernetesSection(), PROTOBUF).collect()
    finally:
        logger.remove(sink)
    assert result.ok and result.skipped == 1
    assert sorted(r.name for r in result.resources) == ["a", "c"]
    assert warnings == [
        "pods: skipping an object the collector cannot read: default/b does not fit Pod: "
        "Expected `array | null`, got `object` - at `$.status.conditions`"
    ]


async def test_watch_events_go_through_the_item_type(kubesim: KubeSim, kube_client: KubeClient) -> None:
    kubesim.register_kind("example.com", "v1", "Gadget", "gadgets")
    collector = Collector("gadgets", "example.com/v1", "gadgets", sized_resource, item_type=Sized)
    events: list[tuple[str, Resource]] = []
    broken: list[str] = []
    watcher = KindWatcher(
        collector, kube_client, kube_section(kubesim), asyncio.get_running_loop(),
        lambda kind, r: events.append((kind, r)), lambda kind, why: broken.append(why),
    )  # fmt: skip
    watcher.start(kubesim.resource_version)
    try:
        await asyncio.sleep(0.2)
        gadget = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"namespace": "default"}}
        kubesim.create({**gadget, "metadata": {"name": "odd", "namespace": "default"}, "spec": {"size": [1]}})
        kubesim.create({**gadget, "metadata": {"name": "ok", "namespace": "default"}, "spec": {"size": "5"}})
        deadline = time.monotonic() + 10
        while not events and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        watcher.stop()
    assert broken == []
    assert [(kind, r.name, r.data) for kind, r in events] == [("ADDED", "ok", {"size": 5})]
