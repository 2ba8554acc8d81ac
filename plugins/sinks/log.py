"""The ``log`` sink: one JSON object per change, one line each, to a file or stdout.

Options: ``path`` (default ``-``, stdout). Lines are appended, so a restart
continues the file; each batch is written with one call, so lines from
different clusters never interleave mid-line.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from navigator.plugin import Change, Sink, SinkPlugin, hookimpl

OPTIONS = ("path",)


class LogSink:
    def __init__(self, path: str = "-") -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: BinaryIO
        if path == "-":
            self._file, self._owned = sys.stdout.buffer, False
        else:
            target = Path(path).expanduser()
            if not target.parent.is_dir():
                raise ValueError(f"path: directory {target.parent} does not exist")
            self._file, self._owned = target.open("ab"), True

    def _write(self, data: bytes) -> None:
        with self._lock:
            self._file.write(data)
            self._file.flush()

    async def send(self, changes: Sequence[Change]) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        data = b"".join(orjson.dumps({"time": stamp, **c.as_dict()}) + b"\n" for c in changes)
        await asyncio.to_thread(self._write, data)

    async def close(self) -> None:
        with self._lock:
            if self._owned:
                self._file.close()
            else:
                self._file.flush()


def create(options: Mapping[str, Any]) -> Sink:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown log sink option {', '.join(unknown)} (known: {', '.join(OPTIONS)})")
    return LogSink(str(options.get("path") or "-"))


@hookimpl
def navigator_sinks() -> Iterable[SinkPlugin]:
    return [SinkPlugin(name="log", create=create, description="JSON lines of change events to a file or stdout")]
