"""train: features/ds=D -> a fitted model, logged to MLflow and registered as `@challenger`."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from importlib.metadata import version as installed_version
from typing import Any

import mlflow
import mlflow.data.pandas_dataset
import pandas as pd
from mlflow.models import infer_signature

from mlcycle.config import UseCase
from mlcycle.evaluation.evidence import feature_frame
from mlcycle.evaluation.plots import close, diagnostic_figures
from mlcycle.registry import tracking
from mlcycle.settings import home
from mlcycle.specs.catalog import TrainOptions
from mlcycle.specs.results import TrainResult
from mlcycle.steps.base import StepContext
from mlcycle.steps.features import SPLITS
from mlcycle.training.metrics import classification_metrics, slice_metrics
from mlcycle.training.trainers import SKOPS_TRUSTED_TYPES, build_model

log = logging.getLogger(__name__)

CACHE_TAG = "mlcycle.cache_key"
SUMMARY_METRICS = ("valid_roc_auc", "test_roc_auc", "test_pr_auc", "test_log_loss")


def pip_requirements() -> list[str]:
    # Explicit: MLflow's inference scans the whole environment (torch, pytest, ...) and is slow.
    return [f"{dist}=={installed_version(dist)}" for dist in ("scikit-learn", "skops", "pandas", "numpy", "pyarrow")]


def cache_key(usecase: UseCase, manifest: dict[str, Any]) -> str:
    """What makes a training run repeatable: data digests, model config and code version."""
    material = {
        "digests": manifest["input_digests"],
        "days": manifest["days"],
        "model": usecase.model.model_dump(),
        "features": [c.model_dump() for c in usecase.features],
        "code": tracking.code_version(),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def cached_version(usecase: UseCase, key: str) -> Any | None:
    """A registered version whose training run had the same cache key, if one exists."""
    matches = [v for v in tracking.all_versions(usecase) if v.tags.get(CACHE_TAG) == key]
    return matches[-1] if matches else None


def _result(
    ctx: StepContext, version: str, run_id: str, parent_id: str, metrics: dict[str, float], **extra: Any
) -> TrainResult:
    return TrainResult.of(
        "train",
        ctx.usecase.name,
        ctx.partition.isoformat(),
        outputs={"model_uri": tracking.model_uri(ctx.usecase, version), "features": ctx.uri("features")},
        metrics={
            "model_version": version,
            "run_id": run_id,
            "parent_run_id": parent_id,
            **{k: round(v, 5) for k, v in metrics.items() if k in SUMMARY_METRICS},
            **extra,
        },
    )


def fit_torch(ctx: StepContext, model: Any, splits: dict[str, pd.DataFrame]) -> None:
    """Fit the torch pipeline with per-epoch checkpoints (a retried task resumes) and log its curves."""
    from mlcycle.training.pyfunc import log_epoch_history
    from mlcycle.training.torch_mlp import fit_pipeline

    usecase, target = ctx.usecase, ctx.usecase.target.name
    # Local launcher: under MLCYCLE_HOME; in a pod this must be a volume that outlives the pod to resume.
    checkpoints = home() / "checkpoints" / usecase.name / ctx.partition.isoformat()
    model.set_params(model__checkpoint_dir=str(checkpoints))
    fit_pipeline(
        model,
        feature_frame(usecase, splits["train"]),
        splits["train"][target],
        feature_frame(usecase, splits["valid"]),
        splits["valid"][target],
    )
    network = model[-1]
    log_epoch_history(network.history_)
    mlflow.log_params(
        {
            "torch.device": str(network.device_),
            "torch.best_epoch": network.best_epoch_,
            "torch.epochs_run": network.n_epochs_,
        }
    )
    mlflow.set_tag("mlcycle.resumed_from_epoch", str(network.resumed_from_epoch_))


def main(ctx: StepContext, options: TrainOptions) -> TrainResult:
    usecase, partition = ctx.usecase, ctx.partition.isoformat()
    features_uri = ctx.uri("features")
    manifest = ctx.storage.manifest(features_uri)
    if manifest is None:
        raise FileNotFoundError(f"no features at {features_uri}: run the features step first")
    target = usecase.target.name
    threshold = usecase.model.decision_threshold
    parent_id = tracking.parent_run(usecase, ctx.airflow, partition)

    key = cache_key(usecase, manifest)
    hit = None if options.cache == "off" else cached_version(usecase, key)
    if hit is not None:
        run_id = hit.tags.get("mlcycle.run_id", "")
        cached_metrics = tracking.client().get_run(run_id).data.metrics if run_id else {}
        with mlflow.start_run(run_id=parent_id):
            mlflow.set_tags({"mlcycle.cache_hit": "true", "mlcycle.cache_version": str(hit.version)})
        log.info("cache hit: version %s was trained on the same data, config and code", hit.version)
        return _result(ctx, str(hit.version), run_id, parent_id, cached_metrics, cache_hit=True)

    with ctx.storage.local_copy(features_uri) as folder:
        splits = {s: pd.read_parquet(folder / f"{s}.parquet") for s in SPLITS}
    model = build_model(usecase)
    is_torch = usecase.model.family == "torch_mlp"
    with (
        mlflow.start_run(run_id=parent_id),
        mlflow.start_run(
            run_name=f"{usecase.model.family}-{partition}",
            nested=True,
            tags={**tracking.run_tags(ctx.airflow, partition), tracking.ROLE_TAG: "candidate", CACHE_TAG: key},
        ) as run,
    ):
        for split, table in splits.items():
            dataset = mlflow.data.pandas_dataset.from_pandas(
                table, source=f"{features_uri}/{split}.parquet", name=f"{usecase.name}-{split}", targets=target
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
        if is_torch:
            fit_torch(ctx, model, splits)
        else:
            model.fit(feature_frame(usecase, splits["train"]), splits["train"][target])
        fit_seconds = time.perf_counter() - started

        metrics: dict[str, float] = {"fit_seconds": fit_seconds}
        for split, table in splits.items():
            score = model.predict_proba(feature_frame(usecase, table))[:, 1]
            for name, value in classification_metrics(table[target].to_numpy(), score, threshold).items():
                metrics[f"{split}_{name}"] = value
            if split == "test":
                slices = slice_metrics(table, table[target], score, usecase.slices)
                metrics.update({f"test_{k}": v for k, v in slices.items()})
                figures = diagnostic_figures(table[target].to_numpy(), score, threshold, slices)
                for path, figure in figures.items():
                    mlflow.log_figure(figure, path)
                close(figures)
        mlflow.log_metrics(metrics)

        example = feature_frame(usecase, splits["train"]).head(5)
        signature = infer_signature(example, model.predict_proba(example))
        if is_torch:
            from mlcycle.training.pyfunc import log_torch_pipeline

            info = log_torch_pipeline(
                model,
                name="model",
                signature=signature,
                input_example=example,
                pip_requirements=[*pip_requirements(), f"torch=={installed_version('torch').split('+')[0]}"],
                skops_trusted_types=SKOPS_TRUSTED_TYPES,
            )
        else:
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=signature,
                input_example=example,
                pip_requirements=pip_requirements(),
                pyfunc_predict_fn="predict_proba",
                skops_trusted_types=SKOPS_TRUSTED_TYPES,
            )
        candidate_run_id = run.info.run_id

    # The version is created with its tags in one call: were MLflow to fail between two calls, a version without
    # them would stay behind, invisible to the training cache, and the retry would register a duplicate.
    tags = {
        **{k: v for k, v in tracking.run_tags(ctx.airflow, partition).items() if v},
        "mlcycle.features_uri": features_uri,
        "mlcycle.run_id": candidate_run_id,
        "mlcycle.parent_run_id": parent_id,
        CACHE_TAG: key,
        **{f"mlcycle.data_digest.{s}": ",".join(manifest["input_digests"][s]) for s in SPLITS},
    }
    version = mlflow.register_model(info.model_uri, usecase.registered_model_name, tags=tags)
    tracking.client().set_registered_model_alias(usecase.registered_model_name, tracking.CHALLENGER, version.version)
    log.info("registered %s version %s as @challenger", usecase.registered_model_name, version.version)
    return _result(ctx, str(version.version), candidate_run_id, parent_id, metrics, cache_hit=False)
