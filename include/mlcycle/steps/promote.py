"""promote: move `@champion`, by compare-and-set, from a gate decision or a manual promote/rollback."""

from __future__ import annotations

import datetime as dt
import json
import logging

from mlcycle.config import UseCase
from mlcycle.registry import tracking
from mlcycle.registry.lock import registry_lock
from mlcycle.specs.catalog import PromoteOptions
from mlcycle.steps.base import NothingToDo, Rejected, StepContext, StepResult
from mlcycle.storage.partitions import Storage

log = logging.getLogger(__name__)

# Version tag holding when the version held @champion: what `mlcycle report` prints.
PERIODS = "mlcycle.champion_periods"


def current_champion(usecase: UseCase) -> str | None:
    champion = tracking.alias_version(usecase, tracking.CHAMPION)
    return None if champion is None else str(champion.version)


def compare_and_set(storage: Storage, usecase: UseCase, new: str, expected: str | None, record: dict[str, str]) -> None:
    """Point @champion at `new` only if it still points at `expected` (None: no champion yet).

    The check and the set run under the registry lock, so of two racing promotions exactly one wins.
    """
    with registry_lock(storage, usecase.name):
        _compare_and_set(usecase, new, expected, record)


def _compare_and_set(usecase: UseCase, new: str, expected: str | None, record: dict[str, str]) -> None:
    seen = current_champion(usecase)
    if seen != expected:
        raise Rejected(
            f"champion changed since evaluation: expected version {expected}, registry has {seen}; "
            "re-run evaluate against the new champion",
            expected=expected,
            found=seen,
        )
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    tracking.set_version_tags(
        usecase,
        new,
        {**record, "mlcycle.previous_champion": expected or "", PERIODS: _periods(usecase, new, opened=now)},
    )
    tracking.client().set_registered_model_alias(usecase.registered_model_name, tracking.CHAMPION, new)
    if seen is not None and seen != new:
        tracking.set_version_tags(usecase, seen, {PERIODS: _periods(usecase, seen, closed=now)})


def _periods(usecase: UseCase, version: str, *, opened: str | None = None, closed: str | None = None) -> str:
    """The version's @champion periods, [[from, to|null], ...], with one opened or the last one closed."""
    periods = json.loads(tracking.version_tags(usecase, version).get(PERIODS, "[]"))
    if opened:
        periods.append([opened, None])
    if closed and periods and periods[-1][1] is None:
        periods[-1][1] = closed
    return json.dumps(periods)


def main(ctx: StepContext, options: PromoteOptions) -> StepResult:
    usecase = ctx.usecase
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    result = StepResult("promote", usecase.name, ctx.partition.isoformat())
    if options.decision:
        with ctx.storage.local_copy(options.decision) as folder:
            decision = json.loads((folder / "decision.json").read_text())
        version = str(decision["candidate_version"])
        expected = None if decision["champion_version"] is None else str(decision["champion_version"])
        if decision["decision"] == "needs_manual_review":
            raise NothingToDo(
                f"version {version} needs manual review ({'; '.join(decision['reasons'])}); to promote it, trigger "
                f"{usecase.name}_promotion with version={version}, an approver and a reason",
                candidate_version=version,
                needs_manual_review=True,
            )
        if decision["decision"] != "promote":
            raise NothingToDo(
                f"gate decided {decision['decision']!r} for version {version}: {'; '.join(decision['reasons'])}",
                candidate_version=version,
            )
        record = {
            "mlcycle.promoted_by": "gate",
            "mlcycle.promoted_at": now,
            "mlcycle.decision_uri": options.decision,
        }
        action = "promote"
    elif options.action == "rollback":
        expected = current_champion(usecase)
        if expected is None:
            raise Rejected("rollback: there is no @champion to roll back")
        version = tracking.version_tags(usecase, expected).get("mlcycle.previous_champion", "")
        if not version:
            raise Rejected(f"rollback: champion version {expected} has no previous champion recorded")
        record = {"mlcycle.rolled_back_from": expected, "mlcycle.promoted_at": now}
        action = "rollback"
    else:
        if not options.model_version:
            raise Rejected("manual promotion needs --model-version")
        version, expected = str(options.model_version), current_champion(usecase)
        record = {"mlcycle.promoted_by": "manual", "mlcycle.promoted_at": now}
        action = "promote"
    if options.approver:
        record["mlcycle.approver"] = options.approver
    if options.reason:
        record["mlcycle.reason"] = options.reason
    if options.action == "rollback" and not options.decision:
        # A rollback must not erase the lineage: keep the older previous_champion of the restored version.
        restored_previous = tracking.version_tags(usecase, version).get("mlcycle.previous_champion", "")
        compare_and_set(ctx.storage, usecase, version, expected, record)
        tracking.set_version_tags(usecase, version, {"mlcycle.previous_champion": restored_previous})
    else:
        compare_and_set(ctx.storage, usecase, version, expected, record)
    log.info("%s: @champion %s -> %s", action, expected, version)
    result.metrics = {"action": action, "champion_version": version, "previous_champion": expected}
    result.outputs = {"model_uri": tracking.model_uri(usecase, version)}
    return result
