"""Configuration models and loading for the edge and the manager."""

from navigator.config.edge import EdgeConfig
from navigator.config.loading import load_edge_config, load_manager_config
from navigator.config.manager import ManagerConfig

__all__ = ["EdgeConfig", "ManagerConfig", "load_edge_config", "load_manager_config"]
