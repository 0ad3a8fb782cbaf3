"""score: validated/ds=D -> predictions/ds=D/role=champion (served) and role=challenger (shadow, never served).

Both versions are resolved from their aliases once, when the step starts, and every chunk of the
partition is scored by those versions: a promotion in the middle of a run cannot mix two models in one
partition. The challenger shadow-scores the same rows into its own folder; its failure is logged and
reported, and never fails or delays the champion's predictions.

Each version is fed the columns of its own logged signature, in its order, not the use case's feature list of
today: a champion trained before a feature was added (or removed) scores as it was trained. One that needs a column
the data lacks is REJECTED before a row is scored. No NaN or infinite score is committed: the champion's make the
step REJECTED (the count and the version named, nothing committed); a shadow's predictions are dropped.

Models are loaded verified (`mlcycle.steps.models`): a champion whose artifacts fail verification stops the step
(REJECTED) before anything is written; a refused challenger never runs, the champion's predictions are still
committed, and then the step exits REJECTED so the failure alert reaches a person.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mlcycle.config import UseCase
from mlcycle.registry import tracking
from mlcycle.specs.names import ModelRole, Step
from mlcycle.specs.options import Options
from mlcycle.specs.results import ScoreResult
from mlcycle.steps.base import NothingToDo, Rejected, StepContext
from mlcycle.steps.models import load_model
from mlcycle.storage.layout import DATA_FILE, SUCCESS, Dataset, role_sub
from mlcycle.training.model_io import MissingModelInput, model_input, predict_score, signature_columns

log = logging.getLogger(__name__)

# Rows per chunk: memory stays flat however large a day grows (see dev/mlcycle_dev/benchmarks/score.py).
CHUNK_ROWS = 50_000


@dataclass
class Scorer:
    """One model version writing one role's predictions."""

    role: ModelRole
    version: str
    model: Any
    staging: Path | None = None
    rows: int = 0
    positives: int = 0
    error: str = ""
    # Its artifacts failed verification: it never ran, and the step ends REJECTED once the champion is committed.
    rejected: bool = False
    # Scores that are NaN or infinite: such a role is never committed (see `refuse_non_finite`).
    non_finite: int = 0

    def describe(self, usecase: UseCase) -> str:
        return f"{usecase.registered_model_name} v{self.version} ({self.role})"


def predictions(usecase: UseCase, chunk: pd.DataFrame, scorer: Scorer, partition: str) -> pd.DataFrame:
    """The prediction rows of one chunk: ids, model identity, score, decision and a deterministic timestamp.

    The model gets the columns of its own logged signature, in its order: a champion trained before `usecase.yaml`
    gained or lost a feature scores with the features it was trained on.
    """
    score = predict_score(scorer.model, model_input(scorer.model, chunk, scorer.describe(usecase)))
    return pd.DataFrame(
        {
            "prediction_id": chunk[usecase.key].astype(str) + f":{usecase.registered_model_name}:{scorer.version}",
            usecase.key: chunk[usecase.key],
            "event_ts": chunk[usecase.timestamp],
            "model_name": usecase.registered_model_name,
            "model_version": scorer.version,
            "model_role": scorer.role.value,  # a plain string column, not enum objects
            "score": score,
            "decision": (score >= usecase.model.decision_threshold).astype("int8"),
            # The partition's end, not now(): re-scoring a day yields byte-identical files.
            "scored_for": pd.Timestamp(partition, tz="UTC") + pd.Timedelta(days=1),
        }
    )


