"""Which clusters ``navigator local`` watches: the contexts of a kubeconfig, as cluster ids.

Without ``--kubeconfig`` the files kubectl would read are used (``$KUBECONFIG``,
possibly several, else ``~/.kube/config``); like kubectl, the first file that
defines a context wins. The edge gets that file and the context name, so the
official client does the auth (tokens, exec plugins, certificates) exactly as
kubectl does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from navigator.errors import ConfigError

_INVALID = re.compile(r"[^a-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class KubeContext:
    name: str
    kubeconfig: Path
    #: The kubeconfig's cluster entry the context points at (shown as metadata).
    cluster: str


def kubeconfig_files(explicit: Path | None, environ: Mapping[str, str] | None = None) -> list[Path]:
    if explicit is not None:
        return [explicit.expanduser()]
    environ = os.environ if environ is None else environ
    listed = [p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p.strip()]
    return [Path(p).expanduser() for p in listed] or [Path("~/.kube/config").expanduser()]


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read kubeconfig {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"kubeconfig {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"kubeconfig {path}: expected a mapping at the top level")
    return data


def list_contexts(files: Sequence[Path]) -> list[KubeContext]:
    """Every context in ``files``, in file order; a name defined twice keeps its first definition."""
    found: dict[str, KubeContext] = {}
    existing = [f for f in files if f.is_file()]
    if not existing:
        raise ConfigError(f"no kubeconfig found (looked at {', '.join(str(f) for f in files)}); pass --kubeconfig")
    for path in existing:
        for entry in _read(path).get("contexts") or []:
            if not isinstance(entry, dict) or not entry.get("name"):
                continue
            name = str(entry["name"])
            cluster = str((entry.get("context") or {}).get("cluster") or "")
            found.setdefault(name, KubeContext(name=name, kubeconfig=path, cluster=cluster))
    if not found:
        raise ConfigError(f"no contexts in {', '.join(str(f) for f in existing)}")
    return list(found.values())


def select(contexts: Sequence[KubeContext], wanted: Sequence[str] | None) -> list[KubeContext]:
    """``wanted`` in the order given, or all; an unknown name is an error listing the known ones."""
    if not wanted:
        return list(contexts)
    by_name = {c.name: c for c in contexts}
    unknown = [w for w in wanted if w not in by_name]
    if unknown:
        raise ConfigError(
            f"--contexts: no context named {', '.join(repr(u) for u in unknown)} "
            f"(the kubeconfig has: {', '.join(by_name)})"
        )
    return [by_name[w] for w in dict.fromkeys(wanted)]


def cluster_id(context: str) -> str:
    """A valid Navigator cluster id from a context name (``arn:aws:eks:...`` included)."""
    text = _INVALID.sub("-", context.lower()).strip("-_.")[:63].strip("-_.")
    return text or "cluster"


def cluster_ids(contexts: Sequence[KubeContext]) -> list[str]:
    """One distinct id per context, numbered when two names collapse to the same id."""
    ids: list[str] = []
    for context in contexts:
        base = cluster_id(context.name)
        candidate, n = base, 2
        while candidate in ids:
            suffix = f"-{n}"
            candidate, n = base[: 63 - len(suffix)] + suffix, n + 1
        ids.append(candidate)
    return ids
