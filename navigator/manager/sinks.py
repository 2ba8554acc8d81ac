"""Fan-out of applied changes to every enabled sink; one failing sink never stalls the others."""

from __future__ import annotations

from collections.abc import Sequence

import pluggy
from loguru import logger

from navigator import plugin_manager
from navigator.config.manager import SinkSection
from navigator.errors import ConfigError
from navigator.interfaces import Sink
from navigator.resource import Change


class SinkFanout:
    def __init__(self, sinks: Sequence[tuple[str, Sink]] = ()) -> None:
        self.sinks = list(sinks)

    @classmethod
    def build(cls, pm: pluggy.PluginManager, sections: Sequence[SinkSection]) -> SinkFanout:
        offered = plugin_manager.sinks(pm, [s.plugin for s in sections])
        built: list[tuple[str, Sink]] = []
        for i, section in enumerate(sections):
            try:
                built.append((section.plugin, offered[section.plugin].create(section.options)))
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"sinks.{i}.options ({section.plugin}): {exc}") from None
        return cls(built)

    async def send(self, changes: Sequence[Change]) -> None:
        if not changes:
            return
        for name, sink in self.sinks:
            try:
                await sink.send(changes)
            except Exception as exc:
                logger.opt(exception=exc).error("sink {} failed to take {} changes", name, len(changes))

    async def close(self) -> None:
        for name, sink in self.sinks:
            try:
                await sink.close()
            except Exception as exc:
                logger.opt(exception=exc).error("sink {} failed to close", name)
