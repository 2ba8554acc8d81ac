"""The HTTP server's life with the manager's: a port in use stops the start, saying which, and leaves nothing
listening; off unless configured."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from navigator.errors import NavigatorError
from navigator.testing.manager import run_test_manager


async def test_a_port_in_use_stops_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(NavigatorError, match=f"^http.listen: address 127.0.0.1:{port} is already in use$"):
            async with run_test_manager(tmp_path, http={"listen": f"127.0.0.1:{port}"}):
                pass


async def test_off_unless_configured(tmp_path: Path) -> None:
    async with run_test_manager(tmp_path) as mgr:
        assert mgr.manager.http_url is None
