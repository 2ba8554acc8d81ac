"""Collector tests run against the Kubernetes simulator through the official client."""

from navigator.testing.kubesim.pytest_fixtures import kubesim, kubesim_factory

__all__ = ["kubesim", "kubesim_factory"]
