"""promote: move `@champion`, by compare-and-set, from a gate decision or a manual promote/rollback."""

from __future__ import annotations

import datetime as dt
import json
import logging

from mlcycle.registry import champion, tracking
from mlcycle.specs.catalog import PromoteOptions
from mlcycle.specs.names import Step
from mlcycle.specs.results import PromoteResult
from mlcycle.steps.base import NothingToDo, Rejected, StepContext
from mlcycle.storage.layout import DECISION_FILE

log = logging.getLogger(__name__)


def main(ctx: StepContext, options: PromoteOptions) -> PromoteResult:
    usecase = ctx.usecase
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    if options.decision:
        with ctx.storage.local_copy(options.decision) as folder:
            decision = json.loads((folder / DECISION_FILE).read_text())
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
        try:
            expected, version = champion.rollback_target(usecase)
        except champion.NoRollbackTarget as nothing:
            raise Rejected(str(nothing)) from nothing
        record = {"mlcycle.rolled_back_from": expected, "mlcycle.promoted_at": now}
        action = "rollback"
    else:
        if not options.model_version:
            raise Rejected("manual promotion needs --model-version")
        version, expected = str(options.model_version), champion.current_champion(usecase)
        record = {"mlcycle.promoted_by": "manual", "mlcycle.promoted_at": now}
        action = "promote"
    if options.approver:
        record["mlcycle.approver"] = options.approver
    if options.reason:
        record["mlcycle.reason"] = options.reason
    if ctx.airflow.run_id:  # the DAG run that moved @champion: what `mlcycle lineage` names next to the approver
        record["mlcycle.promoted_in"] = f"{ctx.airflow.dag_id}/{ctx.airflow.run_id}"
    try:
        if action == "rollback" and expected is not None:
            champion.restore(ctx.storage, usecase, version, expected, record)
        else:
            champion.compare_and_set(ctx.storage, usecase, version, expected, record)
    except champion.ChampionChanged as lost:
        raise Rejected(str(lost), expected=lost.expected, found=lost.found) from lost
    except champion.UnknownVersion as unknown:
        raise Rejected(f"cannot promote: {unknown}") from unknown
    log.info("%s: @champion %s -> %s", action, expected, version)
    return PromoteResult.of(
        Step.PROMOTE,
        usecase.name,
        ctx.partition.isoformat(),
        outputs={"model_uri": tracking.model_uri(usecase, version)},
        metrics={"action": action, "champion_version": version, "previous_champion": expected},
        inputs={"decision": options.decision} if options.decision else None,
    )
