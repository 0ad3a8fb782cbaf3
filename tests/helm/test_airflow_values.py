"""helm/airflow-values.yaml, the values for the official Apache Airflow chart: real keys of that chart, the
choices the design needs (executor, triggerer, pod launching granted by helm/mlcycle instead, DAG bundle via
git-sync with the mlcycle package on the path, our images), and credentials only from Secrets."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from mlcycle.settings import KubernetesSettings
from support.helm_release import Rendered
from support.kube_checks import REPO
from support.step_pods import airflow_env, dag_side_env

VALUES: dict[str, Any] = yaml.safe_load((REPO / "helm" / "airflow-values.yaml").read_text())

#: Top-level keys of the official chart's values.yaml (chart 1.19) this file may use: a typo is caught here,
#: since that chart's schema is not available offline.
OFFICIAL_KEYS = {
    "airflowVersion", "defaultAirflowRepository", "defaultAirflowTag", "images", "executor", "workers",
    "triggerer", "dagProcessor", "allowPodLaunching", "rbac", "dags", "postgresql", "data", "redis",
    "fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName", "createUserJob", "env", "secret",
    "extraEnvFrom", "config", "securityContexts", "networkPolicies", "apiServer", "scheduler", "logs",
}  # fmt: skip
#: Keys of the official chart that would put a secret value in the values (each has a *SecretName twin).
LITERAL_SECRET_KEYS = ("fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey")


def test_only_keys_of_the_official_chart() -> None:
    assert set(VALUES) <= OFFICIAL_KEYS, set(VALUES) - OFFICIAL_KEYS


def test_airflow_and_the_image_match_the_lock() -> None:
    lock = (REPO / "requirements.lock").read_text()
    # A locked line is `name==version` (then ` \\` and its hashes).
    assert re.search(rf"^apache-airflow=={re.escape(VALUES['airflowVersion'])}( \\)?$", lock, re.M)
    assert VALUES["images"]["airflow"]["repository"] == VALUES["defaultAirflowRepository"]
    assert VALUES["images"]["airflow"]["repository"].endswith("/mlcycle-airflow")  # Dockerfile --target airflow


def test_executor_triggerer_and_pod_launching() -> None:
    assert VALUES["executor"] == "CeleryExecutor"
    env = airflow_env()
    assert env["MLCYCLE_EXECUTION_MODE"] == "kubernetes"
    # Deferrable pod tasks wait in the triggerer: it must run (and it is bound to the launcher Role).
    assert env["MLCYCLE_K8S_DEFERRABLE"] == "true" and VALUES["triggerer"]["enabled"] is True
    # Launching is granted in the task namespace by helm/mlcycle, not in Airflow's own namespace.
    assert VALUES["allowPodLaunching"] is False


def test_the_launcher_role_binds_this_releases_service_accounts(default_release: Rendered) -> None:
    """The official chart names them <release>-worker and <release>-triggerer; docs/deploy.md installs it as
    `airflow` in namespace `airflow`."""
    subjects = default_release.get("RoleBinding", "mlcycle-pod-launcher")["subjects"]
    assert {(s["name"], s["namespace"]) for s in subjects} == {
        ("airflow-worker", "airflow"),
        ("airflow-triggerer", "airflow"),
    }


def test_the_dag_side_settings_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in dag_side_env().items():
        monkeypatch.setenv(name, value)
    settings = KubernetesSettings.from_env()
    assert settings.deferrable is True and settings.namespace == "mlcycle"
    assert settings.gpu_node_selector == {"nvidia.com/gpu.present": "true"}


def test_dags_and_package_come_from_the_dag_bundle() -> None:
    sync = VALUES["dags"]["gitSync"]
    assert sync["enabled"] is True and sync["subPath"] == "dags"
    env = airflow_env()
    # git-sync checks the repository out at <dags mount>/repo: the package sits next to the DAG files.
    assert env["PYTHONPATH"] == "/opt/airflow/dags/repo/include"
    assert (REPO / "include" / "mlcycle" / "orchestration").is_dir() and (REPO / "dags").is_dir()
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/airflow/dags/repo/plugins"


def test_credentials_only_from_secrets() -> None:
    for key in LITERAL_SECRET_KEYS:
        assert not VALUES.get(key), f"{key} would put a secret in the values: use {key}SecretName"
    assert VALUES["postgresql"]["enabled"] is False
    assert VALUES["data"]["metadataSecretName"] and "metadataConnection" not in VALUES["data"]
    assert "password" not in VALUES["redis"] and VALUES["redis"]["passwordSecretName"]
    for entry in VALUES["secret"]:
        assert set(entry) == {"envName", "secretName", "secretKey"}
    assert "secretRef" in VALUES["extraEnvFrom"]
    plain = {e["name"] for e in VALUES["env"]} - {"MLCYCLE_K8S_SECRETS"}  # that one lists Secret names
    assert not any(w in name for name in plain for w in ("PASSWORD", "TOKEN", "SECRET", "FERNET"))
