"""deploy/k8s: every manifest valid offline, and names, labels, ports, probes and settings agreeing with the app."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import kubernetes_validate
import pytest
import yaml
from botocore.credentials import EnvProvider
from rq import Queue

from studio import create_app, settings
from studio.queue import photo_queues
from tests.support.network import free_port
from tests.support.deploy import make_app

ROOT = settings.PROJECT_ROOT
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"
# Kinds of operators the cluster may lack; kubernetes-validate has no schema for them (checked by hand below).
CUSTOM_GROUPS = ("keda.sh/", "monitoring.coreos.com/")
SECRET = "studio-secrets"
APP_CONTAINERS = ("studio-web", "studio-worker", "studio-scheduler", "studio-webhooks")


def kustomizations() -> list[Path]:
    """Return every kustomization.yaml under deploy/k8s."""
    return sorted(K8S.rglob("kustomization.yaml"))


def load(path: Path) -> dict[str, Any]:
    """Return the one YAML document of a file."""
    documents = [document for document in yaml.safe_load_all(path.read_text()) if document]
    assert len(documents) == 1, f"{path}: one object a file"
    return documents[0]


def manifest_files() -> list[Path]:
    """Return every file some kustomization lists as a resource (directories excluded)."""
    files = []
    for kustomization in kustomizations():
        for entry in load(kustomization).get("resources", []):
            path = (kustomization.parent / entry).resolve()
            if path.is_file():
                files.append(path)
    return sorted(set(files))


MANIFESTS = {path: load(path) for path in manifest_files()}
BASE = {(manifest["kind"], manifest["metadata"]["name"]): manifest
        for path, manifest in MANIFESTS.items() if path.parent == K8S / "base"}


def base(kind: str, name: str) -> dict[str, Any]:
    """Return one object of the base."""
    return BASE[(kind, name)]


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the containers of a Deployment or Job."""
    return deployment["spec"]["template"]["spec"]["containers"]


def environment_names(container: dict[str, Any]) -> Iterator[str]:
    """Yield the names of the variables a container gets, the ConfigMap's included."""
    for source in container.get("envFrom", []):
        config_map = base("ConfigMap", source["configMapRef"]["name"])
        yield from config_map["data"]
    for variable in container.get("env", []):
        yield variable["name"]


def secret_keys() -> set[str]:
    """Return every key of the Secret that a manifest refers to."""
    keys = set()
    for manifest in MANIFESTS.values():
        text = yaml.safe_dump(manifest)
        for match in re.finditer(r"key: (\S+)\n\s+name: studio-secrets|name: studio-secrets\n\s+key: (\S+)", text):
            keys.add(match.group(1) or match.group(2))
    return keys


class RecordingEnvironment(dict):
    """An empty environment that remembers each name the settings ask it for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, name: str, default: Any = None) -> Any:
        self.asked.add(name)
        return default


def settings_the_app_reads() -> set[str]:
    """Return every variable studio/settings.py reads, and the credentials boto3 reads."""
    recording = RecordingEnvironment()
    settings.from_environment(recording)
    return recording.asked | {EnvProvider.ACCESS_KEY, EnvProvider.SECRET_KEY}


def size_in_bytes(nginx_size: str) -> int:
    """Return bytes for nginx's size syntax (20m = 20 MiB)."""
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", nginx_size).groups()
    return int(number) * 1024 ** " kmg".index(unit.lower() or " ")


@pytest.mark.parametrize("path", sorted(MANIFESTS), ids=lambda path: str(path.relative_to(K8S)))
def test_every_manifest_is_valid_for_kubernetes(path: Path) -> None:
    manifest = MANIFESTS[path]
    if manifest["apiVersion"].startswith(CUSTOM_GROUPS):
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        assert set(manifest) == {"apiVersion", "kind", "metadata", "spec"}
        return
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_every_file_is_listed_by_its_kustomization_and_every_listed_file_exists() -> None:
    for kustomization in kustomizations():
        spec = load(kustomization)
        listed = {(kustomization.parent / entry).resolve() for entry in spec.get("resources", [])}
        listed |= {(kustomization.parent / patch["path"]).resolve() for patch in spec.get("patches", [])}
        assert all(path.exists() for path in listed), kustomization
        present = {path.resolve() for path in kustomization.parent.glob("*.yaml")} - {kustomization.resolve()}
        assert present <= listed, f"{kustomization}: not listed: {sorted(present - listed)}"


