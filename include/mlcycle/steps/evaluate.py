"""evaluate: candidate vs current @champion on the same frozen test set -> a decision record."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import mlflow
import pandas as pd

from mlcycle.evaluation.card import model_card
from mlcycle.evaluation.evidence import baseline_metrics, measure
from mlcycle.evaluation.gate import decide
from mlcycle.registry import tracking
from mlcycle.specs.catalog import EvaluateOptions
from mlcycle.specs.names import ModelRole, Step
from mlcycle.specs.results import EvaluateResult
from mlcycle.steps.base import StepContext
from mlcycle.steps.models import load_model
from mlcycle.storage.layout import DATA_FILE, DECISION_FILE, Dataset, Split, split_file
from mlcycle.tags import Tag

log = logging.getLogger(__name__)


def recent_window(ctx: StepContext) -> tuple[pd.DataFrame | None, list[str]]:
    """The latest labelled days before the partition (label delay respected), as one frame."""
    usecase = ctx.usecase
    last = ctx.partition - dt.timedelta(days=usecase.target.label_delay_days)
    days = [last - dt.timedelta(days=i) for i in range(usecase.thresholds.gate.recent_days)]
    frames, used = [], []
    for day in sorted(days):
        uri = ctx.uri(Dataset.VALIDATED, day)
        if ctx.storage.exists(uri):
            with ctx.storage.local_copy(uri) as folder:
                frames.append(pd.read_parquet(folder / DATA_FILE))
            used.append(day.isoformat())
    return (pd.concat(frames, ignore_index=True) if frames else None), used


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


def main(ctx: StepContext, options: EvaluateOptions) -> EvaluateResult:
    usecase, partition = ctx.usecase, ctx.partition.isoformat()
    candidate_version = str(options.model_version)
    features_uri = ctx.uri(Dataset.FEATURES)
    with ctx.storage.local_copy(features_uri) as folder:
        test = pd.read_parquet(folder / split_file(Split.TEST))
        train = pd.read_parquet(folder / split_file(Split.TRAIN), columns=[usecase.target.name])
    recent, recent_days = recent_window(ctx)

    # Pin the champion seen now: promotion later is a compare-and-set against exactly this version.
    champion = tracking.alias_version(usecase, ModelRole.CHAMPION)
    champion_version = str(champion.version) if champion else None
    candidate_model = load_model(usecase, candidate_version)
    candidate, _ = measure(usecase, candidate_model, test, recent, with_latency=True)
    champion_evidence = None
    if champion_version is not None and champion_version != candidate_version:
        champion_model = load_model(usecase, champion_version)
        champion_evidence, _ = measure(usecase, champion_model, test, recent, with_latency=False)
    baseline = baseline_metrics(usecase, train, test)
    gate = decide(usecase.thresholds.gate, candidate, champion_evidence, baseline)
    if champion_version == candidate_version:
        gate.decision, gate.reasons = "reject", [f"version {candidate_version} is already @champion"]

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
            "recent_window": recent_days,
            "slices": slice_comparison(
                candidate.slices, None if champion_evidence is None else champion_evidence.slices
            ),
        },
    )