def chunks(path: Path, rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The partition's rows, `rows` at a time (parquet row batches: never the whole day in memory)."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
        yield batch.to_pandas()


def _scorers(usecase: UseCase) -> list[Scorer]:
    champion = tracking.alias_version(usecase, ModelRole.CHAMPION)
    if champion is None:
        raise NothingToDo(f"{usecase.registered_model_name} has no @champion yet: nothing can score")
    resolved = [(ModelRole.CHAMPION, str(champion.version))]
    challenger = tracking.alias_version(usecase, ModelRole.CHALLENGER)
    # No @challenger is the rule after a promotion (the new champion drops it); one on the champion itself (a
    # registry promoted before that rule) would only score the champion twice.
    if challenger is not None and str(challenger.version) != str(champion.version):
        resolved.append((ModelRole.CHALLENGER, str(challenger.version)))
    else:
        log.info("no shadow scoring: no @challenger other than @champion v%s", champion.version)
    scorers = []
    for role, version in resolved:
        try:
            model = load_model(usecase, version)
        except Rejected as exc:
            if role == ModelRole.CHAMPION:
                raise
            log.error("shadow challenger v%s refused, it is not scored: %s", version, exc.reason)
            scorers.append(Scorer(role, version, None, error=exc.reason, rejected=True))
            continue
        except Exception as exc:
            if role == ModelRole.CHAMPION:
                raise
            log.warning("shadow challenger v%s cannot be loaded, shadow scoring skipped: %s", version, exc)
            continue
        scorers.append(Scorer(role, version, model))
    return scorers


def _score_chunk(
    usecase: UseCase, chunk: pd.DataFrame, scorer: Scorer, partition: str, index: int, *, is_champion: bool
) -> None:
    try:
        out = predictions(usecase, chunk, scorer, partition)
    except Exception as exc:
        if is_champion:
            raise
        scorer.error = f"{type(exc).__name__}: {exc}"
        log.warning("shadow challenger v%s failed; its predictions are dropped: %s", scorer.version, exc)
        return
    assert scorer.staging is not None
    scorer.non_finite += int((~np.isfinite(out["score"].to_numpy(dtype="float64"))).sum())
    out.to_parquet(scorer.staging / f"part-{index:05d}.parquet", index=False)
    scorer.rows += len(out)
    scorer.positives += int(out["decision"].sum())


def check_inputs(usecase: UseCase, path: Path, scorers: list[Scorer]) -> None:
    """Every scorer's signature columns are in the data, before a row is scored: a champion that needs a column
    the data lacks is REJECTED (retrying cannot add the column); such a shadow is not scored."""
    present = set(pq.ParquetFile(path).schema_arrow.names)
    for scorer in scorers:
        if scorer.error:
            continue
        try:
            needed = signature_columns(scorer.model, scorer.describe(usecase))
            missing = [c for c in needed if c not in present]
            if missing:
                raise MissingModelInput(
                    f"{scorer.describe(usecase)} needs column(s) {missing} (its logged signature), "
                    f"which {path.parent.name}/{path.name} lacks"
                )
        except MissingModelInput as exc:
            if scorer is scorers[0]:
                raise Rejected(f"{exc}; nothing was scored", model_version=scorer.version) from None
            scorer.error = str(exc)
            log.warning("shadow challenger v%s is not scored: %s", scorer.version, exc)


def refuse_non_finite(usecase: UseCase, scorers: list[Scorer], source: str) -> None:
    """No NaN or infinite score is ever committed: the champion's are REJECTED (nothing is committed); a shadow's
    predictions are dropped and reported, like any failure of the shadow."""
    for scorer in scorers:
        if not scorer.non_finite or scorer.error:
            continue
        message = (
            f"{scorer.describe(usecase)} returned {scorer.non_finite} non-finite score(s) (NaN or infinite) "
            f"of {scorer.rows} rows of {source}"
        )
        if scorer is scorers[0]:
            raise Rejected(f"{message}; nothing was committed", model_version=scorer.version)
        scorer.error = message
        log.warning("shadow challenger v%s: %s; its predictions are dropped", scorer.version, message)


def score_partition(
    usecase: UseCase, path: Path, scorers: list[Scorer], partition: str, chunk_rows: int = CHUNK_ROWS
) -> int:
    """Stream `path` through every scorer, one parquet part per chunk into each scorer's staging; the parts count.

    The first scorer is the champion: its failure is raised; a shadow's failure only stops that shadow.
    """
    parts = 0
    for index, chunk in enumerate(chunks(path, chunk_rows)):
        for scorer in scorers:
            if not scorer.error:
                _score_chunk(usecase, chunk, scorer, partition, index, is_champion=scorer is scorers[0])
        parts += 1
    return parts


def main(ctx: StepContext, options: Options) -> ScoreResult:
    usecase, partition = ctx.usecase, ctx.partition.isoformat()
    scorers = _scorers(usecase)
    source = ctx.uri(Dataset.VALIDATED)
    targets = {s.role: ctx.uri(Dataset.PREDICTIONS, sub=role_sub(s.role)) for s in scorers}
    champion = scorers[0]
    # The scratch is on the storage root's volume when it is local: Spark's executors write the parts there.
    with ctx.storage.local_copy(source) as folder, ctx.storage.scratch("score-") as scratch:
        scored = json.loads((folder / SUCCESS).read_text())  # the manifest of the very version scored
        for scorer in scorers:
            scorer.staging = scratch / scorer.role
            scorer.staging.mkdir()
        check_inputs(usecase, folder / DATA_FILE, scorers)
        if usecase.engine == "spark":  # each version as MLflow's spark_udf (mlcycle.spark.score)
            from mlcycle.spark.score import score_partition_spark

            # On S3 the executors read the version's object themselves (s3a://: mlcycle.spark.s3).
            data = folder / DATA_FILE if ctx.storage.is_local else ctx.storage.file_uri(source, DATA_FILE)
            score_partition_spark(usecase, data, scorers, partition, shared_scratch=ctx.storage.is_local)
        else:
            score_partition(usecase, folder / DATA_FILE, scorers, partition)
        refuse_non_finite(usecase, scorers, source)
        # Commit each role on its own; a shadow that failed part-way is not committed at all.
        for scorer in scorers:
            if scorer.error:
                continue
            manifest = {
                "step": "score",
                "engine": usecase.engine,
                "model_version": scorer.version,
                "model_role": scorer.role,
                "source": source,
                # Which exact validated data was scored, and from which delivery: `mlcycle lineage` follows these.
                "source_digest": scored.get("files", {}).get(DATA_FILE, {}).get("sha256"),
                "source_raw_digest": scored.get("raw_digest"),
                "source_profile": scored.get("profile"),
                "airflow": ctx.produced_by(),
            }
            with ctx.storage.writer(targets[scorer.role], manifest) as staging:
                assert scorer.staging is not None
                for part in sorted(scorer.staging.iterdir()):
                    shutil.move(part, staging / part.name)
    metrics: dict[str, Any] = {
        "rows": champion.rows,
        "positive_decisions": champion.positives,
        "model_version": champion.version,
        "engine": usecase.engine,
    }
    for scorer in scorers[1:]:
        metrics["challenger_version"] = scorer.version
        metrics["challenger_rows"] = scorer.rows
        metrics["challenger_positive_decisions"] = scorer.positives
        if scorer.error:
            metrics["challenger_error"] = scorer.error
    log.info(
        "scored %d rows of %s with %s", champion.rows, source, ", ".join(f"{s.role} v{s.version}" for s in scorers)
    )
    outputs = {
        "predictions" if s.role == ModelRole.CHAMPION else f"predictions_{s.role}": targets[s.role]
        for s in scorers
        if not s.error
    }
    if refused := [s for s in scorers if s.rejected]:
        reason = f"champion v{champion.version} predictions committed, but shadow {refused[0].role}: {refused[0].error}"
        raise Rejected(reason, outputs=outputs, metrics=metrics)
    inputs = {"validated": source, **{f"model_{s.role}": tracking.model_uri(usecase, s.version) for s in scorers}}
    return ScoreResult.of(Step.SCORE, usecase.name, partition, outputs=outputs, metrics=metrics, inputs=inputs)
