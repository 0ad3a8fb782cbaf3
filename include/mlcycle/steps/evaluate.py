"""evaluate: candidate vs current @champion on the same frozen test set -> a decision record."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Iterable
from typing import Any

import mlflow
import pandas as pd
import pyarrow.parquet as pq

from mlcycle.config import UseCase
from mlcycle.evaluation import compute, feature_value
from mlcycle.evaluation.card import model_card
from mlcycle.evaluation.evidence import baseline_metrics, measure, simple_model
from mlcycle.evaluation.gate import Evidence, SimpleModel, decide
from mlcycle.registry import tracking
from mlcycle.specs.catalog import EvaluateOptions
from mlcycle.specs.names import ModelRole, Step
from mlcycle.specs.results import EvaluateResult
from mlcycle.steps.base import Rejected, StepContext
from mlcycle.steps.features import model_columns
from mlcycle.steps.models import load_model
from mlcycle.storage.layout import DATA_FILE, DECISION_FILE, SUCCESS, Dataset, Split, split_file
from mlcycle.tags import Tag
from mlcycle.training.model_io import model_input, signature_columns
from mlcycle.training.sampling import read_sample

log = logging.getLogger(__name__)


# The rows of each recent day the gate's recent-window check reads at most: a seeded uniform sample past it (the
# metric of 300,000 rows is within ~0.002 ROC AUC of the day's; three whole days of 2M rows held 9 GB with the
# frozen test set).
RECENT_DAY_MAX_ROWS = 300_000


def recent_window(ctx: StepContext, columns: Iterable[str]) -> tuple[pd.DataFrame | None, list[str]]:
    """The latest labelled days before the partition (label delay respected), as one frame of those of
    ``columns`` each day has (the versions' inputs, the label, slices: not every column of three whole days),
    each day cut to a seeded sample of `RECENT_DAY_MAX_ROWS` rows."""
    usecase, wanted = ctx.usecase, list(dict.fromkeys(columns))
    last = ctx.partition - dt.timedelta(days=usecase.target.label_delay_days)
    days = [last - dt.timedelta(days=i) for i in range(usecase.thresholds.gate.recent_days)]
    frames, used = [], []
    for day in sorted(days):
        uri = ctx.uri(Dataset.VALIDATED, day)
        if ctx.storage.exists(uri):
            with ctx.storage.local_copy(uri) as folder:
                present = set(pq.read_schema(folder / DATA_FILE).names)
                read = [c for c in wanted if c in present]
                frame, _ = read_sample(folder / DATA_FILE, RECENT_DAY_MAX_ROWS, usecase.model.seed, columns=read)
                frames.append(frame)
            used.append(day.isoformat())
    return (pd.concat(frames, ignore_index=True) if frames else None), used


def with_columns(ctx: StepContext, test: pd.DataFrame, features: dict[str, Any], columns: list[str]) -> pd.DataFrame:
    """The frozen test set with those of ``columns`` it lacks read from the validated partitions it was built from.

    A champion trained before `usecase.yaml` dropped a feature needs that column (its logged signature), which
    today's `features` no longer keeps: it comes from the same validated days (the features manifest's `days`,
    each checked against the digest `features` read), joined on the key, so both versions are judged on the
    same rows. `Rejected` when a day changed since or a test row has no match (retrying cannot help).
    """
    missing = [c for c in columns if c not in test.columns]
    if not missing:
        return test
    key, parts = ctx.usecase.key, []
    for day in sorted(set(features["days"][Split.TEST.value])):
        with ctx.storage.local_copy(ctx.uri(Dataset.VALIDATED, dt.date.fromisoformat(day))) as folder:
            digest = json.loads((folder / SUCCESS).read_text()).get("files", {}).get(DATA_FILE, {}).get("sha256")
            if digest != features["validated_digests"].get(day):
                raise Rejected(
                    f"validated {day} changed since the features of this test set were built: its {missing} "
                    "cannot be joined to the frozen test set; run features again"
                )
            parts.append(pd.read_parquet(folder / DATA_FILE, columns=[key, *missing]))
    joined = test.merge(pd.concat(parts, ignore_index=True), on=key, how="left", validate="one_to_one", indicator=True)
    unmatched = int((joined.pop("_merge") != "both").sum())
    if unmatched:
        raise Rejected(f"{unmatched} test rows have no {missing} in the validated days they came from")
    return joined


def slice_comparison(
    candidate: dict[str, float], champion: dict[str, float] | None
) -> dict[str, dict[str, float | None]]:
    """Per slice value: the candidate's metric and the champion's (None without a champion or that slice)."""
    return {
        name: {
            "candidate": round(value, 5),
            "champion": None if not champion or name not in champion else round(champion[name], 5),
        }
        for name, value in sorted(candidate.items())
    }


def run_metrics(usecase: UseCase, version: str) -> dict[str, float]:
    """The metrics the version's training run logged (and earlier evaluations added to it); {} without a run."""
    run_id = tracking.version_tags(usecase, version).get(Tag.RUN_ID)
    return dict(tracking.client().get_run(run_id).data.metrics) if run_id else {}


