"""The validate step's body on Spark: the same compiled GX contract, run by GX on a Spark DataFrame.

The suite is the one the local engine runs (:func:`mlcycle.contracts.compile.build_suite`), with one
difference that is GX's, not ours: on Spark, ``expect_column_values_to_be_of_type`` names a Spark SQL type
(``LongType``) where pandas names a dtype (``int64``), so the type rules are re-pointed at the Spark types
that Parquet's types map to. Results are described by the same code (:func:`describe_check`), so the failed
rules, the quarantine record, reason.json and the exit code are those of the local engine.

Parquet (the format at scale) is read by Spark itself, every ``part-*`` file of a partition included. A CSV
is read by the local engine's reader (:func:`mlcycle.contracts.reading.read_csv`: strict UTF-8, the contract's
types or the text left for the type rule to name) and handed to Spark: Spark's CSV reader replaces undecodable
bytes instead of refusing the file, and the contract must refuse it the same way on both engines.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import great_expectations as gx
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from mlcycle.config import Spark
from mlcycle.contracts.compile import build_suite
from mlcycle.contracts.gx_patch import approximate_spark_median
from mlcycle.contracts.gx_runner import run_suite
from mlcycle.contracts.reading import UnreadableData, read_csv, unreadable_result
from mlcycle.contracts.results import FIRST_VALUES, META_KEY, ContractResult
from mlcycle.schema import DataContract
from mlcycle.spark.s3 import spark_paths
from mlcycle.spark.session import get_session
from mlcycle.storage.layout import partition_files

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["SPARK_TYPES", "check_partition", "read_spark_parquet", "validate_spark_frame"]

#: A contract type -> the Spark SQL type GX checks for it (what Parquet's int64, double, UTC timestamp and
#: string columns read as; a Parquet timestamp without a time zone reads as TimestampNTZType and fails).
SPARK_TYPES: dict[str, str] = {
    "string": "StringType",
    "int": "LongType",
    "float": "DoubleType",
    "timestamp": "TimestampType",
}


class _Schema:
    """What :func:`describe_check` reads of a frame (its columns and their types), for a Spark DataFrame."""

    def __init__(self, frame: DataFrame) -> None:
        self._types = {field.name: field.dataType.simpleString() for field in frame.schema.fields}
        self.columns = list(self._types)

    def __getitem__(self, column: str) -> Any:
        return type("SparkColumn", (), {"dtype": self._types[column]})()


def read_spark_parquet(session: SparkSession, paths: Sequence[Path | str]) -> DataFrame:
    """The partition's Parquet files (one, or every ``part-*``: local paths or s3:// URIs, read through S3A) as a
    Spark DataFrame; :class:`UnreadableData` if they cannot be read (truncated or corrupt files)."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    names = ", ".join(str(p).rsplit("/", 1)[-1] for p in paths)
    readable = spark_paths(session, [str(p) for p in paths])  # no S3A: S3AUnavailable, an infrastructure error
    try:
        frame = session.read.parquet(*readable)
        frame.count()  # reads every footer and page header now: a bad file is refused here, not mid-validation
    except (PySparkException, Py4JJavaError) as exc:
        text = str(exc).strip()
        raise UnreadableData(
            f"{names} is not readable Parquet: {text.splitlines()[0] if text else type(exc).__name__}"
        ) from exc
    return frame


def _batch(frame: DataFrame) -> Any:
    """The whole-DataFrame batch of ``frame`` in a fresh ephemeral GX context with a Spark datasource."""
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        analytics_enabled=False,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    # No spark_config: GX reuses the step's session as it is (a config would make it restart the session).
    source = context.data_sources.add_spark(name="mlcycle")
    asset = source.add_dataframe_asset(name="partition")
    definition = asset.add_batch_definition_whole_dataframe(name="whole")
    return definition.get_batch(batch_parameters={"dataframe": frame})


def spark_suite(
    contract: DataContract,
    *,
    partition: datetime.date | None,
    serving: bool,
    history: Sequence[int],
    present: list[str],
) -> gx.ExpectationSuite:
    """The contract's compiled suite, its type rules naming Spark types (see the module docstring)."""
    suite = build_suite(contract, partition=partition, serving=serving, history=history, present=present)
    for expectation in suite.expectations:
        meta = (expectation.meta or {}).get(META_KEY) or {}
        if meta.get("rule") == "type":
            expectation.type_ = SPARK_TYPES[contract.columns[meta["column"]].type]  # type: ignore[attr-defined]
    return suite


def validate_spark_frame(
    frame: DataFrame,
    contract: DataContract,
    *,
    partition: datetime.date | None = None,
    serving: bool = False,
    history: Sequence[int] = (),
    sample_rows: int = FIRST_VALUES,
) -> ContractResult:
    """:func:`mlcycle.contracts.gx_runner.validate_frame` for a Spark DataFrame: same suite, same description."""
    suite = spark_suite(contract, partition=partition, serving=serving, history=history, present=frame.columns)
    approximate_spark_median()  # GX's exact median holds the whole column in one task (gx_patch)
    batch = _batch(frame)
    return run_suite(batch, suite, _Schema(frame), sample_rows, counts_first=True)


def check_partition(
    spark: Spark,
    source: Path,
    fmt: str,
    contract: DataContract,
    *,
    partition: datetime.date,
    serving: bool,
    history: Sequence[int],
    remote: Mapping[str, str] | None = None,
) -> tuple[ContractResult, int | None, pd.DataFrame | None]:
    """The validate step's check of one raw partition on Spark: (outcome, rows, the frame read for a CSV).

    ``rows`` is None when the files could not be read; the CSV's typed frame is what validated/ stores as
    Parquet (a Parquet partition's bytes are stored as they arrived, as on the local engine). ``remote``: a
    file's name -> its s3:// URI, for a partition on S3: Spark's executors read a Parquet partition from there.
    """
    session = get_session(spark)
    try:
        files = partition_files(source)
        if not files:
            raise UnreadableData(f"raw partition has no {source.name}")
        typed = read_csv(files[0], contract) if fmt == "csv" else None
        if fmt not in ("csv", "parquet"):
            raise UnreadableData(f"{source.name}: unknown format {fmt!r}")
        sources = [remote[f.name] for f in files] if remote else files
        frame = session.createDataFrame(typed) if typed is not None else read_spark_parquet(session, sources)
    except UnreadableData as exc:
        return unreadable_result(str(exc), fmt), None, None
    frame = frame.persist()  # every expectation reads it again: read the files once
    try:
        outcome = validate_spark_frame(frame, contract, partition=partition, serving=serving, history=history)
        rows = frame.count()
    finally:
        frame.unpersist()
    return outcome, rows, typed
