"""kubeconfig files that both kubectl and the official Python client accept."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml


def build(
    server: str,
    *,
    cluster: str = "sim",
    user: str | None = None,
    context: str | None = None,
    token: str | None = None,
    ca_pem: bytes | None = None,
    namespace: str = "default",
) -> dict[str, Any]:
    user = user or f"{cluster}-user"
    context = context or cluster
    cl: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cl["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    u: dict[str, Any] = {"token": token} if token else {}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": cl}],
        "users": [{"name": user, "user": u}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user, "namespace": namespace}}],
        "current-context": context,
        "preferences": {},
    }


def write(path: str | os.PathLike[str], config: dict[str, Any]) -> Path:
    """Write atomically with 0600, as the file may hold a token."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    os.replace(tmp, p)
    return p
