"""Navigator: one live, queryable, persistent view of all your Kubernetes clusters."""

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("navigator")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

#: Marker for hook implementations: ``@navigator.hookimpl def navigator_collectors(): ...``
hookimpl = pluggy.HookimplMarker("navigator")

__all__ = ["__version__", "hookimpl"]
