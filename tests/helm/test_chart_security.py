"""No secret value in anything the chart renders or the values files hold, and NetworkPolicies that deny by
default and let each component (the step pods the DAGs build included) reach only what it needs."""

from __future__ import annotations

from typing import Any

import yaml

from support.boundaries import label_selector_matches, task_namespace
from support.helm_release import NAMESPACE, Rendered
from support.kube_checks import CHART, REPO, credential_literals, pod_specs
from support.step_pods import StepPod

VALUE_FILES = [CHART / "values.yaml", *sorted((CHART / "ci").glob("*.yaml")), REPO / "helm" / "airflow-values.yaml"]


def test_the_chart_creates_no_secret_and_writes_none(release: Rendered) -> None:
    assert release.of_kind("Secret") == []
    assert credential_literals(list(release.manifests)) == []
    assert credential_literals(release.notes) == []


def test_credentials_reach_pods_only_by_reference(release: Rendered) -> None:
    """Every credential-named variable of every chart pod comes from a secretKeyRef."""
    for manifest in release.manifests:
        for name, _, spec in pod_specs(manifest):
            for container in spec["containers"]:
                for env in container.get("env") or []:
                    if any(w in env["name"] for w in ("PASSWORD", "TOKEN", "SECRET")):
                        assert set(env) == {"name", "valueFrom"}, f"{name}: {env['name']}"
                        assert "secretKeyRef" in env["valueFrom"], f"{name}: {env['name']}"


def test_no_values_file_holds_a_credential() -> None:
    for path in VALUE_FILES:
        assert credential_literals(yaml.safe_load(path.read_text()), path.name) == []


def _policies(release: Rendered) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p["spec"] for p in release.of_kind("NetworkPolicy")}


def _policies_in(release: Rendered, namespace: str) -> dict[str, dict[str, Any]]:
    """The policies of one namespace: a policy selects pods of its own namespace only."""
    return {
        p["metadata"]["name"]: p["spec"]
        for p in release.of_kind("NetworkPolicy")
        if p["metadata"]["namespace"] == namespace
    }


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    return label_selector_matches(policy["podSelector"], labels)


def test_everything_is_denied_by_default(release: Rendered) -> None:
    """In both namespaces: the services' and the step pods'."""
    for namespace, prefix in ((NAMESPACE, "mlcycle-"), (task_namespace(release), "mlcycle-tasks-")):
        policies = _policies_in(release, namespace)
        deny = policies[f"{prefix}default-deny"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        dns = policies[f"{prefix}allow-dns"]
        assert dns["podSelector"] == {} and dns["egress"] == [
            {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
        ]


def test_step_pods_reach_mlflow_and_s3_only(release: Rendered, step_pods: tuple[StepPod, ...]) -> None:
    policies = _policies_in(release, task_namespace(release))
    for pod in step_pods:
        assert pod.pod["metadata"]["namespace"] == task_namespace(release), pod.where
        labels = pod.pod["metadata"]["labels"]
        selecting = sorted(name for name, policy in policies.items() if _selects(policy, labels))
        assert selecting == ["mlcycle-steps", "mlcycle-tasks-allow-dns", "mlcycle-tasks-default-deny"], pod.where
    steps = policies["mlcycle-steps"]
    assert "ingress" not in steps and steps["policyTypes"] == ["Ingress", "Egress"]
    ports = [(port["port"], rule.get("to")) for rule in steps["egress"] for port in rule["ports"]]
    assert [p for p, _ in ports] == [5000, 443]
    mlflow_labels = release.get("Deployment", "mlcycle-mlflow")["spec"]["template"]["metadata"]["labels"]
    assert ports[0][1][0]["podSelector"]["matchLabels"].items() <= mlflow_labels.items()
    assert ports[0][1][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": NAMESPACE}


def test_mlflow_is_reached_by_the_steps(release: Rendered, step_pods: tuple[StepPod, ...]) -> None:
    mlflow = _policies(release)["mlcycle-mlflow"]
    peers = mlflow["ingress"][0]["from"]
    step_labels = step_pods[0].pod["metadata"]["labels"]
    assert peers[0]["podSelector"]["matchLabels"].items() <= step_labels.items()
    tasks = {"kubernetes.io/metadata.name": task_namespace(release)}
    assert peers[0]["namespaceSelector"]["matchLabels"] == tasks
    assert mlflow["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 5000}]
    assert [p["port"] for rule in mlflow["egress"] for p in rule["ports"]] == [5432, 443]


def test_each_chart_pod_has_its_own_policy(release: Rendered) -> None:
    for manifest in release.manifests:
        policies = _policies_in(release, manifest["metadata"].get("namespace", ""))
        for name, metadata, _ in pod_specs(manifest):
            own = [
                n for n, policy in policies.items() if policy["podSelector"] and _selects(policy, metadata["labels"])
            ]
            assert own, f"{name} is covered by the default deny only"


def test_the_alert_receiver_is_reached_from_alertmanager_and_never_from_airflow(release: Rendered) -> None:
    """Airflow's failure alerts go to Alertmanager; letting Airflow reach the receiver would let them become reruns."""
    receiver = _policies(release)["mlcycle-alert-receiver"]
    namespaces = [
        p["namespaceSelector"]["matchLabels"] for p in receiver["ingress"][0]["from"] if "namespaceSelector" in p
    ]
    airflow = (release.values.get("airflow") or {}).get("namespace", "airflow")
    assert {"kubernetes.io/metadata.name": airflow} not in namespaces
    alertmanager = (release.values.get("alertReceiver") or {}).get("alertmanagerNamespaces", ["monitoring"])
    for namespace in alertmanager:
        assert {"kubernetes.io/metadata.name": namespace} in namespaces
    assert receiver["egress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_spark_drivers_and_executors_reach_each_other_and_only_drivers_the_api_server() -> None:
    """The labels of the SparkApplications the DAGs submit (yarnit_spark) against the production release's
    policies (spark.enabled): the step policy (MLflow, S3) for both roles, any TCP port between a driver and its
    executors, and the API server (networkPolicy.apiServerCidrs) for the driver alone."""
    from support.helm_release import render
    from support.spark_apps import build_spark_steps

    release = render("production")
    policies = _policies_in(release, task_namespace(release))
    for step in build_spark_steps():
        for role in ("driver", "executor"):
            labels = step.spec[role]["labels"]
            selecting = sorted(name for name, policy in policies.items() if _selects(policy, labels))
            expected = ["mlcycle-spark", "mlcycle-steps", "mlcycle-tasks-allow-dns", "mlcycle-tasks-default-deny"]
            expected += ["mlcycle-spark-driver"] if role == "driver" else []
            assert selecting == sorted(expected), f"{step.where} {role}"
            peers = policies["mlcycle-spark"]
            for rule in (*peers["ingress"][0]["from"], *peers["egress"][0]["to"]):
                assert _selects(rule, {**labels, "mlcycle/spark-role": "executor"}), step.where
    api = policies["mlcycle-spark-driver"]["egress"]
    assert api == [{"to": [{"ipBlock": {"cidr": "10.0.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 443}]}]
