"""The Kubernetes and KServe manifests, checked against the real CLI parser and a live
server run as each container would run: every argument parses, every variable is one
batchserve reads, every probe path answers without the token, ports agree, and the
grace period covers the drain."""

from __future__ import annotations

import httpx
import pytest

from tests.deploy.manifests import DEPLOY, known_variables, parse_serve, start_like, yaml_documents

K8S = yaml_documents(DEPLOY / "k8s")
KSERVE = yaml_documents(DEPLOY / "kserve")
TOKEN = "manifest-token"


def _one(docs: list[dict], kind: str) -> dict:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


def _container_env(container: dict) -> dict[str, str]:
    """The container's variables as the kubelet would set them for a 2-CPU limit."""
    env = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif "resourceFieldRef" in var["valueFrom"]:
            field = var["valueFrom"]["resourceFieldRef"]["resource"]
            limits = container["resources"]["limits"]
            env[var["name"]] = str(limits[field.split(".", 1)[1]])
        # secretKeyRef values are the test's own token (start_like sets it)
    return env


def _probes(container: dict) -> list[dict]:
    return [
        container[p]["httpGet"]
        for p in ("startupProbe", "livenessProbe", "readinessProbe")
        if p in container
    ]


def _port_number(container: dict, port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p.get("name") == port)


CONTAINERS = {
    "Deployment": _one(K8S, "Deployment")["spec"]["template"]["spec"]["containers"][0],
    "ServingRuntime": _one(KSERVE, "ServingRuntime")["spec"]["containers"][0],
}


@pytest.mark.parametrize("kind", sorted(CONTAINERS))
def test_each_container_command_parses_and_its_ports_agree(kind):
    container = CONTAINERS[kind]
    args = parse_serve(container["args"])
    assert args.host == "0.0.0.0"
    assert {p["containerPort"] for p in container["ports"]} == {args.port, args.grpc_port}
    for probe in _probes(container):
        assert _port_number(container, probe["port"]) == args.port
    env = _container_env(container)
    assert set(env) | {v["name"] for v in container.get("env", [])} <= known_variables()


@pytest.mark.parametrize("kind", sorted(CONTAINERS))
def test_every_probe_path_answers_on_a_server_run_like_the_container(kind):
    container = CONTAINERS[kind]
    with start_like(container["args"], _container_env(container), token=TOKEN) as server:
        for probe in _probes(container):
            response = httpx.get(f"{server.url}{probe['path']}", timeout=5)
            assert response.status_code == 200, (probe, response.text)
        # The token is still needed for everything else.
        assert httpx.get(f"{server.url}/v2/models/shapes", timeout=5).status_code == 401


def test_the_grace_period_covers_the_pause_and_the_drain():
    pod = _one(K8S, "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    drain = parse_serve(container["args"]).drain_timeout
    pause = float(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] >= drain + pause
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60  # profile + download


def test_service_and_autoscaler_point_at_the_deployment():
    deployment = _one(K8S, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = _one(K8S, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = parse_serve(container["args"])
    for port in service["spec"]["ports"]:
        assert _port_number(container, port["targetPort"]) in (args.port, args.grpc_port)
    hpa = _one(K8S, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (
        hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    )


def test_the_inference_service_uses_the_runtime_and_its_model_folder():
    runtime = _one(KSERVE, "ServingRuntime")
    service = _one(KSERVE, "InferenceService")
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    formats = {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert model["modelFormat"]["name"] in formats
    assert "v2" in runtime["spec"]["protocolVersions"]
    args = parse_serve(runtime["spec"]["containers"][0]["args"])
    assert args.repository == ["/mnt/models"]  # where KServe puts the storageUri's files
    assert model["storageUri"].startswith(("s3://", "gs://", "pvc://", "https://"))
