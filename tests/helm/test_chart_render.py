"""helm/mlcycle rendered by Helm's own engine for the default, production and GPU values: it lints clean, every
manifest is valid against the Kubernetes OpenAPI schema, and every pod it creates is "restricted", read-only,
bounded in resources, named and labelled by _helpers.tpl."""

from __future__ import annotations

import re

import helm_python
import pytest

from support.boundaries import task_namespace
from support.helm_release import NAMESPACE, RELEASE, VALUE_SETS, Rendered, render, values_of
from support.kube_checks import (
    CHART,
    KUBE_VERSIONS,
    hardening_problems,
    pod_specs,
    resource_problems,
    restricted_violations,
    schema_errors,
)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
EXPECTED_KINDS = {
    "ConfigMap",
    "CronJob",
    "Deployment",
    "NetworkPolicy",
    "Pod",
    "ResourceQuota",
    "Role",
    "RoleBinding",
    "Service",
    "ServiceAccount",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
#: Cluster-scoped kinds the chart renders (no namespace).
CLUSTER_SCOPED = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", VALUE_SETS)
def test_the_chart_lints_clean(values: str, kube_version: str) -> None:
    report = helm_python.lint(
        CHART, values_of(values), strict=True, namespace=NAMESPACE, kube_version=f"v{kube_version}.0"
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 warning, 3 error
    assert report["errors"] == [] and problems == [], problems


def test_every_values_set_renders_every_component(release: Rendered) -> None:
    assert {m["kind"] for m in release.manifests} == EXPECTED_KINDS
    assert len(release.of_kind("Deployment")) == 2  # MLflow and the alert receiver
    assert "helm test mlcycle" in release.notes


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schema(release: Rendered, version: str) -> None:
    assert [e for m in release.manifests for e in schema_errors(m, version)] == []


def test_every_pod_of_the_chart_is_restricted_and_bounded(release: Rendered) -> None:
    problems = []
    pods = [p for m in release.manifests for p in pod_specs(m)]
    assert len(pods) == 4  # MLflow, alert receiver, cleanup CronJob, helm test
    for name, metadata, spec in pods:
        problems += [f"{name}: {v}" for v in restricted_violations(spec, metadata)]
        problems += [f"{name}: {v}" for v in hardening_problems(spec)]
        problems += [f"{name}: {v}" for v in resource_problems(spec)]
    assert problems == []


def test_only_the_cleanup_pod_gets_an_api_token(release: Rendered) -> None:
    tokens = {
        name: spec.get("automountServiceAccountToken") for m in release.manifests for name, _, spec in pod_specs(m)
    }
    assert tokens.pop("CronJob/mlcycle-orphan-cleanup") is True
    assert set(tokens.values()) == {False}
    # The Spark drivers' account (spark.enabled) mounts its token: a driver runs its executors through the API.
    spark = {"mlcycle-spark-driver": True} if release.values.get("spark", {}).get("enabled") else {}
    assert {sa["metadata"]["name"]: sa["automountServiceAccountToken"] for sa in release.of_kind("ServiceAccount")} == {
        "mlcycle-task": False,
        "mlcycle-mlflow": False,
        "mlcycle-alert-receiver": False,
        "mlcycle-orphan-cleanup": False,
        **spark,
    }


def test_names_and_labels_come_from_the_helpers(release: Rendered) -> None:
    for manifest in release.manifests:
        meta = manifest["metadata"]
        where = f"{manifest['kind']}/{meta['name']}"
        assert _DNS_LABEL.match(meta["name"]) and len(meta["name"]) <= 63, where
        assert meta["name"].startswith(f"{RELEASE}-"), where
        if manifest["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in meta, where
        else:  # the services' namespace or the step pods' (tests/helm/test_boundaries.py says which is where)
            assert meta["namespace"] in (NAMESPACE, task_namespace(release)), where
        labels = meta["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE, where
        assert labels["app.kubernetes.io/managed-by"] == "Helm", where
        assert labels["helm.sh/chart"] == "mlcycle-0.1.0", where
        assert labels["app.kubernetes.io/part-of"] == "mlcycle", where
        assert labels.get("app.kubernetes.io/component"), where
        for key, value in (release.values.get("commonLabels") or {}).items():
            assert labels[key] == value, where


def test_selectors_match_their_pods(release: Rendered) -> None:
    pods = {m["metadata"]["name"]: m["spec"]["template"]["metadata"]["labels"] for m in release.of_kind("Deployment")}
    for deployment in release.of_kind("Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pods[deployment["metadata"]["name"]].items()
        assert "app.kubernetes.io/version" not in selector, "selectors are immutable: no version in them"
    for service in release.of_kind("Service"):
        matching = [n for n, labels in pods.items() if service["spec"]["selector"].items() <= labels.items()]
        assert matching == [service["metadata"]["name"]]


def test_every_image_follows_the_image_values(release: Rendered) -> None:
    image = release.values.get("image") or {}
    repository = image.get("repository", "ghcr.io/mlcycle/mlcycle-task")
    expected = f"{repository}@{image['digest']}" if image.get("digest") else f"{repository}:0.1.0"
    images = {c["image"] for m in release.manifests for _, _, spec in pod_specs(m) for c in spec["containers"]}
    assert images == {expected}


def test_production_pins_digests_and_uses_workload_identity() -> None:
    production = render("production")
    mlflow = production.get("Deployment", "mlcycle-mlflow")["spec"]["template"]["spec"]["containers"][0]
    assert "@sha256:" in mlflow["image"]
    assert "envFrom" not in mlflow, "artifacts through the ServiceAccount's role, no keys"
    sa = production.get("ServiceAccount", "mlcycle-task")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(":role/mlcycle-task")
    # A private registry: the step pods get the pull Secret through their ServiceAccount, the chart's pods directly.
    assert sa["imagePullSecrets"] == [{"name": "registry-credentials"}]
    for manifest in production.manifests:
        for name, _, spec in pod_specs(manifest):
            assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}], name
    hosts = next(e["value"] for e in mlflow["env"] if e["name"] == "MLFLOW_SERVER_ALLOWED_HOSTS")
    assert "mlflow.acme.example" in hosts.split(",")


def test_the_quota_admits_gpus_only_where_asked() -> None:
    def gpus(name: str) -> str:
        quota = render(name).get("ResourceQuota", "mlcycle-quota")
        return str(quota["spec"]["hard"]["requests.nvidia.com/gpu"])

    assert (gpus("default"), gpus("production"), gpus("gpu")) == ("0", "0", "2")


def test_the_helm_test_pod_is_a_hook(default_release: Rendered) -> None:
    pod = default_release.get("Pod", "mlcycle-smoke-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    command = pod["spec"]["containers"][0]["command"]
    assert command[:2] == ["python", "/opt/mlcycle-scripts/smoke_test.py"]
    scripts = default_release.get("ConfigMap", "mlcycle-scripts")["data"]
    assert scripts["smoke_test.py"] == (CHART / "files" / "smoke_test.py").read_text()
    assert scripts["cleanup_orphans.py"] == (CHART / "files" / "cleanup_orphans.py").read_text()


def test_step_pods_bound_their_mlflow_calls(default_release: Rendered) -> None:
    """MLflow's client defaults (120 s per request, 7 retries with backoff) would hold a step for many minutes
    before an outage becomes a retried, then alerted, error (issue 12, H3): the pipeline ConfigMap bounds both."""
    data = default_release.get("ConfigMap", "mlcycle-pipeline")["data"]
    assert data["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "30"
    assert data["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
