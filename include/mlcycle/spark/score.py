"""The score step's body on Spark: each model version as `mlflow.pyfunc.spark_udf` over the partition.

The versions are those the step resolved from @champion and @challenger when it started, and each is scored
from its *verified* download (:func:`mlcycle.registry.integrity.download_verified`: every file checked against
the digests recorded at registration) — the folder `spark_udf` ships to the executors holds exactly the files
the train step logged. The prediction rows are those of the local engine (:func:`mlcycle.steps.score.predictions`):
the same columns, types and ``prediction_id``s, the positive-class probability of the pyfunc's
``predict_proba`` output as the score and ``score >= decision_threshold`` as the decision. Each role's rows are
written by Spark's executors into the step's scratch folder and moved, as ``part-NNNNN.parquet``, into the role's
staging folder, which the step commits atomically through the storage layer as on the local engine.

Where the executors may run: under a local storage root the scratch folder is on the root's volume
(`Storage.scratch`), so executors on other nodes that mount that volume at the same path write there (a cluster
master; checked: the driver must see every row the executors wrote). Under an S3 root the scratch folder is the
driver's, which only local-mode executors reach; writing the parts through S3A and committing them in place is
not built (ADR 0011), so a cluster master is refused there.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlcycle.config import UseCase
from mlcycle.registry import integrity
from mlcycle.spark.s3 import spark_paths
from mlcycle.spark.session import column, get_session
from mlcycle.training.model_io import signature_columns

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = ["prediction_frame", "score_partition_spark"]


class SparkScorer(Protocol):
    """What this module reads and fills of the step's `Scorer` (mlcycle.steps.score)."""

    role: Any
    version: str
    model: Any
    staging: Path | None
    rows: int
    positives: int
    non_finite: int
    error: str

    def describe(self, usecase: UseCase) -> str: ...


def prediction_frame(
    usecase: UseCase, frame: DataFrame, version: str, role: str, score: Column, partition: str
) -> DataFrame:
    """The prediction rows of the local engine (mlcycle.steps.score.predictions), as Spark columns."""
    from pyspark.sql import functions as F

    key, name = usecase.key, usecase.registered_model_name
    day = dt.date.fromisoformat(partition)
    scored_for = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(days=1)
    scored = frame.select(
        F.concat(column(key).cast("string"), F.lit(f":{name}:{version}")).alias("prediction_id"),
        column(key),
        column(usecase.timestamp).alias("event_ts"),
        F.lit(name).alias("model_name"),
        F.lit(version).alias("model_version"),
        F.lit(role).alias("model_role"),
        score.alias("score"),
    )
    return scored.select(
        "*",
        (F.col("score") >= F.lit(usecase.model.decision_threshold)).cast("tinyint").alias("decision"),
        # The partition's end, not now(): re-scoring a day yields the same rows.
        F.lit(scored_for).cast("timestamp").alias("scored_for"),
    )


def _udf_score(session: Any, model_folder: Path, columns: list[str]) -> Column:
    import mlflow.pyfunc
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, DoubleType

    # mlcycle's models all predict predict_proba (n x 2; sklearn models are logged with pyfunc_predict_fn
    # "predict_proba", the torch pipeline returns it): the score is the positive class, element 2 (1-based).
    udf = mlflow.pyfunc.spark_udf(session, str(model_folder), result_type=ArrayType(DoubleType()), env_manager="local")
    return F.element_at(udf(F.struct(*(column(c) for c in columns))), 2)


class ScratchNotShared(RuntimeError):
    """Spark's executors cannot write where the driver commits from (an infrastructure error: exit code 1)."""


