"""A fast, faithful Kubernetes API server simulator for tests (like envtest/kwok, in Python).

``KubeSim`` serves generated or loaded clusters over real HTTP(S) to the official clients and
kubectl; see docs/kubesim.md. The pytest fixtures live in ``.pytest_fixtures`` so importing
this package does not need pytest.
"""

from .errors import ApiError
from .faults import Faults
from .generate import ClusterSpec
from .loader import LoadError
from .resources import ResourceType
from .sim import KubeSim

__all__ = ["ApiError", "ClusterSpec", "Faults", "KubeSim", "LoadError", "ResourceType"]
