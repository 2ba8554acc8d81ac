"""``navigator query`` and ``navigator watch`` as real processes against a manager with ``auth.readers``:
``--token``, ``--token-file``, ``$NAVIGATOR_TOKEN``, and one clear line when the manager refuses."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from navigator.cli.main import build_parser
from navigator.testing.manager import TestManager, run_test_manager
from navigator.testing.raw_edge import RawEdge, full_state, pod
from navigator.v1 import sync_pb2

COMMAND = [sys.executable, "-m", "navigator.cli.main"]
READERS = [
    {"name": "ops", "token": "ops-cli-token"},
    {"name": "east-team", "token": "east-cli-token", "clusters": ["east"]},
]
TOKENS = {"east": "east-edge", "west": "west-edge"}
HINT = "give a reader's token: --token, --token-file or $NAVIGATOR_TOKEN"


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[TestManager]:
    async with run_test_manager(tmp_path, tokens=TOKENS, auth={"readers": READERS}) as mgr:
        for cluster in ("east", "west"):
            async with RawEdge(mgr.address, TOKENS[cluster]) as edge:
                await edge.identify(cluster, f"edge-{cluster}")
                state = full_state(cluster, f"edge-{cluster}", 1, {"pods": [pod(f"{cluster}-1")]})
                assert (await edge.send_state(state)).status == sync_pb2.ACK_STATUS_APPLIED
        yield mgr


async def navigator(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    environ = {k: v for k, v in os.environ.items() if k != "NAVIGATOR_TOKEN"}
    proc = await asyncio.create_subprocess_exec(
        *COMMAND, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**environ, **(env or {})}
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def clusters(out: str) -> list[str]:
    return [row["cluster"] for row in orjson.loads(out)]


async def test_token_from_the_flag_a_file_or_the_environment(manager: TestManager, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("ops-cli-token\n")
    base = ("query", "clusters", "--manager", manager.address, "-o", "json")
    for extra, env in (
        (("--token", "ops-cli-token"), None),
        (("--token-file", str(token_file)), None),
        ((), {"NAVIGATOR_TOKEN": "ops-cli-token"}),
        (("--token", "ops-cli-token"), {"NAVIGATOR_TOKEN": "wrong"}),  # the flag wins
    ):
        code, out, err = await navigator(*base, *extra, env=env)
        assert code == 0, err
        assert clusters(out) == ["east", "west"]


async def test_a_limited_reader_sees_its_clusters_only(manager: TestManager) -> None:
    code, out, err = await navigator(
        "query", "pods", "--manager", manager.address, "-o", "json", env={"NAVIGATOR_TOKEN": "east-cli-token"}
    )
    assert code == 0, err
    assert [(r["cluster"], r["name"]) for r in orjson.loads(out)] == [("east", "east-1")]
    code, out, err = await navigator(
        "query", "clusters", "--manager", manager.address, "-o", "json", "--token", "east-cli-token"
    )
    assert code == 0, err
    assert [(r["cluster"], r["edge_id"]) for r in orjson.loads(out)] == [("east", "")]


@pytest.mark.parametrize(
    "command",
    [
        ("query", "clusters"),
        ("query", "pods"),
        ("query", "changes"),
        ("query", "diff", "--from", "1h"),
        ("query", "service", "web"),
        ("watch", "pods"),
    ],
)
async def test_without_a_token_one_clear_line(manager: TestManager, command: tuple[str, ...]) -> None:
    code, out, err = await navigator(*command, "--manager", manager.address)
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: the manager at {manager.address} refused the query: ") and HINT in err


async def test_a_wrong_token_is_one_line_without_the_token(manager: TestManager) -> None:
    code, _, err = await navigator("query", "pods", "--manager", manager.address, "--token", "s3cr3t-guess")
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "s3cr3t-guess" not in err and HINT not in err  # a token was given: no hint to give one


async def test_another_readers_cluster_is_denied(manager: TestManager) -> None:
    for command in (("query", "pods"), ("watch", "pods")):
        code, _, err = await navigator(
            *command, "--cluster", "west", "--manager", manager.address, "--token", "east-cli-token"
        )
        assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
        assert "may not read cluster 'west'" in err


async def test_watch_with_a_token(manager: TestManager) -> None:
    proc = await asyncio.create_subprocess_exec(
        *COMMAND, "watch", "pods", "--initial", "-o", "json", "--manager", manager.address,
        "--token", "east-cli-token", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert orjson.loads(line)["cluster"] == "east" and orjson.loads(line)["name"] == "east-1"
    finally:
        proc.terminate()
        await proc.wait()


async def test_an_unreadable_token_file_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    code, _, err = await navigator("query", "pods", "--token-file", str(missing))
    assert code == 2 and err == f"error: --token-file: cannot read {missing}: No such file or directory\n"
    (tmp_path / "empty").write_text("\n")
    code, _, err = await navigator("query", "pods", "--token-file", str(tmp_path / "empty"))
    assert code == 2 and "is empty" in err


def test_every_query_and_watch_command_takes_the_token_options() -> None:
    parser = build_parser()
    commands = [["query", v] for v in ("clusters", "services", "endpointslices", "pods", "resources", "changes")]
    commands += [["query", "diff"], ["query", "service", "web"]]
    commands += [["watch", v] for v in ("pods", "services", "endpointslices", "resources")]
    for command in commands:
        args = parser.parse_args([*command, "--token", "t"])
        assert args.token == "t" and args.token_file is None, command
        args = parser.parse_args([*command, "--token-file", "/x"])
        assert args.token is None and str(args.token_file) == "/x", command
        with pytest.raises(SystemExit):
            parser.parse_args([*command, "--token", "t", "--token-file", "/x"])
