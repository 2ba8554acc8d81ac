"""The Kubernetes manifests in deploy/ and the Dockerfile, checked without a cluster or docker.

Each kustomization is rendered with ``kubectl kustomize`` and validated against the
Kubernetes schemas (strict: no unknown fields); the rendered ConfigMaps are then loaded
with Navigator's own config loaders, their files laid out where the Deployments mount
them, so a config referring to a file nothing mounts fails here and not in a pod.
"""

from __future__ import annotations

import base64
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import orjson
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from navigator.config import load_edge_config, load_manager_config
from navigator.config.edge import EdgeConfig
from navigator.config.manager import ManagerConfig

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUSTOMIZATIONS = ["base", "base/manager", "base/edge", "overlays/postgres", "overlays/tls"]
#: The oldest Kubernetes with gRPC probes generally available, and the newest the validator knows.
KUBERNETES_VERSIONS = ["1.27.0", kubernetes_validate.utils.latest_version()]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

_rendered: dict[str, list[dict[str, Any]]] = {}


def render(kubectl: str, which: str) -> list[dict[str, Any]]:
    if which not in _rendered:
        result = subprocess.run(
            [kubectl, "kustomize", str(DEPLOY / which)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        _rendered[which] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return _rendered[which]


def by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def container(resources: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    (only,) = by_kind(resources, "Deployment")[deployment]["spec"]["template"]["spec"]["containers"]
    return only


def volume_files(resources: list[dict[str, Any]], deployment: str) -> dict[PurePosixPath, bytes | None]:
    """Every file the Deployment's container sees through its mounts: path -> content (None: a Secret
    made outside the kustomization, or a volume of no fixed content, e.g. the database's)."""
    spec = by_kind(resources, "Deployment")[deployment]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    config_maps, secrets = by_kind(resources, "ConfigMap"), by_kind(resources, "Secret")
    files: dict[PurePosixPath, bytes | None] = {}
    for mount in spec["containers"][0]["volumeMounts"]:
        volume = volumes[mount["name"]]
        target = PurePosixPath(mount["mountPath"])
        data: dict[str, bytes] | None = None
        if "configMap" in volume:
            data = {k: v.encode() for k, v in config_maps[volume["configMap"]["name"]]["data"].items()}
        elif "secret" in volume and volume["secret"]["secretName"] in secrets:
            secret = secrets[volume["secret"]["secretName"]]
            data = {k: base64.b64decode(v) for k, v in secret.get("data", {}).items()}
        if data is None:
            files[target] = None
        elif "subPath" in mount:
            files[target] = data[mount["subPath"]]
        else:
            files.update({target / key: value for key, value in data.items()})
    return files


def mounted(files: dict[PurePosixPath, bytes | None], path: PurePosixPath) -> bool:
    return path in files or any(files[p] is None and p in path.parents for p in files)


def container_env(resources: list[dict[str, Any]], box: dict[str, Any]) -> dict[str, str]:
    """The container's environment, values from the rendered Secrets resolved."""
    secrets = by_kind(resources, "Secret")
    environ = {}
    for item in box.get("env", []):
        if "value" in item:
            environ[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            environ[item["name"]] = base64.b64decode(secrets[ref["name"]]["data"][ref["key"]]).decode()
    return environ


def absolute_paths(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [p for value in node.values() for p in absolute_paths(value)]
    if isinstance(node, list):
        return [p for value in node for p in absolute_paths(value)]
    return [node] if isinstance(node, str) and node.startswith("/") else []


def load_config(resources: list[dict[str, Any]], deployment: str, tmp: Path) -> EdgeConfig | ManagerConfig:
    """The Deployment's config file, loaded as its container would, with every mounted file in place."""
    files = volume_files(resources, deployment)
    box = container(resources, deployment)
    config_path = PurePosixPath(box["args"][box["args"].index("--config") + 1])
    assert files.get(config_path), f"{deployment}: {config_path} is not mounted"
    text = files[config_path].decode()  # type: ignore[union-attr]
    # Every absolute path the file names must be inside a mount of this container.
    for found in absolute_paths(yaml.safe_load(text)):
        assert mounted(files, PurePosixPath(found)), f"{deployment}: {found} is not mounted"
    # Lay the mounts out under tmp, and point the file's paths there.
    for path, content in files.items():
        local = tmp / path.relative_to("/")
        if content is None:
            local.mkdir(parents=True, exist_ok=True)
        else:
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(content)
    tops = "|".join(sorted({re.escape(p.parts[1]) for p in files}))
    text = re.sub(rf"(?<![\w:])/({tops})/", lambda m: f"{tmp}/{m[1]}/", text)
    local_config = tmp / "config.yaml"
    local_config.write_text(text)
    environ = container_env(resources, box)
    if "manager" in box["args"]:
        return load_manager_config(local_config, environ=environ)
    return load_edge_config(local_config, environ=environ)


# --- rendering and validation ------------------------------------------------------------------


@pytest.mark.parametrize("which", KUSTOMIZATIONS)
def test_kustomization_renders_and_validates(kubectl_bin: str, which: str) -> None:
    resources = render(kubectl_bin, which)
    assert resources
    for version in KUBERNETES_VERSIONS:
        for resource in resources:
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                kind, name = resource["kind"], resource["metadata"]["name"]
                raise AssertionError(f"{which}: {kind}/{name} against {version}: {exc.message} at {exc.path}") from None
    for resource in resources:
        if resource["kind"] != "Namespace" and resource["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert resource["metadata"].get("namespace") == "navigator", resource["metadata"]


def test_base_has_what_a_cluster_admin_expects(kubectl_bin: str) -> None:
    resources = render(kubectl_bin, "base")
    kinds = sorted((r["kind"], r["metadata"]["name"].rsplit("-", 1)[0] if r["kind"] in ("ConfigMap", "Secret")
                    else r["metadata"]["name"]) for r in resources)  # fmt: skip
    assert kinds == sorted([
        ("Namespace", "navigator"),
        ("ServiceAccount", "navigator-manager"), ("ServiceAccount", "navigator-edge"),
        ("ClusterRole", "navigator-edge"), ("ClusterRoleBinding", "navigator-edge"),
        ("ConfigMap", "navigator-manager"), ("ConfigMap", "navigator-edge"),
        ("Secret", "navigator-manager-tokens"), ("Secret", "navigator-edge-token"),
        ("Service", "navigator-manager"), ("PersistentVolumeClaim", "navigator-manager-data"),
        ("Deployment", "navigator-manager"), ("Deployment", "navigator-edge"),
    ])  # fmt: skip
    for name in ("navigator-manager", "navigator-edge"):
        box = container(resources, name)
        assert box["image"] == f"registry.example.com/navigator:{VERSION}", box["image"]
        assert box["securityContext"]["readOnlyRootFilesystem"] is True
        assert box["securityContext"]["allowPrivilegeEscalation"] is False
        pod = by_kind(resources, "Deployment")[name]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True


def test_edge_rbac_is_list_and_watch_of_what_it_collects(kubectl_bin: str) -> None:
    resources = render(kubectl_bin, "base")
    roles = by_kind(resources, "ClusterRole") | by_kind(resources, "Role")
    assert list(roles) == ["navigator-edge"]
    granted = {
        (group, resource, verb)
        for rule in roles["navigator-edge"]["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {
        (group, resource, verb)
        for group, resource in [("", "services"), ("", "pods"), ("discovery.k8s.io", "endpointslices")]
        for verb in ("list", "watch")
    }
    bindings = by_kind(resources, "ClusterRoleBinding") | by_kind(resources, "RoleBinding")
    assert list(bindings) == ["navigator-edge"]
    assert bindings["navigator-edge"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "navigator-edge", "namespace": "navigator"}
    ]
    deployments = by_kind(resources, "Deployment")
    assert deployments["navigator-edge"]["spec"]["template"]["spec"]["serviceAccountName"] == "navigator-edge"
    # The manager reads nothing from the API: no binding, and no token in its pod.
    manager_pod = deployments["navigator-manager"]["spec"]["template"]["spec"]
    assert manager_pod["serviceAccountName"] == "navigator-manager"
    assert manager_pod["automountServiceAccountToken"] is False
    assert by_kind(resources, "ServiceAccount")["navigator-manager"]["automountServiceAccountToken"] is False


# --- the config files, as the pods see them ----------------------------------------------------


def test_base_configs_load_and_agree_with_the_manifests(kubectl_bin: str, tmp_path: Path) -> None:
    resources = render(kubectl_bin, "base")
    manager = load_config(resources, "navigator-manager", tmp_path / "manager")
    edge = load_config(resources, "navigator-edge", tmp_path / "edge")
    assert isinstance(manager, ManagerConfig) and isinstance(edge, EdgeConfig)
    # The manager: gRPC on the port the Service and the probes use; SQLite on the volume.
    port = int(manager.listen.rpartition(":")[2])
    box = container(resources, "navigator-manager")
    ports = {p["name"]: p["containerPort"] for p in box["ports"]}
    assert ports["grpc"] == port and ports["metrics"] == manager.metrics.port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert box[probe]["grpc"]["port"] == port, probe
    service = by_kind(resources, "Service")["navigator-manager"]
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {"grpc": "grpc", "metrics": "metrics"}
    database = Path(manager.storage.options["path"])
    volumes = {m["mountPath"]: m["name"] for m in box["volumeMounts"]}
    pod = by_kind(resources, "Deployment")["navigator-manager"]["spec"]["template"]["spec"]
    data = next(v for v in pod["volumes"] if v["name"] == volumes["/var/lib/navigator"])
    assert data["persistentVolumeClaim"]["claimName"] in by_kind(resources, "PersistentVolumeClaim")
    assert str(database).endswith("/var/lib/navigator/navigator.db")
    # The edge reaches the manager through its Service, with the token the manager expects.
    host, _, edge_port = edge.manager.address.rpartition(":")
    assert host == service["metadata"]["name"] and int(edge_port) == service["spec"]["ports"][0]["port"]
    assert manager.auth is not None
    assert manager.auth.tokens[edge.cluster.id] == edge.manager.resolved_token()
    edge_box = container(resources, "navigator-edge")
    assert edge_box["livenessProbe"]["httpGet"]["port"] == "metrics"
    assert {p["name"]: p["containerPort"] for p in edge_box["ports"]}["metrics"] == edge.metrics.port
    assert edge.kubernetes.kubeconfig is None  # the pod's ServiceAccount


def test_postgres_overlay_runs_several_managers_without_a_volume(kubectl_bin: str, tmp_path: Path) -> None:
    resources = render(kubectl_bin, "overlays/postgres")
    manager = load_config(resources, "navigator-manager", tmp_path)
    assert isinstance(manager, ManagerConfig) and manager.storage.plugin == "postgres"
    deployment = by_kind(resources, "Deployment")["navigator-manager"]
    assert deployment["spec"]["replicas"] >= 2 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert not by_kind(resources, "PersistentVolumeClaim")
    box = container(resources, "navigator-manager")
    assert box["image"] == f"registry.example.com/navigator:{VERSION}-postgres"
    # The plugin takes the options, with the DSN from the Secret through the environment.
    options = pytest.importorskip("navigator_plugin_postgres.options")
    parsed = options.parse_options(manager.storage.options, environ=container_env(resources, box))
    assert parsed.dsn.startswith("postgresql://")


def test_tls_overlay_configs_mount_their_certificates(kubectl_bin: str, tmp_path: Path) -> None:
    resources = render(kubectl_bin, "overlays/tls")
    manager = load_config(resources, "navigator-manager", tmp_path / "manager")
    edge = load_config(resources, "navigator-edge", tmp_path / "edge")
    assert isinstance(manager, ManagerConfig) and isinstance(edge, EdgeConfig)
    assert manager.tls.enabled and manager.tls.client_ca_file is not None
    assert edge.manager.tls.enabled and edge.manager.tls.cert_file is not None
    assert manager.auth is not None and manager.auth.identities == {"edge-production-east": edge.cluster.id}
    # The kubelet's gRPC probe cannot speak TLS: a TCP probe of the same port instead.
    box = container(resources, "navigator-manager")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "grpc" not in box[probe] and box[probe]["tcpSocket"]["port"] == "grpc", probe


# --- the image ---------------------------------------------------------------------------------

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_dockerfile_copies_what_exists_and_what_the_build_needs() -> None:
    sources = []
    for line in DOCKERFILE.splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources += words[1:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert not ignored & set(sources), ignored & set(sources)
    # Everything the navigator distribution's build reads is copied.
    assert {"pyproject.toml", "setup.py", "README.md", "navigator", "plugins"} <= set(sources)


def test_dockerfile_plugins_are_contrib_distributions() -> None:
    assert 'ARG PLUGINS=""' in DOCKERFILE
    assert "contrib/navigator-plugin-$p" in DOCKERFILE and "--no-index --find-links=/wheels" in DOCKERFILE
    # The postgres overlay's image is built with --build-arg PLUGINS=postgres.
    assert (ROOT / "contrib" / "navigator-plugin-postgres" / "pyproject.toml").is_file()
    assert "--build-arg PLUGINS=postgres" in (DEPLOY / "overlays" / "postgres" / "kustomization.yaml").read_text()


def setuptools_meets(*projects: Path) -> bool:
    try:
        installed = Version(importlib.metadata.version("setuptools"))
    except importlib.metadata.PackageNotFoundError:
        return False
    return all(
        req.specifier.contains(installed)
        for project in projects
        for req in map(Requirement, tomllib.loads((project / "pyproject.toml").read_text())["build-system"]["requires"])
        if req.name == "setuptools"
    )


def test_the_image_build_resolves_navigator_to_the_local_project(tmp_path: Path) -> None:
    """The build stage's ``pip wheel . ./contrib/navigator-plugin-postgres`` takes navigator from the
    source tree, never from an index: checked with the same resolver, dry-run."""
    report = tmp_path / "report.json"
    # Without build isolation when this environment's setuptools meets the build requirement (no index).
    isolation = ["--no-build-isolation"] if setuptools_meets(ROOT, ROOT / "contrib/navigator-plugin-postgres") else []
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", *isolation,
         "--quiet", "--report", str(report), ".", "./contrib/navigator-plugin-postgres"],
        capture_output=True, text=True, cwd=ROOT, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    chosen = {i["metadata"]["name"]: i for i in orjson.loads(report.read_bytes())["install"]}
    assert chosen["navigator"]["download_info"]["url"] == ROOT.as_uri()
    assert chosen["navigator"]["metadata"]["version"] == VERSION


def dockerfile_runs() -> list[tuple[int, str]]:
    """(stage number, command) of every RUN, continuation lines joined."""
    runs, stage = [], -1
    for instruction in re.sub(r"\\\n", " ", DOCKERFILE).splitlines():
        if instruction.startswith("FROM "):
            stage += 1
        elif instruction.startswith("RUN "):
            runs.append((stage, instruction[4:]))
    return runs


@pytest.mark.parametrize("plugins", ["", "postgres"])
def test_dockerfile_pip_steps_build_and_install_the_chosen_plugins(plugins: str, tmp_path: Path) -> None:
    """The shell of each RUN that calls pip, with a pip that records its arguments instead."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "pip.log"
    (bin_dir / "pip").write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    (bin_dir / "pip").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PLUGINS": plugins}
    steps = [(stage, cmd.replace("/wheels", str(tmp_path / "wheels"))) for stage, cmd in dockerfile_runs() if "pip " in cmd]
    assert [stage for stage, _ in steps] == [0, 1]
    for _stage, command in steps:
        result = subprocess.run(["sh", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
    built, installed = log.read_text().splitlines()
    extra = [f"navigator-plugin-{p}" for p in plugins.split()]
    assert built.split()[:1] == ["wheel"] and built.split()[-1 - len(extra):] == [".", *[f"./contrib/{e}" for e in extra]]
    assert installed.split()[0] == "install" and "--no-index" in installed.split()
    assert installed.split()[-1 - len(extra):] == ["navigator", *extra]


def test_dockerfile_refuses_an_unknown_plugin(tmp_path: Path) -> None:
    (_stage, command), *_ = [(s, c) for s, c in dockerfile_runs() if "pip " in c]
    env = {"PATH": "/usr/bin:/bin", "PLUGINS": "nosuch"}
    result = subprocess.run(["sh", "-c", command.replace("pip ", "true ")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert result.returncode != 0 and "contrib/navigator-plugin-nosuch" in result.stderr
