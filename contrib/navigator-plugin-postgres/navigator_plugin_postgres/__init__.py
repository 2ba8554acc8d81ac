"""PostgreSQL storage for Navigator, and the shared cluster claims that lets several managers run as one."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("navigator-plugin-postgres")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
