"""canary: `promotion: shadow_canary` — promote the gate-approved @challenger once live labels back it, or refuse it.

The gate's promote decision leaves the candidate @challenger with `mlcycle.canary = pending` (steps/promote.py);
scoring shadow-scores every served row with it. This step, in the monitoring DAG after `monitor`, reads the
challenger's labelled shadow days up to D - label delay (only days after its training window, each compared with
the current @champion's served predictions on the same rows: monitoring.canary.compare_day) and applies
`canary.labelled_days` (K) and `canary.tolerance`:

- a judged day on which the challenger trails the champion by more than the tolerance: refused. It stays
  @challenger, records `mlcycle.canary = refused`, the reason and the evidence, and the step exits REJECTED
  (the promotion-rejected alert); later runs skip it;
- K days, none trailing: the same locked compare-and-set as every promotion (against the champion compared
  with), recorded `promoted by: canary` with the evidence and the gate decision record;
- fewer: pending, nothing changes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from mlcycle.monitoring import canary
from mlcycle.registry import champion as registry
from mlcycle.registry import tracking
from mlcycle.specs.names import ModelRole, Runbook, Step
from mlcycle.specs.options import Options
from mlcycle.specs.results import CanaryResult
from mlcycle.steps.base import NothingToDo, Rejected, StepContext
from mlcycle.storage.layout import DATA_FILE, Dataset, role_sub
from mlcycle.tags import Tag

log = logging.getLogger(__name__)


def _read(ctx: StepContext, uri: str, columns: list[str], file: str | None = None) -> Any:
    import pandas as pd

    with ctx.storage.local_copy(uri) as folder:
        if file is not None:
            return pd.read_parquet(folder / file, columns=columns)
        parts = sorted(folder.glob("part-*.parquet"))
        return pd.concat([pd.read_parquet(p, columns=columns) for p in parts], ignore_index=True)


def shadow_days(ctx: StepContext, challenger: str, champion: str, after: dt.date) -> list[canary.ShadowDay]:
    """The labelled days after `after` (the challenger's training window) up to D - label delay on which
    `challenger` shadow-scored the rows `champion` served, compared; oldest first."""
    usecase = ctx.usecase
    last = ctx.partition - dt.timedelta(days=usecase.target.label_delay_days)
    shadow_sub, served_sub = role_sub(ModelRole.CHALLENGER), role_sub(ModelRole.CHAMPION)
    days = []
    for day in ctx.storage.list_partitions(usecase.name, Dataset.PREDICTIONS, sub=shadow_sub):
        if not after < day <= last:
            continue
        shadow_uri, served_uri = (
            ctx.uri(Dataset.PREDICTIONS, day, shadow_sub),
            ctx.uri(Dataset.PREDICTIONS, day, served_sub),
        )
        labels_uri = ctx.uri(Dataset.VALIDATED, day)
        shadow_manifest, served_manifest = ctx.storage.manifest(shadow_uri), ctx.storage.manifest(served_uri)
        # Another challenger's shadow, or a day another champion served: not evidence about this pair.
        if str((shadow_manifest or {}).get("model_version")) != challenger:
            continue
        if str((served_manifest or {}).get("model_version")) != champion or not ctx.storage.exists(labels_uri):
            continue
        columns = [usecase.key, "score", "decision"]
        days.append(
            canary.compare_day(
                _read(ctx, served_uri, columns),
                _read(ctx, shadow_uri, columns),
                _read(ctx, labels_uri, [usecase.key, usecase.target.name], DATA_FILE),
                usecase=usecase,
                partition=day.isoformat(),
                champion_version=champion,
                challenger_version=challenger,
            )
        )
    return days


def main(ctx: StepContext, options: Options) -> CanaryResult:
    usecase, partition = ctx.usecase, ctx.partition.isoformat()
    if usecase.promotion != "shadow_canary":
        raise NothingToDo(f"{usecase.name} promotes immediately (promotion: {usecase.promotion}): no canary")
    champion = registry.current_champion(usecase)
    found = tracking.alias_version(usecase, ModelRole.CHALLENGER)
    if champion is None or found is None or str(found.version) == champion:
        raise NothingToDo(f"no @challenger besides @champion v{champion}: nothing in a canary")
    challenger, tags = str(found.version), dict(found.tags)
    state = tags.get(Tag.CANARY)
    if state != registry.CanaryState.PENDING:
        raise NothingToDo(
            f"@challenger v{challenger} is not in a canary (mlcycle.canary: {state or 'unset'}"
            + (f", {tags[Tag.CANARY_REASON]}" if tags.get(Tag.CANARY_REASON) else "")
            + "): only a version the gate approved is canaried"
        )
    trained_through = tags.get(Tag.PARTITION)
    if not trained_through:
        raise ValueError(f"challenger version {challenger} has no {Tag.PARTITION} tag: its training window is unknown")
    days = shadow_days(ctx, challenger, champion, dt.date.fromisoformat(trained_through))
    settings = usecase.canary
    result = canary.verdict(days, required=settings.labelled_days, tolerance=settings.tolerance)
    evidence = json.dumps(result.evidence())
    metrics: dict[str, Any] = {
        "decision": result.decision,
        "challenger_version": challenger,
        "champion_version": champion,
        "required_days": result.required_days,
        "tolerance": result.tolerance,
        "days": [d.to_dict() for d in result.days],
        "skipped_days": [d.to_dict() for d in days if d.status != "computed"],
    }
    log.info("canary of v%s vs champion v%s: %s: %s", challenger, champion, result.decision, result.reason)
    if result.decision == "refuse":
        tracking.set_version_tags(
            usecase,
            challenger,
            {Tag.CANARY: registry.CanaryState.REFUSED, Tag.CANARY_REASON: result.reason, Tag.CANARY_EVIDENCE: evidence},
        )
        raise Rejected(
            f"canary refused, v{challenger} stays @challenger: {result.reason}",
            metrics=metrics,
            runbook=Runbook.PROMOTION_REJECTED.value,
        )
    if result.decision == "promote":
        record = {
            registry.PROMOTED_BY: "canary",
            Tag.PROMOTED_AT: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            registry.REASON: result.reason,
            Tag.CANARY: registry.CanaryState.PASSED,
            Tag.CANARY_REASON: result.reason,
            Tag.CANARY_EVIDENCE: evidence,
        }
        if not tags.get(registry.DECISION_URI) and tags.get(Tag.GATE_RECORD):  # promote records the one it applied
            record[registry.DECISION_URI] = tags[Tag.GATE_RECORD]
        if ctx.airflow.run_id:
            record[Tag.PROMOTED_IN] = f"{ctx.airflow.dag_id}/{ctx.airflow.run_id}"
        try:
            registry.compare_and_set(ctx.storage, usecase, challenger, champion, record)
        except registry.ChampionChanged as lost:
            raise Rejected(str(lost), metrics=metrics, expected=lost.expected, found=lost.found) from lost
    return CanaryResult.of(
        Step.CANARY,
        usecase.name,
        partition,
        outputs={"model_uri": tracking.model_uri(usecase, challenger)},
        metrics=metrics,
        reason=result.reason,
    )
