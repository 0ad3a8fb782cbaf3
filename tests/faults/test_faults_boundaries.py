"""Fault drills of the cluster's security boundaries (render-level: no API server here). A compromised DAG on an
Airflow worker tries to reach mlcycle's service secrets or to leave the network, and the rendered chart stops
it: the API server's admission rejects the pod (a failing call the task sees), RBAC has nothing to grant, and
the NetworkPolicies drop the connection. The champion and the services are untouched because nothing the
worker can create runs with their Secrets."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest

from support.boundaries import (
    TASK_NAMESPACE,
    admission_denials,
    airflow_launchers,
    altered,
    egress_allowed,
    permissions_of,
    pod_in,
    service_account_user,
)
from support.helm_release import NAMESPACE, render, render_values

STEP_LABELS = {"app.kubernetes.io/part-of": "mlcycle", "app.kubernetes.io/component": "step"}


def _worker_pod(spec: dict[str, Any]) -> dict[str, Any]:
    """The smallest pod the policy admits: the task identity and image, the task Secrets."""
    base = {
        "serviceAccountName": "mlcycle-task",
        "containers": [
            {
                "name": "base",
                "image": "ghcr.io/mlcycle/mlcycle-task:0.1.0",
                "envFrom": [{"secretRef": {"name": "mlcycle-mlflow-client"}}],
            }
        ],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
    }
    return pod_in(TASK_NAMESPACE, {**base, **spec})


def _worker() -> str:
    namespace, names = airflow_launchers(render("default"))
    return service_account_user(namespace, names[0])


def test_worker_pod_mounting_the_mlflow_admin_secret_is_rejected() -> None:
    """A pod a worker creates in the task namespace that mounts MLflow's admin Secret is denied at admission,
    while the same pod without it is admitted."""
    release = render("default")
    honest = _worker_pod({})
    assert admission_denials(release, honest, _worker()) == []
    loot = {"name": "loot", "secret": {"secretName": "mlcycle-mlflow-auth"}}
    hostile = altered(honest, lambda pod: pod["spec"]["volumes"].append(loot))
    denials = admission_denials(release, hostile, _worker())
    assert denials and all("Secret" in d for d in denials), denials


def test_worker_pod_under_another_service_account_is_rejected() -> None:
    """A worker cannot borrow the cleanup CronJob's API token (or the namespace's default identity) for a pod."""
    release = render("default")
    for account in ("mlcycle-orphan-cleanup", "default"):
        hostile = _worker_pod({"serviceAccountName": account})
        assert any("ServiceAccount" in d for d in admission_denials(release, hostile, _worker())), account


def test_worker_cannot_touch_the_services_namespace() -> None:
    """Airflow's launchers hold no right at all (create/exec/logs/delete) where MLflow and the receiver run."""
    for values in ("default", "production"):
        release = render(values)
        airflow, launchers = airflow_launchers(release)
        for name in launchers:
            assert NAMESPACE not in permissions_of(release, airflow, name), (values, name)


def test_task_pod_cannot_egress_outside_the_configured_cidrs() -> None:
    """With the production values a step pod reaches the configured S3 ranges on 443 only: any other address or
    port is dropped by the task namespace's NetworkPolicies."""
    release = render("production")
    s3 = release.values["networkPolicy"]["externalHttpsCidrs"][0]
    inside = s3.split("/")[0][:-1] + "1"  # an address of the first range
    assert egress_allowed(release, TASK_NAMESPACE, STEP_LABELS, inside, 443)
    assert not egress_allowed(release, TASK_NAMESPACE, STEP_LABELS, inside, 22)
    for outside in ("8.8.8.8", "203.0.113.7", "10.20.30.5"):
        assert not egress_allowed(release, TASK_NAMESPACE, STEP_LABELS, outside, 443), outside
    # A pod without the step labels (anything else a worker might start) reaches nothing outside.
    assert not egress_allowed(release, TASK_NAMESPACE, {"app": "other"}, inside, 443)


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0"])
def test_open_egress_in_a_production_release_is_refused_at_install(cidr: str) -> None:
    """A production release whose NetworkPolicies would let step pods reach anywhere fails `helm install`."""
    values = render("production").values
    with pytest.raises(helm_python.HelmValuesError, match="/networkPolicy/externalHttpsCidrs"):
        render_values({**values, "networkPolicy": {**values["networkPolicy"], "externalHttpsCidrs": [cidr]}})
