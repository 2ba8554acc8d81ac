"""Default identities: unique per process so two edges never share an id by accident."""

import secrets
import socket


def default_instance_id() -> str:
    return f"{socket.gethostname()}-{secrets.token_hex(3)}"
