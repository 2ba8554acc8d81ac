"""How edges and managers talk: gRPC (default) and in-process (tests)."""
