"""deploy/: the compose example and the Kubernetes manifests against their schemas and against each other.

Schemas: the compose spec as vendored by check-jsonschema; Kubernetes 1.37 through kubernetes-validate (strict:
unknown fields are errors). Consistency: every aiModels.json entry names a runner whose PIPELINE, MODEL_ID,
token and capacity agree with it (contract 10), and the example files pass the aiModels validator.
"""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from fakes import FakeImageRunner

from runner_sdk.aimodels.results import load_reference
from runner_sdk.aimodels.validate import Severity, stops_node, validate_file, validate_text
from runner_sdk.settings import RunnerSettings
from runner_sdk.testing import RunningServer

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose" / "docker-compose.yml"
K8S = REPO / "deploy" / "k8s"
TOKEN = "tok_0123456789abcdefABCDEF"


def env_of(service: dict) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def clean(findings) -> list[str]:
    """Findings that matter for an example: anything that stops the node or is silently ignored."""
    return [str(f) for f in findings if f.severity is not Severity.ADVICE]


# --- compose ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def check_compose_schema(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                           str(path)], capture_output=True, text=True, timeout=120)


def test_compose_validates_against_the_compose_spec(tmp_path, compose):
    pytest.importorskip("check_jsonschema", reason="pip install check-jsonschema (vendors the compose spec)")
    proc = check_compose_schema(COMPOSE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The schema check can fail: a GPU reservation with capabilities as a string is rejected.
    broken = copy.deepcopy(compose)
    broken["services"]["runner-llm"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] = "gpu"
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    assert check_compose_schema(path).returncode != 0


def compose_aimodels(compose: dict) -> str:
    content = compose["configs"]["aimodels"]["content"]
    # Compose interpolation of ${RUNNER_TOKEN} (the only variable the file uses).
    assert set(re.findall(r"\$\{(\w+)[^}]*\}", content)) == {"RUNNER_TOKEN"}
    return re.sub(r"\$\{RUNNER_TOKEN\}", TOKEN, content)


def test_compose_aimodels_passes_the_validator(compose):
    findings = validate_text(compose_aimodels(compose))
    assert not stops_node(findings) and not clean(findings), [str(f) for f in findings]


def test_compose_entries_agree_with_their_runners(compose):
    services = compose["services"]
    entries = json.loads(compose_aimodels(compose))
    runners = {name for name in services if name.startswith("runner-")}
    assert {urlsplit(e["url"]).hostname for e in entries} == runners
    for entry in entries:
        url = urlsplit(entry["url"])
        env = env_of(services[url.hostname])
        assert url.port == RunnerSettings.model_fields["port"].default
        assert (env["PIPELINE"], env["MODEL_ID"]) == (entry["pipeline"], entry["model_id"])
        assert env["AUTH_TOKEN"].startswith("${RUNNER_TOKEN") and entry["token"] == TOKEN
        assert int(env["RUNNER_CAPACITY"]) == entry["capacity"]
        assert entry["warm"] is True
        assert services[url.hostname]["image"].endswith(":" + entry["pipeline"])


def test_compose_one_runner_per_gpu(compose):
    devices = []
    for name, service in compose["services"].items():
        if not name.startswith("runner-"):
            continue
        [reservation] = service["deploy"]["resources"]["reservations"]["devices"]
        assert reservation["driver"] == "nvidia" and reservation["capabilities"] == ["gpu"]
        assert len(reservation["device_ids"]) == 1
        devices += reservation["device_ids"]
    assert len(devices) == len(set(devices)) == 3


def test_compose_orchestrator_flags(compose):
    orch = compose["services"]["orchestrator"]
    flags = dict(f.lstrip("-").partition("=")[::2] for f in orch["command"])
    assert {"orchestrator", "aiWorker", "aiModels", "network", "aiRunnerImageOverrides"} <= set(flags)
    assert flags["network"] == "offchain"
    [config] = orch["configs"]
    assert config == {"source": "aimodels", "target": flags["aiModels"]}
    overrides = json.loads(flags["aiRunnerImageOverrides"])["batch"]
    for entry in json.loads(compose_aimodels(compose)):
        assert overrides[entry["pipeline"]] == f"livepeer-runner-sdk:{entry['pipeline']}"
    # go-livepeer starts only once every runner is healthy: external runners get 2 minutes, then the node aborts.
    runners = {n for n in compose["services"] if n.startswith("runner-")}
    assert orch["depends_on"] == {n: {"condition": "service_healthy"} for n in runners}
    assert "/var/run/docker.sock:/var/run/docker.sock" in orch["volumes"]


# --- Kubernetes ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


@pytest.fixture(scope="module")
def resources(kustomization) -> list[tuple[str, dict]]:
    docs = []
    for name in kustomization["resources"]:
        docs += [(name, d) for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def by_kind(resources, kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for _f, d in resources if d["kind"] == kind}


def test_k8s_manifests_validate_strictly(resources):
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    version = kv.latest_version()
    for _file, doc in resources:
        kv.validate(doc, version, strict=True)
    # Strict validation can fail: an unknown field in a container is rejected.
    deployment = copy.deepcopy(next(d for _f, d in resources if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["gpus"] = 1
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, version, strict=True)


def test_k8s_kustomization_is_complete(kustomization):
    for name in kustomization["resources"]:
        assert (K8S / name).is_file(), name
    [secret] = kustomization["secretGenerator"]
    example = (K8S / (secret["envs"][0] + ".example")).read_text()
    assert re.search(r"^AUTH_TOKEN=$", example, re.MULTILINE)
    assert secret["envs"][0] in (K8S / ".gitignore").read_text().split()


def container(deployment: dict) -> dict:
    [c] = deployment["spec"]["template"]["spec"]["containers"]
    return c


def test_k8s_runner_pods(resources, kustomization, docker_healthcheck):
    deployments = by_kind(resources, "Deployment")
    services = by_kind(resources, "Service")
    secret_name = kustomization["secretGenerator"][0]["name"]
    ref = load_reference()
    assert set(deployments) == {"runner-text-to-image", "runner-audio-to-text", "runner-llm"}
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]
        c = container(dep)
        env = {e["name"]: e for e in c["env"]}
        pipeline = env["PIPELINE"]["value"]
        assert name == f"runner-{pipeline}"
        # One whole GPU per pod.
        assert c["resources"]["limits"]["nvidia.com/gpu"] == "1" == c["resources"]["requests"]["nvidia.com/gpu"]
        assert env["AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": secret_name, "key": "AUTH_TOKEN"}
        assert env["MODEL_DIR"]["value"] == "/models"
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        claim = {v["name"]: v for v in pod["spec"]["volumes"]}[mounts["/models"]["name"]]
        assert claim["persistentVolumeClaim"]["claimName"] in by_kind(resources, "PersistentVolumeClaim")
        # Probes: readiness reads the JSON status (IDLE/OK), liveness tolerates LOADING, startup allows >= 5 min.
        ready = c["readinessProbe"]["exec"]["command"]
        alive = c["livenessProbe"]["exec"]["command"]
        assert ready[:3] == alive[:3] == docker_healthcheck[:3]
        assert ready[3:] == ["IDLE", "OK"] and sorted(alive[3:]) == ["IDLE", "LOADING", "OK"]
        startup = c["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
        assert c["ports"][0]["containerPort"] == RunnerSettings.model_fields["port"].default
        # GPU memory selection sized from the reference peak x 1.2 (ESTIMATES), in MiB.
        [term] = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"]
        [expr] = term["matchExpressions"]
        peak = ref.find(pipeline, env["MODEL_ID"]["value"]).peak_vram_bytes
        assert expr["key"] == "nvidia.com/gpu.memory" and expr["values"] == [str(math.floor(peak * 1.2 / 2**20))]
        # The Service selects exactly these pods.
        svc = services[name]
        assert svc["spec"]["selector"] == pod["metadata"]["labels"]
        assert svc["spec"]["ports"][0]["targetPort"] == c["ports"][0]["name"]


def test_k8s_aimodels_points_at_the_services(resources, kustomization):
    findings = validate_file(K8S / "aiModels.json")
    assert not clean(findings), clean(findings)
    deployments = by_kind(resources, "Deployment")
    services = by_kind(resources, "Service")
    for entry in json.loads((K8S / "aiModels.json").read_text()):
        url = urlsplit(entry["url"])
        service, namespace, *_rest = url.hostname.split(".")
        assert namespace == kustomization["namespace"] and url.hostname.endswith(".svc.cluster.local")
        assert url.port == services[service]["spec"]["ports"][0]["port"]
        env = {e["name"]: e.get("value") for e in container(deployments[service])["env"]}
        assert (env["PIPELINE"], env["MODEL_ID"]) == (entry["pipeline"], entry["model_id"])
        assert entry["capacity"] == deployments[service]["spec"]["replicas"] * int(env["RUNNER_CAPACITY"])


class SlowLoad(FakeImageRunner):
    load_s = 1.5


def test_k8s_probes_against_a_real_runner(resources, probe, tmp_path):
    c = container(by_kind(resources, "Deployment")["runner-text-to-image"])
    ready, alive = c["readinessProbe"]["exec"]["command"], c["livenessProbe"]["exec"]["command"]
    settings = RunnerSettings(pipeline="text-to-image", model_id="fake/model", model_dir=tmp_path, device="cpu")
    with RunningServer(SlowLoad, settings, wait_ready=False) as srv:
        srv.wait_until({"LOADING"}, 10)
        assert (probe(ready, srv.port), probe(alive, srv.port)) == (1, 0)  # loading: alive, not ready
        srv.wait_until({"IDLE"}, 30)
        assert (probe(ready, srv.port), probe(alive, srv.port)) == (0, 0)
