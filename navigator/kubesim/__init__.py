"""A fast, faithful Kubernetes API server simulator for tests (like envtest/kwok, in Python).

``KubeSim`` serves generated or loaded clusters over real HTTP(S) to the official clients and
kubectl; see docs/kubesim.md. The public names load on first use: the pytest fixtures in
``.pytest_plugin`` are registered in every test session through a ``pytest11`` entry point,
and a session that never asks for a simulator should not pay for importing one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import ApiError
    from .faults import Faults
    from .generate import ClusterSpec
    from .loader import LoadError
    from .resources import ResourceType
    from .sim import KubeSim

#: Public name -> the submodule that defines it.
_HOMES = {
    "ApiError": "errors",
    "ClusterSpec": "generate",
    "Faults": "faults",
    "KubeSim": "sim",
    "LoadError": "loader",
    "ResourceType": "resources",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


__all__ = ["ApiError", "ClusterSpec", "Faults", "KubeSim", "LoadError", "ResourceType"]
