"""monitor: data drift, prediction drift and (once labels arrived) performance of the day, with Evidently.

- Data drift: validated/ds=D against the champion's training split (per-column tests, see monitoring.drift).
- Prediction drift: the champion's scores on D (predictions/ds=D/role=champion) against its scores on the
  training split: a model can react to drift in columns that look harmless one by one.
- Performance: on L = D - label_delay_days, the served predictions joined with L's labels, against the
  serving version's test metric at training time (monitoring.performance).
- Both references (the version's scores on its train and test splits) are stored with the version when it is
  trained (monitoring.reference_scores); a version registered before has none, and they are computed here from
  its splits, fed the columns of its own signature.
- Shadow challenger: on L, the @challenger's shadow predictions against the champion's served ones on the same
  labelled rows (monitoring.canary; what `promotion: shadow_canary` decides on), and each version's labelled-day
  metric logged on its training run beside its offline test metric (the offline-vs-online table).
- New labelled rows since the champion's training window, for the retraining policy's guard.

Everything lands in monitoring/ds=D (HTML + JSON per report, summary.json) and in the monitoring DAG
run's MLflow parent run; the result (XCom) carries the per-column verdicts the retraining branch reads.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pyarrow.parquet as pq

from mlcycle.config import UseCase
from mlcycle.monitoring import canary, reference_scores
from mlcycle.monitoring import performance as perf
from mlcycle.monitoring.drift import DriftSummary, run_drift_report, save_report
from mlcycle.monitoring.reference_profile import ReferenceProfile
from mlcycle.registry import integrity, tracking
from mlcycle.specs.names import ModelRole, Step
from mlcycle.specs.options import Options
from mlcycle.specs.results import MonitorResult
from mlcycle.steps.base import NothingToDo, Rejected, StepContext
from mlcycle.steps.models import load_model
from mlcycle.storage.layout import (
    DATA_FILE,
    OFFLINE_ONLINE_FILE,
    PERFORMANCE_REPORT_FILE,
    PREDICTION_DRIFT_SUB,
    REPORT_FILE,
    SHADOW_FILE,
    STATISTICS_FILE,
    Dataset,
    Split,
    role_sub,
    split_file,
)
from mlcycle.tags import Tag
from mlcycle.training.model_io import model_input, predict_score
from mlcycle.training.sampling import read_sample

log = logging.getLogger(__name__)

PREDICTION_COLUMN = "score"
# The rows of the champion's train split the data-drift reference is built from: a seeded uniform sample past
# this (the reference is sketched to `drift.sample_rows` quantiles and levels, which 2M rows estimate as well
# as the whole split), so the step's memory stops growing with the window (9.3M rows at 1M sessions a day).
REFERENCE_MAX_ROWS = 2_000_000


def _read(ctx: StepContext, uri: str, file: str | None, columns: list[str] | None = None) -> pd.DataFrame:
    """One parquet file (or every part of a folder when `file` is None) of a committed partition."""
    with ctx.storage.local_copy(uri) as folder:
        if file is not None:
            return pd.read_parquet(folder / file, columns=columns)
        parts = sorted(folder.glob("part-*.parquet"))
        return pd.concat([pd.read_parquet(p, columns=columns) for p in parts], ignore_index=True)


class _Models:
    """The versions' pyfuncs, each loaded (downloaded, verified, deserialised: seconds) on first use only: with
    stored reference scores the monitor needs none."""

    def __init__(self, usecase: UseCase) -> None:
        self.usecase, self.loaded = usecase, dict[str, Any]()

    def get(self, version: str) -> Any:
        if version not in self.loaded:
            self.loaded[version] = load_model(self.usecase, version)
        return self.loaded[version]


def _scores(model: Any, table: pd.DataFrame, what: str) -> Any:
    """The version's scores of `table`, fed the columns of its own signature (what it was trained on)."""
    return predict_score(model, model_input(model, table, what))


def _stored_references(usecase: UseCase, version: str, tags: dict[str, Any]) -> reference_scores.ReferenceScores | None:
    try:
        stored = reference_scores.stored(usecase, version, tags)
    except integrity.ArtifactRejected as exc:
        # Files that differ from their recorded digests were changed after registration: refused like a tampered
        # model (65, no retry). A store that cannot be reached stays an error (ReferenceScoresUnreadable): retried.
        raise Rejected(f"reference scores refused: {exc}") from exc
    if stored is None:
        log.info(
            "%s has no stored reference scores (registered before they were stored): scoring its splits instead",
            integrity.describe(usecase, version),
        )
    return stored