def earlier_importances(usecase: UseCase, candidate_version: str, count: int) -> list[dict[str, float]]:
    """The feature importances logged for the ``count`` versions registered before the candidate, newest first."""
    if count <= 0:
        return []
    earlier = [v for v in tracking.all_versions(usecase) if int(v.version) < int(candidate_version)][-count:]
    prefix = f"{feature_value.IMPORTANCE_METRIC}."
    return [
        {
            k.removeprefix(prefix): v
            for k, v in run_metrics(usecase, str(version.version)).items()
            if k.startswith(prefix)
        }
        for version in reversed(earlier)
    ]


def compute_figures(evidence: Evidence, metrics: dict[str, float], throughput: float) -> dict[str, float | None]:
    """A version's computing performance: its training run's figures and what evaluate measured now."""
    return {
        compute.FIT_SECONDS: metrics.get(compute.FIT_SECONDS),
        compute.PEAK_MEMORY_MB: metrics.get(compute.PEAK_MEMORY_MB),
        compute.LATENCY_P95_MS: evidence.latency_p95_ms,
        compute.THROUGHPUT_ROWS_S: throughput,
    }


def candidate_run_metrics(
    record: dict[str, Any], simple: SimpleModel | None, baseline: dict[str, float]
) -> dict[str, float]:
    """What the candidate's run gets from evaluate: baselines, feature value and cost, computing performance."""
    features = record["feature_value"]
    out = {f"baseline.prior.{k}": v for k, v in baseline.items()}
    if simple is not None:
        out.update({f"baseline.simple_model.{k}": v for k, v in simple.metrics.items()})
    out.update({f"{feature_value.IMPORTANCE_METRIC}.{k}": v for k, v in features["importance"].items()})
    out.update({f"{feature_value.WORK_SHARE_METRIC}.{k}": v for k, v in (features["predict_work_share"] or {}).items()})
    candidate = record["compute"]["candidate"]
    out.update({k: candidate[k] for k in (compute.LATENCY_P95_MS, compute.THROUGHPUT_ROWS_S)})
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(v)}


