"""The central manager: accepts edges, validates and persists their states, answers queries.

``navigator.manager.app.Manager`` builds everything from a ``ManagerConfig``;
the other modules each do one step of that work.
"""
