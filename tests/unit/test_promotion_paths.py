"""Every way a version becomes @champion (gate, approved review, manual, rollback) leaves it without @challenger,
and records who promoted it, the approver, the reason and the gate decision record; a review that does not
approve (rejected, or unanswered with `approval.on_timeout: reject`) leaves the version @challenger with the
answer recorded (issue 14 item 3).

The registry holds versions without artifacts: promotion never loads a model. Decision records are written as
`evaluate` writes them (a committed partition holding decision.json).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from mlcycle.exitcodes import ExitCode
from support.cli import step

DAY = dt.date(2026, 9, 8)
MODEL = "yarnit_model"


@pytest.fixture
def registry(mlcycle_env: dict[str, str]) -> Any:
    """yarnit_model with three versions, the newest @challenger (as `train` leaves it), and no champion."""
    from mlflow import MlflowClient

    client = MlflowClient()
    client.create_registered_model(MODEL)
    for _ in range(3):
        version = client.create_model_version(MODEL, source="/nowhere")
        client.set_registered_model_alias(MODEL, "challenger", version.version)
    return client


def _decision(candidate: str, champion: str | None, decision: str, reasons: list[str]) -> str:
    """A gate decision record, committed where `evaluate` commits it; returns its URI."""
    from mlcycle.settings import storage_root
    from mlcycle.storage.layout import DECISION_FILE, Dataset
    from mlcycle.storage.partitions import Storage

    storage = Storage(storage_root())
    uri = storage.partition_uri("yarnit", Dataset.EVALUATION, DAY, sub=f"v{candidate}")
    record = {"candidate_version": candidate, "champion_version": champion, "decision": decision, "reasons": reasons}
    with storage.writer(uri, {"step": "evaluate", "decision": decision}) as staging:
        (staging / DECISION_FILE).write_text(json.dumps(record))
    return uri


def _aliases(client: Any) -> dict[str, str]:
    return {alias: str(version) for alias, version in client.get_registered_model(MODEL).aliases.items()}


def _challenge(client: Any, version: str) -> None:
    client.set_registered_model_alias(MODEL, "challenger", version)


def test_every_promotion_path_releases_challenger_and_records_who_and_why(registry: Any, capsys: Any) -> None:
    # Gate: version 1, no champion yet.
    _challenge(registry, "1")
    gate_uri = _decision("1", None, "promote", ["roc_auc=0.8 no champion yet"])
    code, result = step(capsys, "promote", DAY, "--decision", gate_uri)
    assert (code, result["metrics"]["champion_version"]) == (ExitCode.OK, "1"), result
    assert _aliases(registry) == {"champion": "1"}
    tags = registry.get_model_version(MODEL, "1").tags
    assert (tags["mlcycle.promoted_by"], tags["mlcycle.decision_uri"]) == ("gate", gate_uri)

    # Approved review: version 2, flagged by the gate, approved by a person in the training run.
    _challenge(registry, "2")
    review_uri = _decision("2", "1", "needs_manual_review", ["possible leakage: roc_auc=0.9990 >= 0.98"])
    code, result = step(
        capsys, "promote", DAY, "--decision", review_uri, "--review=approved", "--approver=ana", "--reason=checked"
    )
    assert (code, result["metrics"]["champion_version"]) == (ExitCode.OK, "2"), result
    assert _aliases(registry) == {"champion": "2"}, "the champion must not keep @challenger"
    tags = registry.get_model_version(MODEL, "2").tags
    assert {k: tags[k] for k in ("mlcycle.promoted_by", "mlcycle.approver", "mlcycle.reason", "mlcycle.review")} == {
        "mlcycle.promoted_by": "review",
        "mlcycle.approver": "ana",
        "mlcycle.reason": "checked",
        "mlcycle.review": "approved",
    }
    assert (tags["mlcycle.decision_uri"], tags["mlcycle.reviewed_by"]) == (review_uri, "ana")

    # Manual: version 3 through the promotion DAG's form; its gate record (evaluate's tag) is the decision link.
    _challenge(registry, "3")
    registry.set_model_version_tag(MODEL, "3", "mlcycle.gate.record", "s3://somewhere/evaluation/v3")
    code, result = step(
        capsys, "promote", DAY, "--model-version=3", "--approver=bo", "--reason=reviewed offline", "--action=promote"
    )
    assert (code, result["metrics"]["champion_version"]) == (ExitCode.OK, "3"), result
    assert _aliases(registry) == {"champion": "3"}
    tags = registry.get_model_version(MODEL, "3").tags
    assert {k: tags[k] for k in ("mlcycle.promoted_by", "mlcycle.approver", "mlcycle.reason")} == {
        "mlcycle.promoted_by": "manual",
        "mlcycle.approver": "bo",
        "mlcycle.reason": "reviewed offline",
    }
    assert tags["mlcycle.decision_uri"] == "s3://somewhere/evaluation/v3"

    # Rollback to version 2, which meanwhile was pointed at as @challenger again.
    _challenge(registry, "2")
    code, result = step(capsys, "promote", DAY, "--action=rollback", "--approver=bo", "--reason=bad week")
    assert (code, result["metrics"]["champion_version"]) == (ExitCode.OK, "2"), result
    assert _aliases(registry) == {"champion": "2"}


@pytest.mark.parametrize(
    ("argv", "review", "reviewed_by", "reason"),
    [
        (["--review=rejected", "--approver=ana", "--reason=leaks the label"], "rejected", "ana", "leaks the label"),
        # Nobody answered: the scheduler applied the default answer (usecase.yaml `approval.on_timeout: reject`).
        (["--review=timed_out", "--approver=", "--reason="], "timed_out", "", "timed_out (possible leakage"),
    ],
)
def test_a_review_that_does_not_approve_leaves_the_version_challenger(
    registry: Any, capsys: Any, argv: list[str], review: str, reviewed_by: str, reason: str
) -> None:
    _challenge(registry, "1")
    step(capsys, "promote", DAY, "--decision", _decision("1", None, "promote", ["no champion yet"]))
    _challenge(registry, "2")
    uri = _decision("2", "1", "needs_manual_review", ["possible leakage: roc_auc=0.9990 >= 0.98"])
    code, result = step(capsys, "promote", DAY, "--decision", uri, *argv)
    assert (code, result["status"]) == (ExitCode.NOTHING_TO_DO, "skipped"), result
    assert f"review was {review}" in result["reason"], result["reason"]
    assert _aliases(registry) == {"champion": "1", "challenger": "2"}
    tags = registry.get_model_version(MODEL, "2").tags
    assert (tags["mlcycle.review"], tags["mlcycle.reviewed_by"]) == (review, reviewed_by)
    assert tags["mlcycle.review_reason"].startswith(reason), tags["mlcycle.review_reason"]
    assert "mlcycle.approver" not in tags


def test_an_approval_never_promotes_a_decision_the_gate_made_alone(registry: Any, capsys: Any) -> None:
    uri = _decision("3", None, "reject", ["roc_auc=0.5 misses the floor 0.6"])
    code, result = step(capsys, "promote", DAY, "--decision", uri, "--review=approved", "--approver=ana")
    assert (code, result["status"]) == (ExitCode.REJECTED, "rejected"), result
    assert "the gate decided 'reject', which needs no review" in result["reason"]
    assert "champion" not in _aliases(registry)


def test_an_unreviewed_flagged_decision_waits_for_a_person(registry: Any, capsys: Any) -> None:
    uri = _decision("3", None, "needs_manual_review", ["implausibly large change: roc_auc 0.7 -> 0.95"])
    code, result = step(capsys, "promote", DAY, "--decision", uri)
    assert (code, result["status"]) == (ExitCode.NOTHING_TO_DO, "skipped"), result
    assert "needs manual review" in result["reason"] and _aliases(registry) == {"challenger": "3"}
