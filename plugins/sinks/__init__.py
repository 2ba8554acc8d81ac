"""Change-event sinks: ``log`` (JSON lines) and ``webhook`` (batched HTTP POST)."""
