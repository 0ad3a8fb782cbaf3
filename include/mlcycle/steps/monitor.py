"""monitor: Evidently data drift of validated/ds=D against the champion's training data."""

from __future__ import annotations

import argparse
import logging

import pandas as pd

from mlcycle.monitoring.drift import run_drift_report, save_report
from mlcycle.registry import tracking
from mlcycle.steps.base import NothingToDo, StepContext, StepResult
from mlcycle.steps.ingest import DATA_FILE

log = logging.getLogger(__name__)


def main(ctx: StepContext, args: argparse.Namespace) -> StepResult:
    usecase, partition = ctx.usecase, ctx.partition.isoformat()
    champion = tracking.alias_version(usecase, tracking.CHAMPION)
    if champion is None:
        raise NothingToDo("no @champion yet: there is no reference data to compare with")
    reference_uri = tracking.version_tags(usecase, champion.version).get("mlcycle.features_uri")
    if not reference_uri:
        raise ValueError(f"champion version {champion.version} has no mlcycle.features_uri tag")
    current_uri = ctx.uri("validated")
    if not ctx.storage.exists(current_uri):
        raise NothingToDo(f"no validated data for {partition} (not landed yet, or rejected and quarantined)")
    columns = [c.name for c in usecase.features]
    with ctx.storage.local_copy(reference_uri) as folder:
        reference = pd.read_parquet(folder / "train.parquet", columns=columns)
    with ctx.storage.local_copy(current_uri) as folder:
        current = pd.read_parquet(folder / DATA_FILE, columns=columns)

    drift = usecase.thresholds.drift
    summary, snapshot = run_drift_report(
        reference,
        current,
        numeric=usecase.numeric_features,
        categorical=usecase.categorical_features,
        numeric_method=drift.numeric_method,
        categorical_method=drift.categorical_method,
        threshold=drift.p_value,
        drift_share_threshold=drift.drift_share,
    )
    target = ctx.uri("monitoring")
    manifest = {
        "step": "monitor",
        "reference": reference_uri,
        "current": current_uri,
        "champion": champion.version,
    }
    with ctx.storage.writer(target, manifest) as staging:
        save_report(snapshot, summary, staging)
    for column in summary.columns:
        log.info(
            "%-26s %-11s %-10s score=%.4g drifted=%s",
            column.column,
            column.kind,
            column.stattest,
            column.score,
            column.drifted,
        )
    return StepResult(
        "monitor",
        usecase.name,
        partition,
        outputs={"report": f"{target}/report.html", "monitoring": target},
        metrics={
            "dataset_drift": summary.dataset_drift,
            "drift_share": round(summary.drift_share, 4),
            "drifted_columns": summary.drifted_columns,
            "champion_version": str(champion.version),
        },
    )
