"""evaluate: candidate vs current @champion on the same frozen test split -> a decision record."""

from __future__ import annotations

import argparse
import json
import logging

import mlflow
import pandas as pd

from mlcycle.evaluation.gate import decide
from mlcycle.registry import tracking
from mlcycle.steps.base import StepContext, StepResult
from mlcycle.steps.train import feature_frame, predict_score
from mlcycle.training.metrics import classification_metrics

log = logging.getLogger(__name__)


def main(ctx: StepContext, args: argparse.Namespace) -> StepResult:
    usecase, partition = ctx.usecase, ctx.partition.isoformat()
    candidate_version = str(args.model_version)
    features_uri = ctx.uri("features")
    with ctx.storage.local_copy(features_uri) as folder:
        test = pd.read_parquet(folder / "test.parquet")
    inputs, labels = feature_frame(usecase, test), test[usecase.target.name].to_numpy()
    threshold = usecase.model.decision_threshold

    # Pin the champion seen now: promotion later is a compare-and-set against exactly this version.
    champion = tracking.alias_version(usecase, tracking.CHAMPION)
    scores = {
        "candidate": predict_score(mlflow.pyfunc.load_model(tracking.model_uri(usecase, candidate_version)), inputs)
    }
    if champion is not None:
        scores["champion"] = predict_score(
            mlflow.pyfunc.load_model(tracking.model_uri(usecase, champion.version)), inputs
        )
    metrics = {role: classification_metrics(labels, s, threshold) for role, s in scores.items()}
    gate = decide(usecase.thresholds.gate, metrics["candidate"], metrics.get("champion"))

    record = {
        "usecase": usecase.name,
        "partition": partition,
        "registered_model": usecase.registered_model_name,
        "candidate_version": candidate_version,
        "champion_version": str(champion.version) if champion else None,
        "test_set": features_uri + "/test.parquet",
        "metrics": metrics,
        **gate.to_dict(),
        "airflow": ctx.airflow.tags(),
    }
    uri = ctx.uri("evaluation", sub=f"v{candidate_version}")
    with ctx.storage.writer(uri, {"step": "evaluate", "decision": gate.decision}) as staging:
        (staging / "decision.json").write_text(json.dumps(record, indent=2, default=str))

    parent_id = tracking.parent_run(usecase, ctx.airflow, partition)
    with mlflow.start_run(run_id=parent_id):
        mlflow.log_dict(record, f"gate/decision-v{candidate_version}.json")
        mlflow.set_tag("mlcycle.gate.decision", gate.decision)
    tracking.set_version_tags(
        usecase,
        candidate_version,
        {
            "mlcycle.gate.decision": gate.decision,
            "mlcycle.gate.reasons": "; ".join(gate.reasons),
            "mlcycle.gate.record": uri,
        },
    )
    log.info("gate for version %s: %s (%s)", candidate_version, gate.decision, "; ".join(gate.reasons))
    return StepResult(
        "evaluate",
        usecase.name,
        partition,
        outputs={"decision": uri},
        metrics={
            "decision": gate.decision,
            "candidate_version": candidate_version,
            "champion_version": record["champion_version"],
            "metric": gate.metric,
            "candidate": round(gate.candidate, 5),
            "champion": None if gate.champion is None else round(gate.champion, 5),
            "reasons": gate.reasons,
        },
    )
