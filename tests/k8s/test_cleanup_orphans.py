"""The orphan-pod CronJob's script (helm/mlcycle/files/cleanup_orphans.py), on real step pods in every state:
only pods past their budget go, nothing is deleted in a dry run, and a failed deletion fails the Job."""

from __future__ import annotations

import copy
import datetime as dt
import importlib.util
import sys
import urllib.error
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from support.kube_checks import CHART
from support.step_pods import StepPod

NOW = dt.datetime(2026, 9, 15, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def cleanup() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cleanup_orphans", CHART / "files" / "cleanup_orphans.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["cleanup_orphans"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def policy(cleanup: ModuleType) -> Any:
    return cleanup.Policy(
        finished_retention=dt.timedelta(hours=24),
        max_pending=dt.timedelta(hours=2),
        max_running=dt.timedelta(hours=8),
    )


def _ago(**delta: float) -> str:
    return (NOW - dt.timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_in(step_pods: tuple[StepPod, ...], name: str, phase: str, created: str, **status: Any) -> dict[str, Any]:
    """A step pod as the API returns it: the submitted spec plus metadata and status of some moment."""
    pod = copy.deepcopy(step_pods[0].pod)
    pod["metadata"].update(name=name, uid=f"uid-{name}", creationTimestamp=created)
    pod["status"] = {"phase": phase, **status}
    return pod


def _terminated(finished: str) -> dict[str, Any]:
    return {"containerStatuses": [{"name": "base", "state": {"terminated": {"exitCode": 0, "finishedAt": finished}}}]}


@pytest.fixture
def pods(step_pods: tuple[StepPod, ...]) -> list[dict[str, Any]]:
    return [
        pod_in(step_pods, "done-long-ago", "Succeeded", _ago(days=3), **_terminated(_ago(days=2))),
        pod_in(step_pods, "failed-yesterday", "Failed", _ago(hours=30), **_terminated(_ago(hours=25))),
        pod_in(step_pods, "failed-recently", "Failed", _ago(hours=3), **_terminated(_ago(hours=1))),
        pod_in(step_pods, "never-scheduled", "Pending", _ago(hours=3)),
        pod_in(step_pods, "just-pending", "Pending", _ago(minutes=10)),
        pod_in(step_pods, "runaway", "Running", _ago(hours=11), startTime=_ago(hours=10)),
        pod_in(step_pods, "training", "Running", _ago(hours=2), startTime=_ago(hours=1)),
        pod_in(step_pods, "lost-node", "Unknown", _ago(hours=12), startTime=_ago(hours=12)),
        {
            **pod_in(step_pods, "going", "Succeeded", _ago(days=3), **_terminated(_ago(days=3))),
            "metadata": {"name": "going", "uid": "u", "creationTimestamp": _ago(days=3), "deletionTimestamp": _ago()},
        },
    ]


def test_only_pods_past_their_budget_are_orphans(cleanup: ModuleType, policy: Any, pods: list) -> None:
    found = cleanup.orphans(pods, NOW, policy)
    assert [pod["metadata"]["name"] for pod, _ in found] == [
        "done-long-ago",  # oldest first
        "failed-yesterday",
        "lost-node",
        "runaway",
        "never-scheduled",
    ]
    reasons = {pod["metadata"]["name"]: reason for pod, reason in found}
    assert reasons["never-scheduled"] == "pending for 180 min (max 120)"
    assert reasons["runaway"] == "running for 600 min (max 480)"
    assert reasons["failed-yesterday"].startswith("failed for 1500 min")


class FakeApi:
    def __init__(self, pods: list[dict[str, Any]], failing: set[str] | None = None) -> None:
        self.pods, self.failing = pods, failing or set()
        self.listed: list[tuple[str, str]] = []
        self.deleted: list[tuple[str, str, str]] = []

    def list_pods(self, namespace: str, selector: str) -> Iterator[dict[str, Any]]:
        self.listed.append((namespace, selector))
        yield from self.pods

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        if name in self.failing:
            raise urllib.error.URLError("connection reset")
        self.deleted.append((namespace, name, uid))


SELECTOR = "app.kubernetes.io/part-of=mlcycle,app.kubernetes.io/component=step,kubernetes_pod_operator=True"


def test_run_deletes_by_uid_and_reports(cleanup: ModuleType, policy: Any, pods: list, capsys: Any) -> None:
    api = FakeApi(pods)
    assert cleanup.run(api, "mlcycle", SELECTOR, policy, NOW, dry_run=False) == 0
    assert api.listed == [("mlcycle", SELECTOR)]
    assert ("mlcycle", "never-scheduled", "uid-never-scheduled") in api.deleted and len(api.deleted) == 5
    assert '"deleted": 5' in capsys.readouterr().out.splitlines()[-1]


def test_dry_run_deletes_nothing(cleanup: ModuleType, policy: Any, pods: list, capsys: Any) -> None:
    api = FakeApi(pods)
    assert cleanup.run(api, "mlcycle", SELECTOR, policy, NOW, dry_run=True) == 0
    assert api.deleted == []
    assert '"dry_run": true' in capsys.readouterr().out


def test_a_failed_deletion_fails_the_job(cleanup: ModuleType, policy: Any, pods: list) -> None:
    api = FakeApi(pods, failing={"runaway"})
    assert cleanup.run(api, "mlcycle", SELECTOR, policy, NOW, dry_run=False) == 1
    assert len(api.deleted) == 4  # the others still go
