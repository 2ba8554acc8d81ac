"""Show the versions of navigator, its protocol, Python and every installed plugin distribution.

What a bug report needs in one command: the plugins come from the same
discovery as ``navigator plugins list`` (entry points, read without importing
any plugin), so this stays fast and works even when a plugin is broken.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from typing import Any

from navigator import __version__
from navigator.plugin_manager import GROUPS, discover
from navigator.protocol import PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table", help="output format")
    parser.set_defaults(run=run)


def distributions() -> list[dict[str, Any]]:
    """One entry per distribution that declares plugins: its version and the plugin names per kind."""
    kinds = {group: kind for kind, group in GROUPS.items()}
    found: dict[str, dict[str, Any]] = {}
    for plugin in discover():
        entry = found.setdefault(
            plugin.distribution, {"distribution": plugin.distribution, "version": plugin.version, "provides": {}}
        )
        entry["provides"].setdefault(kinds[plugin.group], []).append(plugin.name)
    # navigator itself first, then the others by name
    return sorted(found.values(), key=lambda d: (d["distribution"] != "navigator", d["distribution"]))


def report() -> dict[str, Any]:
    return {
        "navigator": __version__,
        "protocol": {"version": PROTOCOL_VERSION, "supported": list(SUPPORTED_PROTOCOL_VERSIONS)},
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation()},
        "plugins": distributions(),
    }


def render(data: dict[str, Any]) -> str:
    protocol = data["protocol"]
    python = data["python"]
    lines = [
        f"navigator  {data['navigator']}",
        f"protocol   {protocol['version']} (a manager accepts {', '.join(map(str, protocol['supported']))})",
        f"python     {python['version']} ({python['implementation']})",
        "plugins:",
    ]
    rows = [
        (d["distribution"], d["version"] or "?", "; ".join(f"{k}: {', '.join(v)}" for k, v in d["provides"].items()))
        for d in data["plugins"]
    ]
    if not rows:
        lines.append("  (none installed)")
    name_width = max((len(r[0]) for r in rows), default=0)
    version_width = max((len(r[1]) for r in rows), default=0)
    for name, version, provides in rows:
        lines.append(f"  {name:<{name_width}}  {version:<{version_width}}  {provides}".rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    data = report()
    if args.output == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(render(data) + "\n")
    return 0