def _drift(
    usecase: UseCase, reference: pd.DataFrame | ReferenceProfile, current: pd.DataFrame, columns: list[str]
) -> tuple[DriftSummary, Any]:
    drift = usecase.thresholds.drift
    numeric = [c for c in columns if c in usecase.numeric_features or c == PREDICTION_COLUMN]
    categorical = [c for c in columns if c in usecase.categorical_features]
    return run_drift_report(
        reference,
        current,
        numeric=numeric,
        categorical=categorical,
        numeric_method=drift.numeric_method,
        categorical_method=drift.categorical_method,
        threshold=drift.p_value,
        drift_share_threshold=drift.drift_share,
        methods=drift.methods,
        column_thresholds=drift.column_thresholds,
        sample_rows=drift.sample_rows,
    )


def _expected_scores(
    ctx: StepContext, models: _Models, version: str, tags: dict[str, Any], reference_uri: str
) -> pd.DataFrame | ReferenceProfile:
    """The champion's scores on its training split: the sketch stored with it, or scored here (older versions)."""
    stored = _stored_references(ctx.usecase, version, tags)
    if stored is not None:
        return stored.prediction
    train = _read(ctx, reference_uri, split_file(Split.TRAIN))
    what = integrity.describe(ctx.usecase, version)
    return pd.DataFrame({PREDICTION_COLUMN: _scores(models.get(version), train, what)})


def _training_metric(usecase: UseCase, version: str) -> float:
    """The version's gate metric on its frozen test split, as logged when it was trained."""
    run_id = tracking.version_tags(usecase, version).get(Tag.RUN_ID, "")
    metric = usecase.thresholds.gate.metric
    value = tracking.client().get_run(run_id).data.metrics.get(f"test_{metric}") if run_id else None
    if value is None:
        raise ValueError(f"version {version} has no test_{metric} on its training run {run_id!r}")
    return float(value)


def _performance_reference(ctx: StepContext, models: _Models, version: str) -> pd.DataFrame:
    """The serving version's (target, score) on its test split: stored with it, or scored here (older versions)."""
    usecase = ctx.usecase
    tags = tracking.version_tags(usecase, version)
    stored = _stored_references(usecase, version, tags)
    if stored is not None:
        return stored.performance
    test = _read(ctx, tags[Tag.FEATURES_URI], split_file(Split.TEST))
    return pd.DataFrame(
        {
            "target": test[usecase.target.name].astype("int64"),
            "score": _scores(models.get(version), test, integrity.describe(usecase, version)),
        }
    )


def _performance(ctx: StepContext, models: _Models) -> tuple[perf.Performance, Any | None]:
    """Champion performance on the day whose labels have arrived, and its Evidently report."""
    usecase = ctx.usecase
    delay = usecase.target.label_delay_days
    day = ctx.partition - dt.timedelta(days=delay)
    labels_uri, predictions_uri = (
        ctx.uri(Dataset.VALIDATED, day),
        ctx.uri(Dataset.PREDICTIONS, day, sub=role_sub(ModelRole.CHAMPION)),
    )
    missing = [u for u in (labels_uri, predictions_uri) if not ctx.storage.exists(u)]
    if missing:
        reason = f"labels for {day} (label delay {delay} d) have nothing to join: missing {missing}"
        return perf.Performance("pending", day.isoformat(), reason=reason), None
    manifest = ctx.storage.manifest(predictions_uri) or {}
    version = str(manifest.get("model_version", ""))
    labels = _read(ctx, labels_uri, DATA_FILE, columns=[usecase.key, usecase.target.name])
    served = _read(ctx, predictions_uri, None, columns=[usecase.key, "score", "decision"])
    current = perf.labelled(served, labels, usecase.key, usecase.target.name)
    threshold = usecase.model.decision_threshold
    result = perf.measure(
        current,
        metric=usecase.thresholds.gate.metric,
        reference_value=_training_metric(usecase, version),
        threshold=threshold,
        partition=day.isoformat(),
        version=version,
    )
    if result.status != "computed":
        return result, None
    return result, perf.classification_report(_performance_reference(ctx, models, version), current, threshold)


