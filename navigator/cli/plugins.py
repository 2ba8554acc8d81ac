"""List installed plugins by group."""

from __future__ import annotations

import argparse
from pathlib import Path

from navigator.cli.output import add_output_argument, print_json, print_table
from navigator.config import load_edge_config, load_manager_config
from navigator.config.common import TransportSection
from navigator.config.edge import EdgePlugins
from navigator.config.manager import ManagerPlugins, StorageSection
from navigator.plugin_manager import discover


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="every discovered plugin: group, name, distribution, version, enabled")
    add_output_argument(ls)
    ls.add_argument("--edge-config", type=Path, metavar="PATH", help="mark what this edge file enables")
    ls.add_argument("--manager-config", type=Path, metavar="PATH", help="mark what this manager file enables")
    ls.set_defaults(run=run_list)


def default_enabled() -> dict[str, list[str]]:
    """What a default edge plus a default manager enable."""
    edge, manager = EdgePlugins(), ManagerPlugins()
    return {
        "collectors": edge.collectors,
        "serializers": list(dict.fromkeys(edge.serializers + manager.serializers)),
        "transports": [TransportSection().plugin],
        "storage": [StorageSection().plugin],
        "sinks": [],
    }


def configured_enabled(edge_path: Path | None, manager_path: Path | None) -> dict[str, list[str]]:
    """The union of what the given files enable (defaults stand in for a file not given)."""
    if edge_path is None and manager_path is None:
        return default_enabled()
    enabled: dict[str, list[str]] = {}
    parts = []
    if edge_path is not None:
        parts.append(load_edge_config(edge_path).enabled_plugins())
    if manager_path is not None:
        parts.append(load_manager_config(manager_path).enabled_plugins())
    for part in parts:
        for kind, names in part.items():
            enabled[kind] = list(dict.fromkeys(enabled.get(kind, []) + names))
    return enabled


def run_list(args: argparse.Namespace) -> int:
    found = discover(configured_enabled(args.edge_config, args.manager_config))
    if args.output == "json":
        print_json([p.as_dict() for p in found])
    else:
        print_table(
            ["group", "name", "distribution", "version", "enabled"],
            [(p.group, p.name, p.distribution, p.version, "yes" if p.enabled else "") for p in found],
        )
    return 0
