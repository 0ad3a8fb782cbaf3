"""train: features/ds=D -> a fitted model, logged to MLflow and registered as `@challenger`.

load splits -> fit and measure (pure: :func:`mlcycle.training.fit.fit_and_measure`) -> log to MLflow ->
register -> the diagnostic figures (after registration: nothing before it needs them). A version trained on the same data digests, config and code is reused instead (the cache).
With `model.search` set, the tune step's best parameters (tuning/ds=D) override `model.params`: they are
in the cache key (through the model config it hashes) and the run and version carry `mlcycle.tuned_from`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo

from mlcycle.config import UseCase
from mlcycle.evaluation import compute
from mlcycle.evaluation.plots import close, diagnostic_figures
from mlcycle.monitoring import reference_scores
from mlcycle.registry import integrity, tracking
from mlcycle.settings import home
from mlcycle.specs.catalog import TrainOptions
from mlcycle.specs.names import ModelRole, Step
from mlcycle.specs.results import TrainResult
from mlcycle.steps.base import StepContext
from mlcycle.steps.tune import tuned_params
from mlcycle.storage.layout import SPLITS, Dataset, Split, split_file
from mlcycle.tags import Tag
from mlcycle.training.datasets import split_dataset
from mlcycle.training.fit import FittedCandidate, fit_and_measure
from mlcycle.training.model_io import feature_frame
from mlcycle.training.sampling import TrainSample, read_sample
from mlcycle.training.search import with_params
from mlcycle.training.trainers import SKOPS_TRUSTED_TYPES, build_model

log = logging.getLogger(__name__)

CACHE_TAG = Tag.CACHE_KEY
SUMMARY_METRICS = ("valid_roc_auc", "test_roc_auc", "test_pr_auc", "test_log_loss")


def pip_requirements() -> list[str]:
    # Explicit: MLflow's inference scans the whole environment (torch, pytest, ...) and is slow.
    return [f"{dist}=={installed_version(dist)}" for dist in ("scikit-learn", "skops", "pandas", "numpy", "pyarrow")]


def cache_key(usecase: UseCase, manifest: dict[str, Any]) -> str:
    """What makes a training run repeatable: data digests, model config (tuned parameters included) and code."""
    material = {
        "digests": manifest["input_digests"],
        "days": manifest["days"],
        "model": usecase.model.model_dump(),
        "features": [c.model_dump() for c in usecase.features],
        "code": tracking.code_version(),
    }
    if usecase.split.max_train_rows is not None:  # only then: the keys of unsampled use cases stay as they were
        material["max_train_rows"] = usecase.split.max_train_rows
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def cached_version(usecase: UseCase, key: str) -> Any | None:
    """A registered version whose training run had the same cache key, if one exists.

    Only versions whose artifact digests were recorded count: the steps refuse to load any other.
    """
    matches = [
        v for v in tracking.all_versions(usecase) if v.tags.get(CACHE_TAG) == key and v.tags.get(integrity.DIGESTS_TAG)
    ]
    return matches[-1] if matches else None


def _result(
    ctx: StepContext, version: str, run_id: str, parent_id: str, metrics: dict[str, float], **extra: Any
) -> TrainResult:
    return TrainResult.of(
        Step.TRAIN,
        ctx.usecase.name,
        ctx.partition.isoformat(),
        outputs={"model_uri": tracking.model_uri(ctx.usecase, version), "features": ctx.uri(Dataset.FEATURES)},
        inputs={"features": ctx.uri(Dataset.FEATURES)},
        metrics={
            "model_version": version,
            "run_id": run_id,
            "parent_run_id": parent_id,
            **{k: round(v, 5) for k, v in metrics.items() if k in SUMMARY_METRICS},
            **extra,
        },
    )


def main(ctx: StepContext, options: TrainOptions) -> TrainResult:
    """Load the splits, fit and measure a candidate, log it to MLflow and register it as ``@challenger``;
    or, when an identical earlier run exists (same data, config and code), reuse its version."""
    usecase, partition = ctx.usecase, ctx.partition.isoformat()
    features_uri = ctx.uri(Dataset.FEATURES)
    manifest = ctx.storage.manifest(features_uri)
    if manifest is None:
        raise FileNotFoundError(f"no features at {features_uri}: run the features step first")
    parent_id = tracking.parent_run(usecase, ctx.airflow, partition)
    tuned_from = ""
    if usecase.model.search is not None:
        tuning = tuned_params(ctx)
        usecase, tuned_from = with_params(usecase, tuning.params), tuning.search_run_id

    key = cache_key(usecase, manifest)
    hit = None if options.cache == "off" else cached_version(usecase, key)
    if hit is not None:
        return reuse_cached(ctx, hit, parent_id)

    splits, sample = load_splits(ctx, features_uri)
    model = build_model(usecase)
    with (
        mlflow.start_run(run_id=parent_id),
        mlflow.start_run(
            run_name=f"{usecase.model.family}-{partition}",
            nested=True,
            tags={
                **tracking.run_tags(ctx.airflow, partition),
                tracking.ROLE_TAG: "candidate",
                CACHE_TAG: key,
                **({Tag.TUNED_FROM: tuned_from} if tuned_from else {}),
            },
        ) as run,
    ):
        log_inputs(usecase, features_uri, manifest, splits, sample)
        fitted = fit_and_measure(
            usecase,
            model,
            splits,
            train_metric_rows=reference_scores.train_sample_rows(usecase.thresholds.drift.sample_rows),
            checkpoint_dir=checkpoint_dir(ctx),
        )
        log_measurements(usecase, fitted)
        references = log_reference_scores(usecase, fitted)
        info = log_model(usecase, fitted.model, splits["train"])
        # The step's peak so far, its fit and the model's logging included (evaluate compares it with the champion's).
        mlflow.log_metric(compute.PEAK_MEMORY_MB, compute.peak_memory_mb())
        candidate_run_id = run.info.run_id

    version = register(
        ctx,
        info.model_uri,
        manifest,
        key,
        candidate_run_id,
        parent_id,
        tuned_from=tuned_from,
        extra_tags={Tag.REFERENCE_SCORES: references},
    )
    with mlflow.start_run(run_id=candidate_run_id):
        log_figures(usecase, fitted)
    return _result(ctx, version, candidate_run_id, parent_id, fitted.metrics, cache_hit=False)


def reuse_cached(ctx: StepContext, hit: Any, parent_id: str) -> TrainResult:
    """The result of the cached version ``hit``, recorded on the parent run as a cache hit."""
    run_id = hit.tags.get(Tag.RUN_ID, "")
    cached_metrics = tracking.client().get_run(run_id).data.metrics if run_id else {}
    with mlflow.start_run(run_id=parent_id):
        mlflow.set_tags({Tag.CACHE_HIT: "true", Tag.CACHE_VERSION: str(hit.version)})
    log.info("cache hit: version %s was trained on the same data, config and code", hit.version)
    return _result(ctx, str(hit.version), run_id, parent_id, cached_metrics, cache_hit=True)


# The rows of the valid and test splits this step reads and scores at most (a seeded sample past it): 8M rows at
# 2M sessions a day were five times the fit's CPU, for metrics whose sampling error at 500,000 rows is ~0.001.
METRIC_SPLIT_MAX_ROWS = 500_000


def load_splits(ctx: StepContext, features_uri: str) -> tuple[dict[str, pd.DataFrame], TrainSample]:
    """The train / valid / test frames of the features partition (`read_splits`)."""
    with ctx.storage.local_copy(features_uri) as folder:
        return read_splits(ctx.usecase, folder)


def read_splits(usecase: UseCase, folder: Path) -> tuple[dict[str, pd.DataFrame], TrainSample]:
    """The splits in ``folder``, each a seeded sample drawn before its rows become a DataFrame (`read_sample`):
    the train split cut to `split.max_train_rows`, valid and test to `METRIC_SPLIT_MAX_ROWS` (this step scores
    them only for its run's metrics, figures and stored reference scores; `evaluate` scores the whole frozen test
    set for the gate, and the torch trainer early-stops on the valid sample)."""
    splits: dict[str, pd.DataFrame] = {}
    seed = usecase.model.seed
    for name in SPLITS:
        bound = usecase.split.max_train_rows if name == Split.TRAIN else METRIC_SPLIT_MAX_ROWS
        splits[name], read = read_sample(folder / split_file(name), bound, seed)
        if name == Split.TRAIN:
            sample = read
        elif read.sampled:
            log.info("scoring %d of the %s split's %d rows for the run's metrics", read.rows, name, read.window_rows)
    if sample.sampled:
        log.info("training on %d of the window's %d train rows (seed %d)", sample.rows, sample.window_rows, sample.seed)
    return splits, sample


def checkpoint_dir(ctx: StepContext) -> Path:
    """Where a torch fit checkpoints its epochs, so that a retried task resumes.

    Local launcher: under MLCYCLE_HOME; in a pod this must be a volume that outlives the pod to resume.
    """
    return home() / "checkpoints" / ctx.usecase.name / ctx.partition.isoformat()


def log_inputs(
    usecase: UseCase,
    features_uri: str,
    manifest: dict[str, Any],
    splits: dict[str, pd.DataFrame],
    sample: TrainSample,
) -> None:
    """The candidate run's datasets (source URI + digest), params (the train sample's bound and seed included)
    and training days."""
    for split, table in splits.items():
        dataset = split_dataset(
            table,
            source=f"{features_uri}/{split_file(split)}",
            name=f"{usecase.name}-{split}",
            targets=usecase.target.name,
        )
        mlflow.log_input(dataset, context=split)
    mlflow.log_params(
        {
            "family": usecase.model.family,
            "seed": usecase.model.seed,
            "decision_threshold": usecase.model.decision_threshold,
            "window": "..".join(manifest["window"]),
            **{f"rows_{s}": len(t) for s, t in splits.items()},
            **{f"model.{k}": v for k, v in usecase.model.params.items()},
            **sample.params(),
        }
    )
    mlflow.set_tags({Tag.days(s): ",".join(manifest["days"][s]) for s in SPLITS})


def log_measurements(usecase: UseCase, fitted: FittedCandidate) -> None:
    """The torch trainer's curves and facts and the metrics (the train split's on a sample: its seed is the
    `train_metrics_seed` param, its size the `train_sample_rows` metric), in the active run."""
    if fitted.torch is not None:
        from mlcycle.training.pyfunc import log_epoch_history

        log_epoch_history(fitted.torch.history)
        mlflow.log_params(
            {
                "torch.device": fitted.torch.device,
                "torch.best_epoch": fitted.torch.best_epoch,
                "torch.epochs_run": fitted.torch.epochs_run,
            }
        )
        mlflow.set_tag(Tag.RESUMED_FROM_EPOCH, str(fitted.torch.resumed_from_epoch))
    mlflow.log_param("train_metrics_seed", usecase.model.seed)
    mlflow.log_metrics(fitted.metrics)


def log_reference_scores(usecase: UseCase, fitted: FittedCandidate) -> str:
    """Log the monitor's reference scores (mlcycle.monitoring.reference_scores) in the active run; the version tag
    that records their digests."""
    references = reference_scores.build(
        fitted.train_sample_scores, fitted.test_labels, fitted.test_scores, usecase.thresholds.drift.sample_rows
    )
    with tempfile.TemporaryDirectory(prefix="mlcycle-reference-") as scratch:
        folder = reference_scores.save(references, Path(scratch))
        mlflow.log_artifacts(str(folder), artifact_path=reference_scores.ARTIFACT_PATH)
        return reference_scores.record(folder)


def log_figures(usecase: UseCase, fitted: FittedCandidate) -> None:
    """The diagnostic figures of the test split, in the active run (matplotlib: seconds to import and draw)."""
    figures = diagnostic_figures(
        fitted.test_labels, fitted.test_scores, usecase.model.decision_threshold, fitted.slices
    )
    for path, figure in figures.items():
        mlflow.log_figure(figure, path)
    close(figures)


def log_model(usecase: UseCase, model: Any, train: pd.DataFrame) -> ModelInfo:
    """Log the fitted pipeline as the run's ``model`` (a torch pyfunc, or an sklearn model)."""
    example = feature_frame(usecase, train).head(5)
    signature = infer_signature(example, model.predict_proba(example))
    if usecase.model.family == "torch_mlp":
        from mlcycle.training.pyfunc import log_torch_pipeline

        return log_torch_pipeline(
            model,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=[*pip_requirements(), f"torch=={installed_version('torch').split('+')[0]}"],
        )
    info: ModelInfo = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        input_example=example,
        pip_requirements=pip_requirements(),
        pyfunc_predict_fn="predict_proba",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
    )
    return info