def refuse_remote_executors(session: Any) -> None:
    """Refuse a cluster master when the scratch folder is the driver's own (an S3 storage root): only executors on
    the driver's machine (local mode) can write there. Writing the parts to the storage root itself (s3a://) and
    committing from there is not built yet (ADR 0011)."""
    master = str(session.sparkContext.master)
    if not master.startswith("local"):
        raise ScratchNotShared(
            f"score on Spark writes its prediction parts to the driver's scratch folder, which executors of master "
            f"{master} cannot reach under an S3 storage root; run the Spark score in local mode (spark.local_master)"
            " or on a storage root that driver and executors mount as one volume "
            "(docs/adr/0011-spark-steps-as-sparkapplications.md, S3)"
        )


def check_parts_visible(written: Path, rows: int) -> None:
    """The driver must see every row the executors wrote: an executor that does not mount the scratch's volume at
    the same path writes its parts to its own disk, and committing the rest would lose rows silently."""
    import pyarrow.parquet as pq

    visible = sum(pq.ParquetFile(p).metadata.num_rows for p in written.glob("part-*.parquet"))
    if visible != rows:
        raise ScratchNotShared(
            f"the driver sees {visible} of the {rows} prediction rows Spark wrote to {written}: the storage root "
            "must be one volume mounted at the same path on the driver and on every executor"
        )


def _move_parts(written: Path, staging: Path) -> int:
    """Spark's part files of one write into ``staging`` as part-00000.parquet, ... (task order); their count."""
    parts = sorted(written.glob("part-*.parquet"))
    for index, part in enumerate(parts):
        shutil.move(part, staging / f"part-{index:05d}.parquet")
    return len(parts)


def score_partition_spark(
    usecase: UseCase,
    path: Path | str,
    scorers: Sequence[SparkScorer],
    partition: str,
    *,
    shared_scratch: bool = False,
) -> int:
    """Score the validated partition at ``path`` (a local file, or the s3:// URI of its object: read through S3A)
    with every scorer into its staging folder; the parts written by the champion. The first scorer is the
    champion: its failure is raised; a shadow's failure is recorded in its ``error`` and its output dropped, as
    on the local engine. ``shared_scratch``: the staging folders' volume is the storage root's, which executors
    of a cluster master may share (else only local mode is allowed)."""
    from pyspark.sql import functions as F

    session = get_session(usecase.spark)
    if not shared_scratch:
        refuse_remote_executors(session)
    frame = session.read.parquet(*spark_paths(session, [str(path)]))
    rows = frame.count()  # one prediction a row: what the driver must find in each role's parts
    parts = 0
    # The model folders stay on the driver: spark_udf ships them to the executors itself.
    with tempfile.TemporaryDirectory(prefix="mlcycle-spark-score-") as scratch:
        for scorer in scorers:
            is_champion = scorer is scorers[0]
            if scorer.error:
                continue
            try:
                models = Path(scratch) / f"model-{scorer.role}"
                folder = integrity.download_verified(usecase, scorer.version, models)
                # The version's own signature, as on the local engine (a champion trained before usecase.yaml
                # changed keeps its columns); `check_inputs` already refused one the data cannot feed.
                columns = signature_columns(scorer.model, scorer.describe(usecase))
                out = prediction_frame(
                    usecase, frame, scorer.version, str(scorer.role), _udf_score(session, folder, columns), partition
                )
                assert scorer.staging is not None
                written = scorer.staging.parent / f"spark-{scorer.role}"  # beside the staging: the same volume
                out.write.mode("error").parquet(str(written))
                score = F.col("score")
                non_finite = F.isnan(score) | score.isNull() | (F.abs(score) == float("inf"))
                totals = (
                    session.read.parquet(str(written))
                    .agg(F.count("*"), F.sum("decision"), F.sum(non_finite.cast("int")))
                    .first()
                )
            except Exception as exc:
                if is_champion:
                    raise
                scorer.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                continue
            assert scorer.staging is not None and totals is not None
            check_parts_visible(written, rows)
            moved = _move_parts(written, scorer.staging)
            scorer.rows, scorer.positives = int(totals[0]), int(totals[1] or 0)
            scorer.non_finite = int(totals[2] or 0)  # `refuse_non_finite` then refuses the role, as locally
            if is_champion:
                parts = moved
    return parts
