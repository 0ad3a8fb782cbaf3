"""helm/airflow-values.yaml, the values for the official Apache Airflow chart: real keys of that chart, the
choices the design needs (executor, triggerer, pod launching granted by helm/mlcycle instead, DAG bundle via
git-sync with the mlcycle package on the path, our images), and credentials only from Secrets."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from mlcycle.settings import KubernetesSettings
from support.boundaries import TASK_NAMESPACE
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
    assert settings.deferrable is True and settings.namespace == TASK_NAMESPACE
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


def test_failure_alerts_from_the_charts_settings_reach_alertmanager(monkeypatch: pytest.MonkeyPatch) -> None:
    """H2: with the alert settings of the values (format, URL path), the real `send()` delivers a failure alert
    that Alertmanager's `POST /api/v2/alerts` accepts, labelled so that it is never routed to the rerun receiver."""
    from urllib.parse import urlsplit

    from mlcycle.orchestration.alerts import failure_message, send
    from support.alerting import ALERTMANAGER_API_PATH, alertmanager_v2_problems, recording_endpoint

    env = airflow_env()
    configured = urlsplit(env["MLCYCLE_ALERT_WEBHOOK_URL"])
    context = {
        "dag_run": SimpleNamespace(dag_id="yarnit_training", run_id="scheduled__2026-09-14", conf={}),
        "ti": SimpleNamespace(task_id="train", try_number=3, log_url="http://airflow/log"),
        "params": {"partition": "2026-09-14"},
        "exception": RuntimeError("mlcycle train: OOMKilled"),
    }
    with recording_endpoint() as alertmanager:
        for name, value in env.items():
            if name.startswith("MLCYCLE_ALERT_"):
                monkeypatch.setenv(name, value)
        # The cluster's Alertmanager Service, here on loopback: same path, same settings.
        monkeypatch.setenv("MLCYCLE_ALERT_WEBHOOK_URL", alertmanager.url + configured.path)
        delivered = send(failure_message(context))
    (posted,) = alertmanager.received
    assert alertmanager_v2_problems(posted.body) == [], posted.body
    assert posted.path == ALERTMANAGER_API_PATH and delivered is True
    assert configured.hostname and configured.hostname.startswith("alertmanager"), configured
    payload = posted.body
    assert payload[0]["labels"]["mlcycle_auto_rerun"] == "false"
    assert payload[0]["labels"]["alertname"] == "step-failed"


def test_the_documented_alertmanager_route_is_valid_and_reruns_only_what_asks_for_it() -> None:
    """docs/alertmanager-example.yml is a configuration Alertmanager accepts as written, and its route sends
    mlcycle's alerts (always mlcycle_auto_rerun="false") to people only; the receiver gets only "true"."""
    import shutil
    import subprocess

    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed (apt-get install prometheus-alertmanager; .ci/run does)")
    config = str(REPO / "docs" / "alertmanager-example.yml")
    checked = subprocess.run([amtool, "check-config", config], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    def receivers(*labels: str) -> str:
        argv = [amtool, "config", "routes", "test", f"--config.file={config}", *labels]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()

    mlcycles = ["alertname=step-failed", "usecase=yarnit", "dag_id=yarnit_scoring", "partition=2026-09-16"]
    assert receivers(*mlcycles, "mlcycle_auto_rerun=false") == "mlcycle-pager"
    assert receivers("alertname=UpstreamExportLate", "usecase=yarnit") == "mlcycle-pager"
    assert receivers("alertname=UpstreamExportLate", "mlcycle_auto_rerun=true") == "mlcycle-pager,mlcycle-rerun"
