"""promote: move `@champion`, by compare-and-set, from a gate decision (reviewed by a person when the gate asked
for it) or a manual promote/rollback.

Every path records the same fields on the version it promotes (`mlcycle.registry.champion`): who promoted
(`gate`, `review`, `manual`; `canary` in steps/canary.py), the approver, the reason and the gate decision record it applied. A review that
did not approve leaves the version `@challenger`, with the answer, the reviewer and the reason recorded on it.
With `promotion: shadow_canary` an approved decision (gate or review) against a champion leaves the version
`@challenger` in a canary (`mlcycle.canary = pending`) instead: the monitoring DAG's canary task promotes it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from mlcycle.registry import champion, tracking
from mlcycle.registry.champion import (
    APPROVER,
    DECISION_URI,
    GATE_RECORD,
    PROMOTED_BY,
    REASON,
    REVIEW,
    REVIEW_REASON,
    REVIEWED_AT,
    REVIEWED_BY,
)
from mlcycle.specs.catalog import PromoteOptions
from mlcycle.specs.names import ModelRole, Review, Step
from mlcycle.specs.results import PromoteResult
from mlcycle.steps.base import NothingToDo, Rejected, StepContext
from mlcycle.storage.layout import DECISION_FILE
from mlcycle.tags import Tag

log = logging.getLogger(__name__)

PROMOTED_AT = Tag.PROMOTED_AT
NEEDS_REVIEW = "needs_manual_review"


def main(ctx: StepContext, options: PromoteOptions) -> PromoteResult:
    usecase = ctx.usecase
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    if options.decision:
        version, expected, record = _from_decision(ctx, options, now)
        if usecase.promotion == "shadow_canary" and expected is not None:
            _enter_canary(ctx, version, record, now)
        action = "promote"
    elif options.review:
        raise Rejected(f"--review={options.review} answers a gate decision: it needs --decision")
    elif options.action == "rollback":
        try:
            expected, version = champion.rollback_target(usecase)
        except champion.NoRollbackTarget as nothing:
            raise Rejected(str(nothing)) from nothing
        record = {Tag.ROLLED_BACK_FROM: expected, PROMOTED_AT: now}
        action = "rollback"
    else:
        if not options.model_version:
            raise Rejected("manual promotion needs --model-version")
        version, expected = str(options.model_version), champion.current_champion(usecase)
        record = {PROMOTED_BY: "manual", PROMOTED_AT: now, **_decision_link(ctx, version)}
        action = "promote"
    if options.approver:
        record[APPROVER] = options.approver
    if options.reason:
        record[REASON] = options.reason
    if ctx.airflow.run_id:  # the DAG run that moved @champion: what `mlcycle lineage` names next to the approver
        record[Tag.PROMOTED_IN] = f"{ctx.airflow.dag_id}/{ctx.airflow.run_id}"
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


def _from_decision(ctx: StepContext, options: PromoteOptions, now: str) -> tuple[str, str | None, dict[str, str]]:
    """(version, the champion the gate compared with, the record) of a decision that promotes; NothingToDo when
    it does not (the gate rejected, the review did not approve, or nobody reviewed a decision that needs it)."""
    with ctx.storage.local_copy(options.decision or "") as folder:
        decision: dict[str, Any] = json.loads((folder / DECISION_FILE).read_text())
    version = str(decision["candidate_version"])
    expected = None if decision["champion_version"] is None else str(decision["champion_version"])
    reasons = "; ".join(decision["reasons"])
    record = {PROMOTED_BY: "gate", PROMOTED_AT: now, DECISION_URI: str(options.decision)}
    if decision["decision"] != NEEDS_REVIEW:
        if options.review:
            # A review answers only the decision that asked for one: an "approved" must never promote a rejection.
            raise Rejected(
                f"--review={options.review} given for version {version}, but the gate decided "
                f"{decision['decision']!r}, which needs no review"
            )
        if decision["decision"] != "promote":
            raise NothingToDo(
                f"gate decided {decision['decision']!r} for version {version}: {reasons}", candidate_version=version
            )
        return version, expected, record
    if not options.review:
        raise NothingToDo(
            f"version {version} needs manual review ({reasons}); it stays @challenger until a reviewer approves it "
            f"in the training run, or {ctx.usecase.name}_promotion promotes it with an approver and a reason",
            candidate_version=version,
            needs_manual_review=True,
        )
    outcome = _outcome(ctx, Review(options.review))
    review = {
        REVIEW: options.review,
        REVIEWED_BY: options.approver,
        REVIEW_REASON: options.reason or f"{options.review} ({reasons})",
        REVIEWED_AT: now,
    }
    if outcome is not Review.APPROVED:
        tracking.set_version_tags(ctx.usecase, version, review)
        raise NothingToDo(
            f"version {version} stays @challenger: its review was {options.review}"
            + (f" by {options.approver}" if options.approver else "")
            + (f" ({options.reason})" if options.reason else "")
            + f"; the gate had asked for one because: {reasons}",
            candidate_version=version,
            review=options.review,
        )
    return version, expected, {**record, **review, PROMOTED_BY: "review"}


def _enter_canary(ctx: StepContext, version: str, record: dict[str, str], now: str) -> None:
    """`promotion: shadow_canary`: the approved version stays @challenger, in a canary (steps/canary.py promotes it
    after `canary.labelled_days` labelled shadow days); raises NothingToDo. A first champion has nothing to be
    compared with on live traffic, so it is promoted at once (the caller only comes here with a champion)."""
    usecase = ctx.usecase
    challenger = tracking.alias_version(usecase, ModelRole.CHALLENGER)
    if challenger is None or str(challenger.version) != version:
        raise NothingToDo(
            f"version {version} is no longer @challenger (now: {None if challenger is None else challenger.version}): "
            "a newer candidate replaced it before its canary began",
            candidate_version=version,
        )
    settings = usecase.canary
    reason = (
        f"shadow canary: needs {settings.labelled_days} labelled shadow days not trailing @champion by more than "
        f"{settings.tolerance} ({usecase.thresholds.gate.metric})"
    )
    tracking.set_version_tags(
        usecase,
        version,
        {
            Tag.CANARY: champion.CanaryState.PENDING,
            Tag.CANARY_SINCE: now,
            Tag.CANARY_REASON: reason,
            **{k: v for k, v in record.items() if k in (DECISION_URI, REVIEW, REVIEWED_BY, REVIEW_REASON, REVIEWED_AT)},
        },
    )
    raise NothingToDo(
        f"version {version} stays @challenger: {reason}; the monitoring DAG's canary task promotes it",
        candidate_version=version,
        canary=champion.CanaryState.PENDING,
    )


def _outcome(ctx: StepContext, review: Review) -> Review:
    """What the review decides: an unanswered one decides as the use case's `approval.on_timeout` says."""
    if review is not Review.TIMED_OUT:
        return review
    return Review.APPROVED if ctx.usecase.approval.on_timeout == "approve" else Review.REJECTED


def _decision_link(ctx: StepContext, version: str) -> dict[str, str]:
    """The version's gate decision record (evaluate tags it), for a manual promotion's record; {} if none."""
    if not version.isdigit():
        return {}  # not a version number: compare_and_set refuses it with the reason
    found = tracking.model_version(ctx.usecase, version)
    uri = None if found is None else found.tags.get(GATE_RECORD)
    return {DECISION_URI: uri} if uri else {}