def test_patches_change_objects_of_the_base() -> None:
    for kustomization in kustomizations():
        for patch in load(kustomization).get("patches", []):
            target = load(kustomization.parent / patch["path"])
            assert (target["kind"], target["metadata"]["name"]) in BASE, patch


def test_kustomize_builds_the_base_and_every_overlay() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its kustomize) is not installed; every file is also validated on its own")
    for kustomization in kustomizations():
        result = subprocess.run([kubectl, "kustomize", str(kustomization.parent)], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        kinds = [document["kind"] for document in yaml.safe_load_all(result.stdout) if document]
        if kustomization.parent.name == "keda":
            assert "ScaledObject" in kinds and "HorizontalPodAutoscaler" not in kinds


def test_selectors_find_the_pods_they_mean() -> None:
    pods = {name: manifest["spec"]["template"]["metadata"]["labels"]
            for (kind, name), manifest in BASE.items() if kind == "Deployment"}
    for (kind, name), manifest in BASE.items():
        if kind == "Deployment":
            assert manifest["spec"]["selector"]["matchLabels"].items() <= pods[name].items()
        if kind in {"Service", "PodDisruptionBudget"}:
            selector = manifest["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            matched = [pod for pod, labels in pods.items() if selector.items() <= labels.items()]
            assert matched == [name], (kind, name, matched)
    for manifest in MANIFESTS.values():
        assert manifest["metadata"]["labels"]["app.kubernetes.io/name"] == "photo-studio"


def test_the_web_pods_serve_on_their_named_port_and_probe_routes_of_the_app() -> None:
    web = containers(base("Deployment", "studio-web"))[0]
    ports = {port["name"]: port["containerPort"] for port in web["ports"]}
    command = web["command"]
    assert command[:3] == ["gunicorn", "--config", "deploy/gunicorn.conf.py"] and command[-1] == "wsgi:app"
    assert command[command.index("--bind") + 1] == f"0.0.0.0:{ports['http']}"
    routes = {rule.rule for rule in create_app({"TESTING": True, "SECRET_KEY": "x"}).url_map.iter_rules()
              if "GET" in rule.methods}
    probes = {kind: web[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/livez" and probes["readinessProbe"]["path"] == "/readyz"
    trusted = settings.from_environment(base("ConfigMap", "studio-config")["data"])["TRUSTED_HOSTS"]
    for probe in probes.values():
        assert probe["path"] in routes and probe["port"] in ports
        # The kubelet would send the pod's address as Host, which the app refuses (TRUSTED_HOSTS).
        headers = {header["name"]: header["value"] for header in probe.get("httpHeaders", [])}
        assert trusted is None or headers.get("Host") in trusted, probe
    service = base("Service", "studio-web")
    assert [port["targetPort"] for port in service["spec"]["ports"]] == ["http"]
    ingress = base("Ingress", "studio-web")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "studio-web", "port": {"name": "http"}}
    assert trusted is None or {rule["host"] for rule in ingress["spec"]["rules"]} <= set(trusted)


def test_every_variable_is_a_setting_the_app_reads() -> None:
    known = settings_the_app_reads()
    for (kind, name), manifest in BASE.items():
        if kind in {"Deployment", "Job"}:
            for container in containers(manifest):
                unknown = set(environment_names(container)) - known
                assert not unknown, f"{name} sets {sorted(unknown)}, which the app does not read"


def test_the_configuration_is_valid_and_agrees_with_the_ingress_the_scaler_and_the_volumes() -> None:
    data = base("ConfigMap", "studio-config")["data"]
    config = settings.from_environment(data)
    ingress = base("Ingress", "studio-web")["metadata"]["annotations"]
    assert size_in_bytes(ingress["nginx.ingress.kubernetes.io/proxy-body-size"]) == config["MAX_CONTENT_LENGTH"]
    scaler = load(K8S / "overlays" / "keda" / "worker-scaledobject.yaml")
    assert [trigger["metadata"]["listName"] for trigger in scaler["spec"]["triggers"]] == [
        Queue.redis_queue_namespace_prefix + name for name in photo_queues(config)]
    for name in APP_CONTAINERS:
        deployment = base("Deployment", name)
        container = containers(deployment)[0]
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
        assert "emptyDir" in volumes[mounts[config["STUDIO_METRICS_DIR"]]], name
    assert config["STUDIO_LOG_FORMAT"] == "json"


def test_workers_serve_their_metrics_on_the_port_they_declare_and_have_time_to_finish_a_photo() -> None:
    timeout = settings.from_environment(base("ConfigMap", "studio-config")["data"])["STUDIO_JOB_TIMEOUT"]
    for name in ("studio-worker", "studio-scheduler"):
        deployment = base("Deployment", name)
        container = containers(deployment)[0]
        port = next(variable["value"] for variable in container["env"]
                    if variable["name"] == "STUDIO_WORKER_METRICS_PORT")
        assert {"name": "metrics", "containerPort": int(port), "protocol": "TCP"} in container["ports"]
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > timeout
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])


def test_app_containers_take_their_secrets_from_the_secret_and_the_docs_say_which() -> None:
    for name in APP_CONTAINERS:
        variables = {variable["name"]: variable for variable in containers(base("Deployment", name))[0]["env"]}
        for needed in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "STUDIO_METRICS_TOKEN"):
            assert variables[needed]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": needed}, name
    config_map = base("ConfigMap", "studio-config")["data"]
    assert not [key for key in config_map if re.search(r"SECRET|PASSWORD|TOKEN|_URL$|ACCESS_KEY", key)]
    docs = (ROOT / "docs" / "production.md").read_text()
    command = docs[docs.index(f"kubectl create secret generic {SECRET}"):].split("\n\n")[0]
    assert secret_keys() and all(f"--from-literal={key}=" in command for key in secret_keys()), secret_keys()