def main(ctx: StepContext, options: EvaluateOptions) -> EvaluateResult:
    usecase, partition = ctx.usecase, ctx.partition.isoformat()
    candidate_version = str(options.model_version)
    features_uri = ctx.uri(Dataset.FEATURES)
    with ctx.storage.local_copy(features_uri) as folder:
        test = pd.read_parquet(folder / split_file(Split.TEST))
        # The train split only for the baselines: its labels (the prior) and the simple model's bounded sample.
        train_target = pd.read_parquet(folder / split_file(Split.TRAIN), columns=[usecase.target.name])
        simple = simple_model(usecase, folder / split_file(Split.TRAIN), test)
        features_manifest = json.loads((folder / SUCCESS).read_text())

    # Pin the champion seen now: promotion later is a compare-and-set against exactly this version.
    champion = tracking.alias_version(usecase, ModelRole.CHAMPION)
    champion_version = str(champion.version) if champion else None
    candidate_model = load_model(usecase, candidate_version)
    compared = champion_version is not None and champion_version != candidate_version
    champion_model = load_model(usecase, champion_version) if compared and champion_version else None
    thresholds, what = usecase.thresholds.gate, f"candidate version {candidate_version}"
    champion_what = f"champion version {champion_version}"
    inputs = [
        *signature_columns(candidate_model, what),
        *(signature_columns(champion_model, champion_what) if champion_model is not None else []),
    ]
    recent, recent_days = recent_window(ctx, [*model_columns(usecase), *inputs])
    # Each version gets the columns of its own logged signature (as scoring feeds it), not the YAML's list now.
    candidate, _ = measure(usecase, candidate_model, test, recent, with_latency=True, what=what)
    candidate_compute = compute_figures(
        candidate,
        run_metrics(usecase, candidate_version),
        compute.throughput_rows_s(candidate_model, model_input(candidate_model, test, what)),
    )
    champion_evidence, champion_compute = None, None
    if champion_model is not None:
        # The champion's latency and throughput are measured again here, beside the candidate's: a figure logged
        # on another day would compare two states of the machine, not two models.
        champion_test = with_columns(ctx, test, features_manifest, signature_columns(champion_model, champion_what))
        champion_evidence, _ = measure(
            usecase, champion_model, champion_test, recent, with_latency=True, what=champion_what
        )
        champion_compute = compute_figures(
            champion_evidence,
            run_metrics(usecase, str(champion_version)),
            compute.throughput_rows_s(champion_model, model_input(champion_model, champion_test, champion_what)),
        )
    baseline = baseline_metrics(usecase, train_target[usecase.target.name], test)
    importance = feature_value.permutation_importance(usecase, candidate_model, test)
    unimportant = feature_value.unimportant_for(
        importance,
        earlier_importances(usecase, candidate_version, thresholds.unimportant_feature_trainings - 1),
        thresholds.unimportant_feature_trainings,
    )
    regressions = (
        []
        if champion_compute is None
        else compute.regressions(candidate_compute, champion_compute, thresholds.compute_regression_factor)
    )
    gate = decide(
        thresholds,
        candidate,
        champion_evidence,
        baseline,
        simple_model=simple,
        compute_regressions=[r.text for r in regressions],
        warnings=feature_value.warnings_for(unimportant, thresholds.metric),
    )
    if champion_version == candidate_version:
        gate.decision, gate.reasons = "reject", [f"version {candidate_version} is already @champion"]

    # What the training DAG's `compute-regression` alert reads from the result (the figures are in the record too).
    compute_comparison: dict[str, Any] = {
        "factor": thresholds.compute_regression_factor,
        "mode": thresholds.compute_regression,
        "regressions": [r.model_dump() for r in regressions],
    }
    record: dict[str, Any] = {
        "usecase": usecase.name,
        "partition": partition,
        "registered_model": usecase.registered_model_name,
        "candidate_version": candidate_version,
        "champion_version": champion_version,
        "test_set": f"{features_uri}/{split_file(Split.TEST)}",
        "recent_window": recent_days,
        "thresholds": usecase.thresholds.gate.model_dump(),
        "evidence": {
            "candidate": candidate.__dict__,
            "champion": None if champion_evidence is None else champion_evidence.__dict__,
            "baseline": baseline,
            "simple_model": None if simple is None else simple.__dict__,
        },
        "feature_value": {
            "importance": importance,
            "predict_work_share": feature_value.predict_work_shares(usecase, candidate_model),
            "rows": min(feature_value.IMPORTANCE_ROWS, len(test)),
            "repeats": feature_value.IMPORTANCE_REPEATS,
            "unimportant": unimportant,
        },
        # Timings: they measure the machine as well as the model (the container test compares records without them).
        "compute": {
            "candidate": candidate_compute,
            "champion": champion_compute,
            **compute_comparison,
        },
        **gate.to_dict(),
        "airflow": ctx.airflow.tags(),
    }
    uri = ctx.uri(Dataset.EVALUATION, sub=f"v{candidate_version}")
    with ctx.storage.writer(uri, {"step": "evaluate", "decision": gate.decision}) as staging:
        (staging / DECISION_FILE).write_text(json.dumps(record, indent=2, default=str))

    parent_id = tracking.parent_run(usecase, ctx.airflow, partition)
    with mlflow.start_run(run_id=parent_id):
        mlflow.log_dict(record, f"gate/decision-v{candidate_version}.json")
        mlflow.set_tag(Tag.GATE_DECISION, gate.decision)
    candidate_run = tracking.version_tags(usecase, candidate_version).get(Tag.RUN_ID)
    if candidate_run:
        with mlflow.start_run(run_id=candidate_run):
            mlflow.log_text(model_card(usecase, record), "model_card.md")
            mlflow.log_dict(record, "gate/decision.json")
            mlflow.log_dict(record["feature_value"], feature_value.ARTIFACT)
            mlflow.log_metrics(candidate_run_metrics(record, simple, baseline))
    tracking.set_version_tags(
        usecase,
        candidate_version,
        {
            Tag.GATE_DECISION: gate.decision,
            Tag.GATE_REASONS: "; ".join(gate.reasons)[:4000],
            Tag.GATE_RECORD: uri,
        },
    )
    log.info("gate for version %s: %s (%s)", candidate_version, gate.decision, "; ".join(gate.reasons))
    return EvaluateResult.of(
        Step.EVALUATE,
        usecase.name,
        partition,
        # The run holding the model card and the decision record (the "MLflow run" link of the evaluate task).
        outputs={
            "decision": uri,
            "mlflow_run_id": candidate_run or parent_id,
            # With the experiment, the UI can address the run's artifacts (the model card) as well as the run.
            "mlflow_experiment_id": tracking.client().get_run(candidate_run or parent_id).info.experiment_id,
        },
        inputs={"features": features_uri, "model": tracking.model_uri(usecase, candidate_version)},
        metrics={
            "decision": gate.decision,
            "candidate_version": candidate_version,
            "champion_version": champion_version,
            "metric": gate.metric,
            "candidate": round(gate.candidate, 5),
            "champion": None if gate.champion is None else round(gate.champion, 5),
            "checks": gate.checks,
            "reasons": gate.reasons,
            # The rest of the decision record a reviewer reads in the training run's approval (small: one number
            # per slice value), so Airflow never reads the record from storage.
            "flags": gate.flags,
            "warnings": gate.warnings,
            "simple_model": None
            if simple is None
            else {"family": simple.family, gate.metric: round(simple.metrics[gate.metric], 5)},
            "recent_window": recent_days,
            "compute": compute_comparison,
            "slices": slice_comparison(
                candidate.slices, None if champion_evidence is None else champion_evidence.slices
            ),
        },
    )
