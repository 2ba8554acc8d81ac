"""docs/tls.md, run as written: its openssl commands make the certificates, its manager.yaml and
edge.yaml (the files of deploy/overlays/tls) run a manager with mTLS and an edge that presents
its certificate, and its query command reads the cluster back with a reader's certificate.

Only what cannot be the same on a test machine changes: the addresses (a free port on
127.0.0.1, with ``server_name`` standing for the names in the manager's certificate), the
directory of the certificates, the database, the metrics port (off) and the kubeconfig.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from navigator.testing.processes import Child, Fleet, free_port, navigator_command, wait_until

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "tls.md"
TITLED_BLOCK = re.compile(r'^```[\w+-]*\s+title="(?P<title>[^"]+)"[^\n]*\n(?P<body>.*?)^```\s*$', re.M | re.S)
BLOCKS = {m["title"]: m["body"] for m in TITLED_BLOCK.finditer(PAGE.read_text())}
MOUNT = "/etc/navigator/tls/"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page's certificates.sh, run in an empty directory."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    out = tmp_path_factory.mktemp("pki")
    script = out / "certificates.sh"
    script.write_text(BLOCKS["certificates.sh"])
    result = subprocess.run(
        ["bash", "-euo", "pipefail", str(script)], capture_output=True, text=True, cwd=out, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "manager.crt: OK" in result.stdout and "ops.crt: OK" in result.stdout, result.stdout
    return out


def localized(title: str, pki: Path) -> dict[str, Any]:
    """The page's YAML block with its certificate paths pointing into ``pki``."""
    return yaml.safe_load(BLOCKS[title].replace(MOUNT, f"{pki}/"))


def start_manager(fleet: Fleet, name: str, config: dict[str, Any], port: int) -> Child:
    config |= {"listen": f"127.0.0.1:{port}", "metrics": {"port": None}}
    config["storage"] = {"plugin": "sqlite", "options": {"path": str(fleet.tmp / f"{name}.db")}}
    path = fleet.tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return fleet.start(name, "manager", "--config", str(path))


def start_edge(fleet: Fleet, name: str, config: dict[str, Any], port: int, kubeconfig: Path) -> None:
    host = config["manager"]["address"].rpartition(":")[0]
    config["manager"] |= {"address": f"127.0.0.1:{port}", "reconnect": {"initial": "0.2s", "max": "1s"}}
    config["manager"]["tls"]["server_name"] = host  # the name the page dials, checked against the certificate
    config |= {"kubernetes": {"kubeconfig": str(kubeconfig)}, "metrics": {"port": None}}
    config["sync"] = {"interval": "2s", "adaptive": {"enabled": False}}
    path = fleet.tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    fleet.start(name, "edge", "--config", str(path))


def query(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(navigator_command(*args), capture_output=True, text=True, cwd=cwd, timeout=60)


def page_query(pki: Path, port: int) -> list[str]:
    """The page's query command, sent to 127.0.0.1:port but checking the name the page dials."""
    (line,) = [line for line in BLOCKS["query.sh"].splitlines() if line.startswith("navigator query")]
    args = shlex.split(line)[1:]
    at = args.index("--manager") + 1
    host = args[at].rpartition(":")[0]
    args[at] = f"127.0.0.1:{port}"
    return [*args, "--server-name", host, "-o", "json"]


def healthy(args: list[str], cwd: Path, cluster: str) -> bool:
    result = query(args, cwd)
    if result.returncode != 0:
        return False
    rows = {row["cluster"]: row for row in orjson.loads(result.stdout)}
    return cluster in rows and rows[cluster]["status"] == "HEALTHY"


def test_the_overlay_files_are_the_pages() -> None:
    for name in ("manager.yaml", "edge.yaml"):
        assert BLOCKS[f"deploy/overlays/tls/{name}"] == (ROOT / "deploy" / "overlays" / "tls" / name).read_text()


def test_mutual_tls_as_the_page_sets_it_up(pki: Path, fleet: Fleet) -> None:
    port = free_port()
    _sim, kubeconfig = fleet.kubesim("east", "--pods", "5", "--services", "2")
    manager = start_manager(fleet, "manager", localized("deploy/overlays/tls/manager.yaml", pki), port)
    edge = localized("deploy/overlays/tls/edge.yaml", pki)
    cluster = edge["cluster"]["id"]
    assert "token" not in edge["manager"] and "token_file" not in edge["manager"]  # the certificate is the credential
    start_edge(fleet, "edge", edge, port, kubeconfig)
    reader = page_query(pki, port)
    wait_until(lambda: healthy(reader, pki, cluster), f"{cluster} HEALTHY through mTLS", manager, timeout=90)
    # Refused: no client certificate, an edge's certificate as a reader, plaintext.
    without_certificate = [a for a in reader if a not in ("--cert-file", "ops.crt", "--key-file", "ops.key")]
    assert query(without_certificate, pki).returncode != 0
    as_edge = [{"ops.crt": "edge.crt", "ops.key": "edge.key"}.get(a, a) for a in reader]
    refused = query(as_edge, pki)
    assert refused.returncode != 0 and "reader" in refused.stderr, refused.stderr
    plaintext = ["query", "clusters", "--manager", f"127.0.0.1:{port}", "-o", "json"]
    assert query(plaintext, pki).returncode != 0


def test_tls_with_tokens_as_the_page_sets_it_up(pki: Path, fleet: Fleet) -> None:
    port = free_port()
    _sim, kubeconfig = fleet.kubesim("west", "--pods", "5", "--services", "2")
    manager = start_manager(fleet, "manager", localized("manager.yaml", pki), port)
    edge = localized("edge.yaml", pki)
    start_edge(fleet, "edge", edge, port, kubeconfig)
    host = BLOCKS["edge.yaml"].split("address:")[1].split()[0].rpartition(":")[0]
    reader = ["query", "clusters", "--manager", f"127.0.0.1:{port}", "--tls", "--ca-file", "ca.crt",
              "--server-name", host, "-o", "json"]  # fmt: skip
    wait_until(lambda: healthy(reader, pki, edge["cluster"]["id"]), "the cluster HEALTHY through TLS", manager, timeout=90)
    # The CA is what makes the manager's certificate trusted: the system's roots do not know it.
    assert query([a for a in reader if a not in ("--ca-file", "ca.crt")], pki).returncode != 0