def test_exactly_one_scheduler_and_workers_that_do_not_schedule() -> None:
    scheduler = base("Deployment", "studio-scheduler")
    assert scheduler["spec"]["replicas"] == 1 and scheduler["spec"]["strategy"] == {"type": "Recreate"}
    assert containers(scheduler)[0]["command"] == ["python", "rq_worker.py", "--with-scheduler"]
    assert containers(base("Deployment", "studio-worker"))[0]["command"] == ["python", "rq_worker.py"]
    assert ("PodDisruptionBudget", "studio-scheduler") not in BASE


def test_the_autoscalers_scale_the_workers() -> None:
    hpa = base("HorizontalPodAutoscaler", "studio-worker")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "studio-worker"}
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    scaler = load(K8S / "overlays" / "keda" / "worker-scaledobject.yaml")
    assert scaler["spec"]["scaleTargetRef"]["name"] == "studio-worker"
    authentication = load(K8S / "overlays" / "keda" / "worker-triggerauthentication.yaml")
    assert {trigger["authenticationRef"]["name"] for trigger in scaler["spec"]["triggers"]} == {
        authentication["metadata"]["name"]}
    deleted = load(K8S / "overlays" / "keda" / "delete-cpu-hpa.patch.yaml")
    assert deleted["$patch"] == "delete" and deleted["metadata"]["name"] == "studio-worker"


def test_the_gpu_overlay_gives_each_worker_a_gpu() -> None:
    patch = load(K8S / "overlays" / "gpu" / "worker-gpu.patch.yaml")
    container = patch["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == containers(base("Deployment", "studio-worker"))[0]["name"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_the_pod_monitors_scrape_the_ports_the_pods_declare() -> None:
    for path in sorted((K8S / "monitoring").glob("podmonitor-*.yaml")):
        monitor = load(path)
        selector = monitor["spec"]["selector"]
        components = set(next((expression["values"] for expression in selector.get("matchExpressions", [])),
                              [selector["matchLabels"].get("app.kubernetes.io/component")]))
        for component in components:
            container = containers(base("Deployment", f"studio-{component}"))[0]
            names = {port["name"] for port in container["ports"]}
            for endpoint in monitor["spec"]["podMetricsEndpoints"]:
                assert endpoint["port"] in names and endpoint["path"] == "/metrics"
                assert endpoint["authorization"]["credentials"] == {"name": SECRET, "key": "STUDIO_METRICS_TOKEN"}


def test_livez_answers_without_its_services_and_readyz_reports_them(tmp_path) -> None:
    app = make_app(tmp_path, create_schema=False, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                   SQLALCHEMY_DATABASE_URI=f"postgresql+psycopg2://nobody@127.0.0.1:{free_port()}/none")
    client = app.test_client()

    assert client.get("/livez").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert {name: check["status"] for name, check in ready.get_json()["checks"].items()} == {
        "database": "error", "redis": "error", "storage": "ok"}


def test_webhook_deliveries_have_a_small_worker_of_their_own() -> None:
    webhooks = base("Deployment", "studio-webhooks")
    assert containers(webhooks)[0]["command"] == ["python", "rq_worker.py", "webhooks"]
    assert settings.from_environment({})["STUDIO_WEBHOOK_QUEUE"] == "webhooks"
    assert containers(webhooks)[0]["resources"]["requests"]["memory"] == "256Mi"
