"""promote: move `@champion`, by compare-and-set, from a gate decision or a manual promote/rollback."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging

from mlcycle.config import UseCase
from mlcycle.registry import tracking
from mlcycle.steps.base import NothingToDo, Rejected, StepContext, StepResult

log = logging.getLogger(__name__)


def current_champion(usecase: UseCase) -> str | None:
    champion = tracking.alias_version(usecase, tracking.CHAMPION)
    return None if champion is None else str(champion.version)


def compare_and_set(usecase: UseCase, new: str, expected: str | None, record: dict[str, str]) -> None:
    """Point @champion at `new` only if it still points at `expected` (None: no champion yet).

    MLflow has no transactional alias update; the check and the set are adjacent, and the loser of a
    race between two gate runs is the one whose expectation is stale, which this check catches.
    """
    seen = current_champion(usecase)
    if seen != expected:
        raise Rejected(
            f"champion changed since evaluation: expected version {expected}, registry has {seen}; "
            "re-run evaluate against the new champion",
            expected=expected,
            found=seen,
        )
    tracking.set_version_tags(usecase, new, {**record, "mlcycle.previous_champion": expected or ""})
    tracking.client().set_registered_model_alias(usecase.registered_model_name, tracking.CHAMPION, new)


def main(ctx: StepContext, args: argparse.Namespace) -> StepResult:
    usecase = ctx.usecase
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    result = StepResult("promote", usecase.name, ctx.partition.isoformat())
    if args.decision:
        with ctx.storage.local_copy(args.decision) as folder:
            decision = json.loads((folder / "decision.json").read_text())
        version = str(decision["candidate_version"])
        expected = None if decision["champion_version"] is None else str(decision["champion_version"])
        if decision["decision"] != "promote":
            raise NothingToDo(
                f"gate decided {decision['decision']!r} for version {version}: {'; '.join(decision['reasons'])}",
                candidate_version=version,
            )
        record = {
            "mlcycle.promoted_by": "gate",
            "mlcycle.promoted_at": now,
            "mlcycle.decision_uri": args.decision,
        }
        action = "promote"
    elif args.action == "rollback":
        expected = current_champion(usecase)
        if expected is None:
            raise Rejected("rollback: there is no @champion to roll back")
        version = tracking.version_tags(usecase, expected).get("mlcycle.previous_champion", "")
        if not version:
            raise Rejected(f"rollback: champion version {expected} has no previous champion recorded")
        record = {"mlcycle.rolled_back_from": expected, "mlcycle.promoted_at": now}
        action = "rollback"
    else:
        if not args.model_version:
            raise Rejected("manual promotion needs --model-version")
        version, expected = str(args.model_version), current_champion(usecase)
        record = {"mlcycle.promoted_by": "manual", "mlcycle.promoted_at": now}
        action = "promote"
    if args.approver:
        record["mlcycle.approver"] = args.approver
    if args.reason:
        record["mlcycle.reason"] = args.reason
    if args.action == "rollback" and not args.decision:
        # A rollback must not erase the lineage: keep the older previous_champion of the restored version.
        restored_previous = tracking.version_tags(usecase, version).get("mlcycle.previous_champion", "")
        compare_and_set(usecase, version, expected, record)
        tracking.set_version_tags(usecase, version, {"mlcycle.previous_champion": restored_previous})
    else:
        compare_and_set(usecase, version, expected, record)
    log.info("%s: @champion %s -> %s", action, expected, version)
    result.metrics = {"action": action, "champion_version": version, "previous_champion": expected}
    result.outputs = {"model_uri": tracking.model_uri(usecase, version)}
    return result