def _shadow(ctx: StepContext) -> canary.ShadowDay:
    """The shadow @challenger vs the @champion on the labelled day L = D - label delay, on the rows both scored.

    The versions are the ones that scored L (their predictions' manifests), not today's aliases.
    """
    usecase = ctx.usecase
    day = ctx.partition - dt.timedelta(days=usecase.target.label_delay_days)
    uris = {role: ctx.uri(Dataset.PREDICTIONS, day, sub=role_sub(role)) for role in ModelRole}
    manifests = {role: ctx.storage.manifest(uri) for role, uri in uris.items()}
    versions = {role: str((m or {}).get("model_version", "")) for role, m in manifests.items()}
    ids = (day.isoformat(), versions[ModelRole.CHAMPION], versions[ModelRole.CHALLENGER])
    labels_uri = ctx.uri(Dataset.VALIDATED, day)
    missing = [uris[r] for r in ModelRole if manifests[r] is None] + (
        [] if ctx.storage.exists(labels_uri) else [labels_uri]
    )
    if missing:
        return canary.ShadowDay("pending", *ids, reason=f"no shadow comparison on {day}: missing {missing}")
    columns = [usecase.key, "score", "decision"]
    return canary.compare_day(
        _read(ctx, uris[ModelRole.CHAMPION], None, columns=columns),
        _read(ctx, uris[ModelRole.CHALLENGER], None, columns=columns),
        _read(ctx, labels_uri, DATA_FILE, columns=[usecase.key, usecase.target.name]),
        usecase=usecase,
        partition=ids[0],
        champion_version=ids[1],
        challenger_version=ids[2],
    )


def _log_online(usecase: UseCase, performance: perf.Performance, shadow: canary.ShadowDay) -> dict[str, float]:
    """Each labelled-day metric, on the training run of the version that produced it; {version: value}."""
    online: dict[str, float] = {}
    if performance.status == "computed":
        online[performance.model_version] = performance.value
    if shadow.status == "computed":
        online.setdefault(shadow.champion_version, shadow.champion)
        online[shadow.challenger_version] = shadow.challenger
    day = dt.date.fromisoformat(performance.partition)
    for version, value in online.items():
        canary.log_online(usecase, version, day, value)
    return online


def _new_labelled_rows(ctx: StepContext, trained_through: dt.date) -> int:
    """Labelled rows in validated partitions after the champion's window, up to the labels that arrived."""
    usecase = ctx.usecase
    last = ctx.partition - dt.timedelta(days=usecase.target.label_delay_days)
    rows = 0
    for day in ctx.storage.list_partitions(usecase.name, Dataset.VALIDATED):
        if trained_through < day <= last:
            with ctx.storage.local_copy(ctx.uri(Dataset.VALIDATED, day)) as folder:
                target = pq.read_table(folder / DATA_FILE, columns=[usecase.target.name]).column(0)
                rows += len(target) - target.null_count
    return rows


def _log_to_mlflow(ctx: StepContext, folder: Path, metrics: dict[str, float]) -> str:
    parent = tracking.parent_run(ctx.usecase, ctx.airflow, ctx.partition.isoformat())
    with mlflow.start_run(run_id=parent):
        mlflow.log_artifacts(str(folder), artifact_path=f"monitoring/{ctx.partition.isoformat()}")
        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})  # NaN is not a metric value
    return parent


