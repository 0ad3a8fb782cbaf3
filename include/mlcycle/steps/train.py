"""train: features/ds=D -> a fitted model, logged to MLflow and registered as `@challenger`."""

from __future__ import annotations

import argparse
import logging
import time
from importlib.metadata import version as installed_version
from typing import Any

import mlflow
import mlflow.data.pandas_dataset
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from mlcycle.config import UseCase
from mlcycle.registry import tracking
from mlcycle.steps.base import StepContext, StepResult
from mlcycle.steps.features import SPLITS
from mlcycle.training.metrics import classification_metrics, slice_metrics
from mlcycle.training.trainers import SKOPS_TRUSTED_TYPES, build_model

log = logging.getLogger(__name__)


def feature_frame(usecase: UseCase, table: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns, in the declared order (the model signature)."""
    return table[[c.name for c in usecase.features]]


def predict_score(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Positive-class probability from a pyfunc whose predict is predict_proba."""
    output = np.asarray(model.predict(frame))
    return output[:, 1] if output.ndim == 2 else output


def pip_requirements() -> list[str]:
    # Explicit: MLflow's inference scans the whole environment (torch, pytest, ...) and is slow.
    return [f"{dist}=={installed_version(dist)}" for dist in ("scikit-learn", "skops", "pandas", "numpy", "pyarrow")]


def main(ctx: StepContext, args: argparse.Namespace) -> StepResult:
    usecase, partition = ctx.usecase, ctx.partition.isoformat()
    features_uri = ctx.uri("features")
    manifest = ctx.storage.manifest(features_uri)
    if manifest is None:
        raise FileNotFoundError(f"no features at {features_uri}: run the features step first")
    with ctx.storage.local_copy(features_uri) as folder:
        splits = {s: pd.read_parquet(folder / f"{s}.parquet") for s in SPLITS}
    target = usecase.target.name
    threshold = usecase.model.decision_threshold

    parent_id = tracking.parent_run(usecase, ctx.airflow, partition)
    model = build_model(usecase)
    with (
        mlflow.start_run(run_id=parent_id),
        mlflow.start_run(
            run_name=f"{usecase.model.family}-{partition}",
            nested=True,
            tags={**tracking.run_tags(ctx.airflow, partition), tracking.ROLE_TAG: "candidate"},
        ) as run,
    ):
        for split, table in splits.items():
            dataset = mlflow.data.pandas_dataset.from_pandas(
                table, source=features_uri, name=f"{usecase.name}-{split}", targets=target
            )
            mlflow.log_input(dataset, context=split)
        mlflow.log_params(
            {
                "family": usecase.model.family,
                "seed": usecase.model.seed,
                "decision_threshold": threshold,
                "window": "..".join(manifest["window"]),
                **{f"rows_{s}": len(t) for s, t in splits.items()},
                **{f"model.{k}": v for k, v in usecase.model.params.items()},
            }
        )
        mlflow.set_tags({f"mlcycle.days.{s}": ",".join(manifest["days"][s]) for s in SPLITS})

        started = time.perf_counter()
        model.fit(feature_frame(usecase, splits["train"]), splits["train"][target])
        fit_seconds = time.perf_counter() - started

        metrics: dict[str, float] = {"fit_seconds": fit_seconds}
        for split, table in splits.items():
            score = model.predict_proba(feature_frame(usecase, table))[:, 1]
            for name, value in classification_metrics(table[target].to_numpy(), score, threshold).items():
                metrics[f"{split}_{name}"] = value
            if split == "test":
                metrics.update(
                    {f"test_{k}": v for k, v in slice_metrics(table, table[target], score, usecase.slices).items()}
                )
        mlflow.log_metrics(metrics)

        example = feature_frame(usecase, splits["train"]).head(5)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict_proba(example)),
            input_example=example,
            pip_requirements=pip_requirements(),
            pyfunc_predict_fn="predict_proba",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )
        candidate_run_id = run.info.run_id

    version = mlflow.register_model(info.model_uri, usecase.registered_model_name)
    tracking.set_version_tags(
        usecase,
        version.version,
        {
            **{k: v for k, v in tracking.run_tags(ctx.airflow, partition).items() if v},
            "mlcycle.features_uri": features_uri,
            "mlcycle.run_id": candidate_run_id,
            "mlcycle.parent_run_id": parent_id,
            **{f"mlcycle.data_digest.{s}": ",".join(manifest["input_digests"][s]) for s in SPLITS},
        },
    )
    tracking.client().set_registered_model_alias(usecase.registered_model_name, tracking.CHALLENGER, version.version)
    log.info("registered %s version %s as @challenger", usecase.registered_model_name, version.version)
    return StepResult(
        "train",
        usecase.name,
        partition,
        outputs={"model_uri": tracking.model_uri(usecase, version.version), "features": features_uri},
        metrics={
            "model_version": str(version.version),
            "run_id": candidate_run_id,
            "parent_run_id": parent_id,
            **{
                k: round(v, 5)
                for k, v in metrics.items()
                if k in ("valid_roc_auc", "test_roc_auc", "test_pr_auc", "test_log_loss")
            },
        },
    )
