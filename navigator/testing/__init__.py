"""What Navigator's own tests use, for plugin authors too.

- ``navigator.kubesim``: a Kubernetes API server simulator.
- ``navigator.testing.manager`` and ``navigator.testing.edge``: a real manager and
  real edges in one process.
- ``navigator.testing.storage_conformance``: the suite every storage backend passes.
- ``navigator.testing.waiting``: an async test's wait for a condition.
"""