def main(ctx: StepContext, options: Options) -> MonitorResult:
    usecase, partition = ctx.usecase, ctx.partition.isoformat()
    champion = tracking.alias_version(usecase, ModelRole.CHAMPION)
    if champion is None:
        raise NothingToDo("no @champion yet: there is no reference data to compare with")
    version = str(champion.version)
    tags = tracking.version_tags(usecase, version)
    reference_uri = tags.get(Tag.FEATURES_URI)
    if not reference_uri:
        raise ValueError(f"champion version {version} has no mlcycle.features_uri tag")
    current_uri = ctx.uri(Dataset.VALIDATED)
    if not ctx.storage.exists(current_uri):
        raise NothingToDo(f"no validated data for {partition} (not landed yet, or rejected and quarantined)")
    columns = [c.name for c in usecase.features]
    with ctx.storage.local_copy(reference_uri) as folder:
        path = folder / split_file(Split.TRAIN)
        reference, _ = read_sample(path, REFERENCE_MAX_ROWS, usecase.model.seed, columns=columns)
    statistics: dict[str, Any] | None = None
    if usecase.engine == "spark":  # the day's statistics and test rows on Spark (mlcycle.spark.drift)
        from mlcycle.spark.drift import current_for_drift

        if ctx.storage.is_local:
            with ctx.storage.local_copy(current_uri) as folder:
                current, statistics = current_for_drift(usecase, folder / DATA_FILE, reference, columns)
        else:  # the executors read the day's object themselves (s3a://: mlcycle.spark.s3)
            source = ctx.storage.file_uri(current_uri, DATA_FILE)
            current, statistics = current_for_drift(usecase, source, reference, columns)
    else:
        current = _read(ctx, current_uri, DATA_FILE, columns=columns)
    summary, snapshot = _drift(usecase, reference, current, columns)
    if statistics is not None:  # the tests saw the day's sample; the day itself had this many rows
        summary = dataclasses.replace(summary, n_current=statistics["rows"])

    # Prediction drift: the champion's scores on its training split vs the scores it served on D.
    models = _Models(usecase)
    served_uri = ctx.uri(Dataset.PREDICTIONS, sub=role_sub(ModelRole.CHAMPION))
    prediction: dict[str, Any] = {"status": "pending", "reason": f"no champion predictions for {partition} yet"}
    prediction_report: tuple[DriftSummary, Any] | None = None
    if ctx.storage.exists(served_uri):
        served = _read(ctx, served_uri, None, columns=[PREDICTION_COLUMN])
        expected = _expected_scores(ctx, models, version, tags, reference_uri)
        prediction_report = _drift(usecase, expected, served, [PREDICTION_COLUMN])
        column = prediction_report[0].columns[0]
        prediction = {
            "status": "computed",
            "drifted": column.drifted,
            "score": column.score,
            "stattest": column.stattest,
            # Where the training-split scores came from: stored with the version, or computed here (older versions).
            "reference": "stored" if isinstance(expected, ReferenceProfile) else "computed",
        }

    performance, performance_report = _performance(ctx, models)
    shadow = _shadow(ctx)
    online = _log_online(usecase, performance, shadow)
    offline_online = canary.offline_online(usecase)
    trained_through = dt.date.fromisoformat(tags.get(Tag.PARTITION, "1970-01-01"))
    new_rows = _new_labelled_rows(ctx, trained_through)

    target = ctx.uri(Dataset.MONITORING)
    manifest = {
        "step": "monitor",
        "engine": usecase.engine,
        "reference": reference_uri,
        "current": current_uri,
        "champion": version,
        "predictions": served_uri if prediction["status"] == "computed" else None,
        "airflow": ctx.produced_by(),
    }
    figures = {
        "drift_share": summary.drift_share,
        "drifted_columns_count": float(len(summary.drifted_columns)),
        "prediction_drift_score": float(prediction.get("score") or float("nan")),
        f"performance_{performance.metric or 'metric'}": performance.value,
        "new_labelled_rows": float(new_rows),
        f"shadow_champion_{shadow.metric or 'metric'}": shadow.champion,
        f"shadow_challenger_{shadow.metric or 'metric'}": shadow.challenger,
        "shadow_trail": shadow.trail,
        "offline_online_correlation": float("nan")
        if offline_online["correlation"] is None
        else float(offline_online["correlation"]),
    }
    with ctx.storage.writer(target, manifest) as staging:
        save_report(snapshot, summary, staging)
        if statistics is not None:
            (staging / STATISTICS_FILE).write_text(json.dumps(statistics, indent=2) + "\n", encoding="utf-8")
        if prediction_report is not None:
            save_report(prediction_report[1], prediction_report[0], staging / PREDICTION_DRIFT_SUB)
        perf.save_performance(performance_report, performance, staging)
        (staging / SHADOW_FILE).write_text(json.dumps(shadow.to_dict(), indent=2) + "\n")
        (staging / OFFLINE_ONLINE_FILE).write_text(json.dumps(offline_online, indent=2) + "\n")
        parent_run = _log_to_mlflow(ctx, staging, figures)
    for c in summary.columns:
        log.info("%-26s %-11s %-10s score=%.4g drifted=%s", c.column, c.kind, c.stattest, c.score, c.drifted)
    log.info(
        "prediction drift: %s; performance: %s; new labelled rows: %d", prediction, performance.to_dict(), new_rows
    )
    log.info("shadow challenger: %s; online metric logged for %s", shadow.to_dict(), online)
    log.info("offline vs online, per version:\n%s", canary.offline_online_table(offline_online))
    return MonitorResult.of(
        Step.MONITOR,
        usecase.name,
        partition,
        outputs={
            "report": f"{target}/{REPORT_FILE}",
            "monitoring": target,
            "mlflow_run_id": parent_run,
            # MLflow's artifact view of the report needs it in its URL (the "Evidently report" link).
            "mlflow_experiment_id": tracking.ensure_experiment(usecase),
            **({"performance_report": f"{target}/{PERFORMANCE_REPORT_FILE}"} if performance_report is not None else {}),
        },
        metrics={
            "dataset_drift": summary.dataset_drift,
            "drift_share": round(summary.drift_share, 4),
            "drifted_columns": summary.drifted_columns,
            "columns": [
                {"column": c.column, "test": c.stattest, "score": c.to_dict()["score"], "drifted": c.drifted}
                for c in summary.columns
            ],
            "prediction_drift": prediction,
            "performance": performance.to_dict(),
            "shadow": shadow.to_dict(),
            "offline_online": offline_online,
            "new_labelled_rows": new_rows,
            "trained_through": trained_through.isoformat(),
            "champion_version": version,
            "engine": usecase.engine,
        },
        inputs={
            "validated": current_uri,
            "reference": reference_uri,
            "model": tracking.model_uri(usecase, version),
            **({"predictions": served_uri} if prediction["status"] == "computed" else {}),
        },
    )
