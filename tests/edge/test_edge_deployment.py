"""The in-cluster manifests in docs/deployment.md are valid and grant the edge exactly what it needs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from navigator.config import load_edge_config

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "deployment.md"


def manifests() -> list[dict[str, Any]]:
    blocks = re.findall(r"^```yaml\n(.*?)^```", PAGE.read_text(), re.M | re.S)
    (block,) = [b for b in blocks if "kind: Deployment" in b]
    return [d for d in yaml.safe_load_all(block) if d]


def by_kind(kind: str) -> dict[str, Any]:
    (found,) = [m for m in manifests() if m["kind"] == kind]
    return found


@pytest.mark.parametrize("manifest", manifests(), ids=lambda m: m["kind"])
def test_every_manifest_is_valid_kubernetes(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, "1.30.0", strict=True)


def test_cluster_role_is_exactly_list_and_watch_on_what_the_edge_collects() -> None:
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in by_kind("ClusterRole")["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert granted == {
        ("", "services"): {"list", "watch"},
        ("", "pods"): {"list", "watch"},
        ("discovery.k8s.io", "endpointslices"): {"list", "watch"},
    }
    binding = by_kind("ClusterRoleBinding")
    account = by_kind("ServiceAccount")["metadata"]
    assert binding["roleRef"]["name"] == by_kind("ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}]


def test_the_deployment_runs_the_configured_edge_with_its_token(tmp_path: Path) -> None:
    config_map, secret, deployment = by_kind("ConfigMap"), by_kind("Secret"), by_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == by_kind("ServiceAccount")["metadata"]["name"]
    (container,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    assert volumes["token"]["secret"]["secretName"] == secret["metadata"]["name"]
    assert container["args"] == ["edge", "--config", f"{mounts['config']}/edge.yaml"]

    (tmp_path / "edge.yaml").write_text(config_map["data"]["edge.yaml"])
    config = load_edge_config(tmp_path / "edge.yaml", environ={})
    assert config.kubernetes.kubeconfig is None  # in-cluster service account
    assert str(config.manager.token_file) == f"{mounts['token']}/token" and "token" in secret["stringData"]
    assert config.metrics.port == container["ports"][0]["containerPort"]


def test_the_image_defaults_to_the_same_config_path() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["navigator"]' in dockerfile
    assert 'CMD ["edge", "--config", "/etc/navigator/edge.yaml"]' in dockerfile
    assert "USER 10001" in dockerfile
    assert by_kind("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001
