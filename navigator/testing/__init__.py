"""What Navigator's own tests use, for plugin authors too.

- ``navigator.testing.kubesim``: a Kubernetes API server simulator.
- ``navigator.testing.harness``: a manager and edges in one process.
- ``navigator.testing.storage_conformance``: the suite every storage backend passes.
"""
