"""The production manifests parse, every workload has health probes and resource requests, and every CMR_*
variable they set is a real setting (a typo would silently fall back to a default)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cmr.config import Settings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
K8S = DEPLOY / "k8s" / "base"
SERVICES = {"kafka", "qdrant", "triton", "encoder", "search", "generator", "ingest", "ui"}
_VAR = re.compile(r"\bCMR_[A-Z0-9_]+\b")


def _known(var: str) -> bool:
    return var.removeprefix("CMR_").lower() in Settings.model_fields


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def k8s_objects() -> list[dict]:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    out = []
    for res in kust["resources"]:
        assert (K8S / res).exists(), f"kustomization lists {res}, which does not exist"
        out += _docs(K8S / res)
    return out


def workloads() -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in k8s_objects() if o["kind"] in ("Deployment", "StatefulSet")}


def test_every_service_is_deployed_with_probes_and_resources() -> None:
    w = workloads()
    assert set(w) == SERVICES
    for name, obj in w.items():
        for c in obj["spec"]["template"]["spec"]["containers"]:
            assert "readinessProbe" in c and "livenessProbe" in c, name
            req = c["resources"]["requests"]
            assert "cpu" in req and "memory" in req, name
            assert "memory" in c["resources"]["limits"], name


def test_grpc_services_use_tls_health_probes_on_their_service_names() -> None:
    # Kubernetes' native gRPC probes cannot speak TLS: the probe is `python -m cmr.rpc.probe grpc ...` (TLS from
    # the pod's own settings), on the container's port and the service's health name.
    w = workloads()
    expected = {"encoder": "cmr.v1.EncoderService", "search": "cmr.v1.SearchService",
                "generator": "cmr.v1.GeneratorService", "triton": "cmr.v1.EncoderService"}
    for name, service in expected.items():
        c = w[name]["spec"]["template"]["spec"]["containers"][0]
        port = c["ports"][0]["containerPort"]
        for probe in ("startupProbe", "readinessProbe"):
            assert c[probe]["exec"]["command"] == ["python", "-m", "cmr.rpc.probe", "grpc", f"127.0.0.1:{port}",
                                                   service], (name, probe)
    gpu = w["triton"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu.get("nvidia.com/gpu") == 1


def test_every_service_has_tls_and_verifies_tokens() -> None:
    config = next(o for o in k8s_objects() if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "cmr-config")
    assert config["data"]["CMR_TLS"] == "true" and config["data"]["CMR_TLS_MUTUAL"] == "true"
    assert config["data"]["CMR_AUTH_MODE"] == "jwt"
    certificates = {o["spec"]["secretName"] for o in k8s_objects() if o["kind"] == "Certificate"}
    w = workloads()
    for name in ("triton", "encoder", "search", "generator", "ingest", "ui"):
        spec = w[name]["spec"]["template"]["spec"]
        secrets = {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        assert f"cmr-tls-{name}" in secrets and f"cmr-tls-{name}" in certificates, name
        mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert {"/tls", "/auth/public"} <= mounts, name
        signing = "cmr-token-signing" in secrets
        assert signing == (name == "ui"), f"{name}: only the UI may hold the token-signing key"


def test_kafka_is_kraft_and_qdrant_is_a_three_node_cluster() -> None:
    w = workloads()
    kafka_env = {e["name"]: e.get("value") for e in w["kafka"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller" and "ZOOKEEPER" not in " ".join(kafka_env)
    assert w["kafka"]["spec"]["replicas"] == 3 and w["qdrant"]["spec"]["replicas"] == 3
    q_env = {e["name"]: e.get("value") for e in w["qdrant"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert q_env["QDRANT__CLUSTER__ENABLED"] == "true"


def test_k8s_env_vars_are_settings() -> None:
    names: set[str] = set()
    for o in k8s_objects():
        if o["kind"] == "ConfigMap":
            names |= set(o["data"])
        elif o["kind"] == "Secret":
            names |= set(o.get("stringData", {}))
        elif o["kind"] in ("Deployment", "StatefulSet"):
            for c in o["spec"]["template"]["spec"]["containers"]:
                names |= {e["name"] for e in c.get("env", [])}
    cmr = {n for n in names if n.startswith("CMR_")}
    assert len(cmr) > 10
    assert [n for n in cmr if not _known(n)] == []


def test_compose_services_have_healthchecks_resources_and_known_settings() -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)
    services = compose["services"]
    assert {"kafka", "qdrant-0", "qdrant-1", "qdrant-2", "triton", "encoder", "search", "generator", "ingest",
            "ui"} <= set(services)
    for name, svc in services.items():
        assert "healthcheck" in svc, name
        assert "reservations" in svc["deploy"]["resources"], name
    assert "KAFKA_PROCESS_ROLES" in services["kafka"]["environment"]
    unknown = sorted({v for v in _VAR.findall(text) if not _known(v)} - {"CMR_STUDIES_DIR"})
    assert unknown == []  # CMR_STUDIES_DIR is the host folder mounted at /studies, not a setting


@pytest.mark.parametrize("path", [DEPLOY / "Dockerfile"])
def test_dockerfile_installs_from_exact_pins(path: Path) -> None:
    text = path.read_text()
    assert "--no-deps -r requirements.lock" in text and 'ENTRYPOINT ["cmr"]' in text
