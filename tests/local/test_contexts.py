"""Which clusters ``navigator local`` watches, read from kubeconfig files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from navigator.errors import ConfigError
from navigator.local.contexts import (
    KubeContext,
    cluster_id,
    cluster_ids,
    kubeconfig_files,
    list_contexts,
    select,
)
from navigator.protocol import check_cluster_id


def kubeconfig(path: Path, *contexts: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": f"c-{n}", "cluster": {"server": "http://127.0.0.1:1"}} for n in contexts],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": n, "context": {"cluster": f"c-{n}", "user": "u"}} for n in contexts],
                "current-context": contexts[0],
            }
        )
    )
    return path


def test_every_context_of_every_file_first_definition_wins(tmp_path: Path) -> None:
    a = kubeconfig(tmp_path / "a", "prod", "staging")
    b = kubeconfig(tmp_path / "b", "staging", "dev")
    found = list_contexts([a, b])
    assert [(c.name, c.kubeconfig) for c in found] == [("prod", a), ("staging", a), ("dev", b)]
    assert found[0].cluster == "c-prod"


def test_kubeconfig_env_lists_several_files(tmp_path: Path) -> None:
    env = {"KUBECONFIG": f"{tmp_path / 'a'}:{tmp_path / 'b'}"}
    assert kubeconfig_files(None, env) == [tmp_path / "a", tmp_path / "b"]
    assert kubeconfig_files(tmp_path / "x", env) == [tmp_path / "x"]


def test_unknown_context_names_the_known_ones(tmp_path: Path) -> None:
    found = list_contexts([kubeconfig(tmp_path / "a", "prod", "staging")])
    assert [c.name for c in select(found, ["staging"])] == ["staging"]
    with pytest.raises(ConfigError, match=r"no context named 'qa'.*has: prod, staging"):
        select(found, ["prod", "qa"])


def test_missing_or_empty_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no kubeconfig found"):
        list_contexts([tmp_path / "nope"])
    (tmp_path / "empty").write_text("")
    with pytest.raises(ConfigError, match="no contexts"):
        list_contexts([tmp_path / "empty"])
    (tmp_path / "bad").write_text("contexts: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        list_contexts([tmp_path / "bad"])


def test_context_names_become_valid_distinct_cluster_ids() -> None:
    eks = "arn:aws:eks:us-east-1:123456789012:cluster/Production"
    for name in (eks, "kind-kind", "GKE_Project_Zone", "-weird-", "x" * 100):
        check_cluster_id(cluster_id(name))
    assert cluster_id("kind-kind") == "kind-kind"
    assert cluster_id(eks) == "arn-aws-eks-us-east-1-123456789012-cluster-production"

    same = [KubeContext(name, Path("kubeconfig"), "") for name in ("Prod", "prod", "PROD")]
    assert cluster_ids(same) == ["prod", "prod-2", "prod-3"]
