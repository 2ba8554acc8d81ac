"""The manager on the web: an HTTP API (with its OpenAPI document) and the dashboard, served by the manager's
own process next to the gRPC services, answering from the same query core (``http.listen`` in manager.yaml)."""
