"""A property-based run of the published OpenAPI document against a real manager with readers: no answer
is a 500, every answer fits the schema the document gives for it (status, content type, body), and a
request with made-up credentials is refused.

The manager runs in a thread of its own (the checks make blocking HTTP calls). The
change feed is left out: a stream that never ends (``test_api`` covers it). A 400 for a value the
schema allows is expected (a label selector's or a time's grammar is not in the schema), so that
check is off; 400 is a documented answer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.result import Err

from .conftest import READERS, serve

#: The reader every generated request is sent as (the checks also try without it, expecting 401).
TOKEN = {"Authorization": "Bearer ops-reader-token"}

#: Examples per operation: about 10 operations, the run stays within about 15 seconds.
EXAMPLES = 50


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path: Path = tmp_path_factory.mktemp("openapi")
    ready: list[str] = []
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        try:
            async with AsyncExitStack() as stack:
                served = await serve(tmp_path, stack, auth={"readers": READERS})
                ready.append(served.url)
                started.set()
                await stop.wait()
        except BaseException as exc:
            failure.append(exc)
            started.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(60)
    if failure:
        raise failure[0]
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def operations(url: str) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    found = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        found.append(result.ok())
    return [op for op in found if op.path != "/api/v1/events"]


def test_openapi_document_holds(live_url: str) -> None:
    ops = operations(live_url)
    assert {op.path for op in ops} >= {"/api/v1/clusters", "/api/v1/resources", "/api/v1/services/{namespace}/{name}"}
    for operation in ops:

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
            phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=live_url, headers=TOKEN, excluded_checks=[positive_data_acceptance])

        check()
