"""Payload encodings: protobuf (default) and json."""
