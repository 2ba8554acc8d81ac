"""The one discovery path: stevedore finds entry points, pluggy holds what was loaded.

Only the names enabled in the YAML are imported (per group, in configured
order); every loaded object is registered with a plugin manager built here, and
the core only ever calls its hooks. The built-in plugins come in the same way.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pluggy
from stevedore import NamedExtensionManager

from navigator import hookspecs
from navigator.errors import ConfigError, PluginError
from navigator.interfaces import Collector, Serializer, SinkPlugin, StoragePlugin, Transport, TransportPlugin

#: Plugin kind (as used in config and docs) -> entry-point group.
GROUPS: dict[str, str] = {
    "collectors": "navigator.collectors",
    "serializers": "navigator.serializers",
    "transports": "navigator.transports",
    "storage": "navigator.storage",
    "sinks": "navigator.sinks",
}

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One discovered entry point, as ``navigator plugins list`` shows it."""

    group: str
    name: str
    distribution: str
    version: str
    enabled: bool
    target: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "enabled": self.enabled,
            "target": self.target,
        }


def create_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager with Navigator's hook specifications and nothing registered."""
    pm = pluggy.PluginManager("navigator")
    pm.add_hookspecs(hookspecs)
    return pm


def _entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    """Entry points of a group, without importing them; identical duplicates folded.

    A manager naming no plugin loads none (``ExtensionManager(group)`` would import every one):
    listing stays fast (``navigator version``, ``plugins list``) and a broken plugin cannot stop it.
    """
    seen: dict[tuple[str, str], importlib.metadata.EntryPoint] = {}
    for ep in NamedExtensionManager(group, names=[]).list_entry_points():
        seen.setdefault((ep.name, ep.value), ep)
    return list(seen.values())


@functools.cache
def _owners() -> dict[tuple[str, str, str], tuple[str, str]]:
    """(group, name, target) -> (distribution, version): stevedore's cache drops ``ep.dist``."""
    owners: dict[tuple[str, str, str], tuple[str, str]] = {}
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group.startswith("navigator."):
                owners.setdefault((ep.group, ep.name, ep.value), (dist.metadata["Name"] or "unknown", dist.version))
    return owners


def _distribution(ep: importlib.metadata.EntryPoint) -> tuple[str, str]:
    if ep.dist is not None:
        return ep.dist.metadata["Name"] or "unknown", ep.dist.version
    return _owners().get((ep.group, ep.name, ep.value), ("unknown", ""))


def discover(enabled: Mapping[str, Sequence[str]] | None = None) -> list[PluginInfo]:
    """Every installed plugin of every group; ``enabled`` maps group -> enabled names."""
    enabled = enabled or {}
    found = []
    for kind, group in GROUPS.items():
        on = set(enabled.get(kind, ()))
        for ep in sorted(_entry_points(group), key=lambda e: e.name):
            dist, version = _distribution(ep)
            found.append(PluginInfo(group, ep.name, dist, version, ep.name in on, ep.value))
    return found


def _check_names(kind: str, group: str, names: Sequence[str]) -> None:
    eps = _entry_points(group)
    installed = sorted({ep.name for ep in eps})
    missing = [n for n in names if n not in installed]
    if missing:
        raise PluginError(
            f"{kind} plugin {', '.join(repr(m) for m in missing)} is not installed "
            f"(installed {group}: {', '.join(installed) or 'none'})"
        )
    for name in dict.fromkeys(names):
        targets = [ep for ep in eps if ep.name == name]
        if len(targets) > 1:
            where = "; ".join(f"{ep.value} from {_distribution(ep)[0]}" for ep in targets)
            raise PluginError(f"{kind} plugin name {name!r} is provided more than once in {group}: {where}")


def load_plugins(
    enabled: Mapping[str, Sequence[str]], pm: pluggy.PluginManager | None = None
) -> pluggy.PluginManager:
    """Import the enabled entry points of each group and register them.

    ``enabled`` maps a plugin kind (a key of ``GROUPS``) to names. Unknown names,
    duplicate names and plugins that fail to import raise ``PluginError``.
    """
    pm = pm or create_plugin_manager()
    for kind, names in enabled.items():
        if kind not in GROUPS:
            raise PluginError(f"unknown plugin kind {kind!r} (known: {', '.join(GROUPS)})")
        if not names:
            continue
        group = GROUPS[kind]
        _check_names(kind, group, names)

        def failed(_manager: Any, ep: importlib.metadata.EntryPoint, err: BaseException, kind: str = kind) -> None:
            dist, version = _distribution(ep)
            raise PluginError(
                f"{kind} plugin {ep.name!r} from distribution {dist} {version} failed to load "
                f"({ep.value}): {type(err).__name__}: {err}"
            ) from err

        manager: NamedExtensionManager[Any] = NamedExtensionManager(
            group,
            names=list(dict.fromkeys(names)),
            name_order=True,
            on_load_failure_callback=failed,
            on_missing_entrypoints_callback=None,
        )
        for ext in manager.extensions:
            if not pm.is_registered(ext.plugin):
                pm.register(ext.plugin, name=f"{group}:{ext.name}")
    return pm


def _by_name(kind: str, results: Iterable[Iterable[T]], names: Sequence[str] | None) -> dict[str, T]:
    offered: dict[str, T] = {}
    for batch in results:
        for item in batch or ():
            offered.setdefault(item.name, item)  # type: ignore[attr-defined]
    if names is None:
        return offered
    missing = [n for n in names if n not in offered]
    if missing:
        raise PluginError(
            f"no loaded plugin offers {kind} {', '.join(repr(m) for m in missing)} "
            f"(offered: {', '.join(sorted(offered)) or 'none'})"
        )
    return {n: offered[n] for n in names}


def collectors(pm: pluggy.PluginManager, names: Sequence[str] | None = None) -> dict[str, Collector]:
    return _by_name("collector", pm.hook.navigator_collectors(), names)


def serializers(pm: pluggy.PluginManager, names: Sequence[str] | None = None) -> dict[str, Serializer]:
    return _by_name("serializer", pm.hook.navigator_serializers(), names)


def transport(pm: pluggy.PluginManager, name: str) -> TransportPlugin:
    return _by_name("transport", pm.hook.navigator_transports(), [name])[name]


def create_transport(pm: pluggy.PluginManager, name: str, options: Mapping[str, Any]) -> Transport:
    """The named transport built from ``transport.options``: a bad option stops startup with one line."""
    plugin = transport(pm, name)
    try:
        return plugin.create(options)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"transport ({name}): {exc}") from None


def storage_backend(pm: pluggy.PluginManager, name: str) -> StoragePlugin:
    return _by_name("storage backend", pm.hook.navigator_storage_backends(), [name])[name]


def sinks(pm: pluggy.PluginManager, names: Sequence[str] | None = None) -> dict[str, SinkPlugin]:
    return _by_name("sink", pm.hook.navigator_sinks(), names)
