"""List installed plugins by group."""

from __future__ import annotations

import argparse

from navigator.cli.output import add_output_argument, print_json, print_table
from navigator.config.edge import EdgePlugins
from navigator.config.manager import ManagerPlugins, StorageSection
from navigator.plugin_manager import discover


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="every discovered plugin: group, name, distribution, version, enabled")
    add_output_argument(ls)
    ls.set_defaults(run=run_list)


def default_enabled() -> dict[str, list[str]]:
    """What a default edge plus a default manager enable."""
    edge, manager = EdgePlugins(), ManagerPlugins()
    return {
        "collectors": edge.collectors,
        "serializers": list(dict.fromkeys(edge.serializers + manager.serializers)),
        "transports": [edge.transport, manager.transport],
        "storage": [StorageSection().plugin],
        "sinks": [],
    }


def run_list(args: argparse.Namespace) -> int:
    found = discover(default_enabled())
    if args.output == "json":
        print_json([p.as_dict() for p in found])
    else:
        print_table(
            ["group", "name", "distribution", "version", "enabled"],
            [(p.group, p.name, p.distribution, p.version, "yes" if p.enabled else "") for p in found],
        )
    return 0