def register(
    ctx: StepContext,
    model_uri: str,
    manifest: dict[str, Any],
    key: str,
    run_id: str,
    parent_id: str,
    *,
    tuned_from: str = "",
    extra_tags: dict[str, str] | None = None,
) -> str:
    """Register the logged model with its lineage tags and point ``@challenger`` at it; returns the version.

    ``tuned_from``: the search run its parameters came from (tagged ``mlcycle.tuned_from``), "" when untuned.
    ``extra_tags``: more version tags, set in the same call (the reference scores' record).

    The tags include the sha256 of every logged file, read back from the artifact store: every step verifies them
    before it loads the version (`mlcycle.registry.integrity`). Only this step needs to write model artifacts.
    """
    usecase, partition = ctx.usecase, ctx.partition.isoformat()
    # The version is created with its tags in one call: were MLflow to fail between two calls, a version without
    # them would stay behind, invisible to the training cache, and the retry would register a duplicate.
    tags = {
        integrity.DIGESTS_TAG: integrity.record_logged_model(model_uri),
        **{k: v for k, v in tracking.run_tags(ctx.airflow, partition).items() if v},
        Tag.FEATURES_URI: ctx.uri(Dataset.FEATURES),
        Tag.RUN_ID: run_id,
        Tag.PARENT_RUN_ID: parent_id,
        CACHE_TAG: key,
        **{Tag.data_digest(s): ",".join(manifest["input_digests"][s]) for s in SPLITS},
        # The days each split holds, aligned with the digests above: the partitions `mlcycle lineage` follows.
        **{Tag.days(s): ",".join(manifest["days"][s]) for s in SPLITS},
        **({Tag.TUNED_FROM: tuned_from} if tuned_from else {}),
        **(extra_tags or {}),
    }
    version = mlflow.register_model(model_uri, usecase.registered_model_name, tags=tags)
    tracking.client().set_registered_model_alias(usecase.registered_model_name, ModelRole.CHALLENGER, version.version)
    log.info("registered %s version %s as @challenger", usecase.registered_model_name, version.version)
    return str(version.version)
