"""Watch a running fleet until a deadline or Ctrl-C: a live view on a terminal, status lines otherwise."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from rich.console import Console

from navigator.demo.dashboard import DashboardInfo, LiveDashboard, status_lines
from navigator.demo.status import FleetStatus, StatusPoller

#: Without a terminal, a status line per cluster this often (and whenever a status changes).
PLAIN_EVERY = 5.0


class _PlainPrinter:
    def __init__(self, info: DashboardInfo, console: Console) -> None:
        self.info = info
        self.console = console
        self.shown: tuple[dict[str, str], list[str]] = ({}, [])
        self.printed_at = 0.0
        self.commands_shown: list[str] = []

    def _print(self, line: str) -> None:
        self.console.print(line, highlight=False, soft_wrap=True, markup=False)

    def update(self, fleet: FleetStatus, elapsed: float) -> None:
        if not self.commands_shown:
            self._print(f"{self.info.title}: manager {self.info.manager_address}")
            for detail in self.info.details:
                self._print(detail)
        new = [c for c in self.info.commands if c not in self.commands_shown]
        if new:
            self._print("try meanwhile, in another terminal:")
            for command in new:
                self._print(f"  {command}")
            self.commands_shown += new
        shown = ({c.cluster: c.status for c in fleet.clusters}, list(fleet.notices))
        if shown != self.shown or time.monotonic() - self.printed_at >= PLAIN_EVERY:
            for line in status_lines(fleet):
                self._print(line)
            self.shown, self.printed_at = shown, time.monotonic()


def watch(
    poller: StatusPoller,
    info: DashboardInfo,
    *,
    started: float,
    deadline: float | None,
    live: bool,
    console: Console,
    notices: Callable[[], list[str]] = list,
    on_reading: Callable[[FleetStatus], None] | None = None,
    refresh: float = 1.0,
) -> FleetStatus:
    """Poll the manager every ``refresh`` seconds and show it; return the last reading.

    ``started`` and ``deadline`` are ``time.monotonic()`` values; with no
    ``deadline`` it runs until Ctrl-C, which ends the watch, not the caller.
    """
    last = poller.poll()
    with contextlib.ExitStack() as stack:
        view: LiveDashboard | _PlainPrinter
        view = stack.enter_context(LiveDashboard(info, console)) if live else _PlainPrinter(info, console)
        try:
            while True:
                last.notices = notices()
                if on_reading is not None:
                    on_reading(last)
                view.update(last, time.monotonic() - started)
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                time.sleep(refresh if deadline is None else min(refresh, deadline - now))
                last = poller.poll()
        except KeyboardInterrupt:
            # Ctrl-C can land between two readings: one last look, so the final report is current.
            with contextlib.suppress(KeyboardInterrupt):
                last = poller.poll()
    return last
