"""The ``navigator`` command itself: help and version come without loading any sub-command."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from navigator.cli.main import COMMANDS

HEAVY = ("grpc", "kubernetes", "pydantic", "google.protobuf", "rich")

#: Runs ``navigator ARGS`` in a fresh interpreter, then prints what it had imported.
PROBE = """
import contextlib, io, json, sys
from navigator.cli.main import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(sys.argv[1:])
print(json.dumps(sorted(sys.modules)))
"""


def imported_by(*args: str) -> set[str]:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return set(orjson.loads(result.stdout.splitlines()[-1]))


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_help_and_version_import_no_sub_command(args: list[str]) -> None:
    # navigator --help took 0.9-2.8 s: every sub-command's imports (kubernetes, gRPC, pydantic) came first.
    names = imported_by(*args)
    loaded = {n for n in names if n in COMMANDS.values() or n in HEAVY or n.split(".")[0] in HEAVY}
    assert not loaded, sorted(loaded)


@pytest.mark.parametrize("command", ["kubesim", "version", "completion"])
def test_a_sub_command_imports_only_itself(command: str) -> None:
    names = imported_by(command, "--help")
    assert {m for m in COMMANDS.values() if m in names} == {COMMANDS[command]}


def test_every_sub_command_is_listed_with_its_summary() -> None:
    result = subprocess.run([sys.executable, "-m", "navigator.cli.main", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for name in COMMANDS:
        assert f"    {name}" in result.stdout
    assert "Query the manager across clusters" in result.stdout
