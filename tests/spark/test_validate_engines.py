"""The validation gate on Spark: the same failed rules as the local engine on the mutation suite's data faults.

Each case is a file of the mutation suite (tests/data/test_mutations.py) checked by both engines' bodies, the
local one (pandas + GX) and the Spark one (`mlcycle.spark.validate.check_partition`: GX on a Spark DataFrame),
with the same contract, partition and volume history: the failed (rule, column, severity) must be the suite's
expected set on both, and the rows each engine read the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from data.test_mutations import CASES, DAY, HISTORY, ROWS, evaluated
from mlcycle.config import DEFAULT_USECASES_DIR
from mlcycle.contracts.gx_runner import validate_frame
from mlcycle.contracts.reading import UnreadableData, read_partition, unreadable_result
from mlcycle.contracts.results import ContractResult
from mlcycle.exitcodes import ExitCode
from mlcycle.schema import load_contract
from mlcycle.spark.validate import check_partition
from mlcycle.synthetic.yarnit import generate_day
from spark.conftest import SPARK

CONTRACT = load_contract(DEFAULT_USECASES_DIR / "yarnit" / "contract.yaml")

#: Twelve classes of fault (schema, types, nulls, range, categories, formats, cross-column, time, keys, labels,
#: unreadable files, CSV text), a soft warning and the clean control. Left out: "timestamps lose their time zone",
#: refused on both engines by its hard type rule, where Spark also compares the zone-less values with the day's
#: bounds as UTC wall time (in the day) while pandas cannot compare them (a second failure); and "timestamps
#: shifted by one day", whose pandas-written nanosecond timestamps Spark cannot read at all (the test below).
ON_BOTH = [
    "renamed column",
    "dtype float -> int",
    "null spike",
    "negative price",
    "unknown category code (GB -> UK)",
    "id format break",
    "cross-column rule broken (last purchase before sign-up)",
    "sentinel dates (1900-01-01)",
    "duplicated keys",
    "label all negative",
    "truncated parquet",
    "CSV with text in a number column",
    "unit change (seconds -> minutes, soft)",
    "clean Parquet (control)",
]


@pytest.fixture(scope="module")
def history() -> list[int]:
    """The volume rule's trailing row counts: the three clean days before DAY, as the mutation suite has them."""
    return [len(generate_day(day, base_rows=ROWS)) for day in HISTORY]


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return generate_day(DAY, base_rows=ROWS)


def local_check(path: Path, fmt: str, history: list[int]) -> tuple[ContractResult, int | None]:
    """The local engine's body of the validate step (mlcycle.steps.validate.validate_partition)."""
    try:
        frame = read_partition(path, fmt, CONTRACT)
    except UnreadableData as exc:
        return unreadable_result(str(exc), fmt), None
    return validate_frame(frame, CONTRACT, partition=DAY, history=history), len(frame)


def quoted(check: dict[str, Any]) -> tuple[Any, ...]:
    """What validation.json says of one rule that both engines say alike: rule, column, success, offending count
    and how many first values it quotes (their text differs by engine for some types: Spark's Row vs pandas). A type
    rule is a column's type on Spark and each value's on pandas (which counts the values): its verdict alone."""
    if check["rule"] == "type":
        return check["rule"], check["column"], check["success"]
    return check["rule"], check["column"], check["success"], check["unexpected_count"], len(check["values"])


def failed(outcome: ContractResult) -> set[tuple[str, str | None, str]]:
    return evaluated([f.to_dict() for f in outcome.failures])


def test_the_cases_cover_ten_classes_of_fault() -> None:
    rejected = [name for name in ON_BOTH if CASES[name].code == ExitCode.REJECTED]
    assert len(rejected) >= 10 and len({rule for name in rejected for rule, _, _ in CASES[name].failed}) >= 10


@pytest.mark.parametrize("name", ON_BOTH)
def test_spark_fails_the_rules_the_local_engine_fails(
    name: str, spark: Any, clean: pd.DataFrame, history: list[int], tmp_path: Path
) -> None:
    case = CASES[name]
    file_name, payload = case.make(clean.copy())
    path = tmp_path / file_name
    path.write_bytes(payload)
    fmt = file_name.rsplit(".", 1)[-1]

    local, local_rows = local_check(path, fmt, history)
    on_spark, spark_rows, _ = check_partition(SPARK, path, fmt, CONTRACT, partition=DAY, serving=False, history=history)

    assert failed(local) == case.failed, local.messages()
    assert failed(on_spark) == failed(local), on_spark.messages()
    assert on_spark.success == local.success == (case.code == ExitCode.OK)
    assert spark_rows == local_rows
    assert on_spark.evaluated == local.evaluated
    # Every rule's count and first values (validation.json's checks), passing rules that found some rows included:
    # Spark asks for counts first and quotes values in a second pass (gx_runner.run_suite's counts_first).
    assert [quoted(c) for c in on_spark.checks] == [quoted(c) for c in local.checks]
    for failure in on_spark.failures:  # what reason.json quotes: a sample of the offending rows, as locally
        assert failure.expected and failure.observed, failure
        if failure.unexpected_count:
            assert 0 < len(failure.rows) <= 5, failure


def test_the_spark_type_rules_name_spark_types(spark: Any, clean: pd.DataFrame, tmp_path: Path) -> None:
    # The only compiled difference between the engines, and it must not hide a type change: an int64 price is
    # refused on both (see "dtype float -> int" above) and a clean day passes on both.
    from mlcycle.spark.validate import SPARK_TYPES, spark_suite

    suite = spark_suite(CONTRACT, partition=DAY, serving=False, history=[], present=list(clean.columns))
    types = {e.column: e.type_ for e in suite.expectations if e.meta["mlcycle"]["rule"] == "type"}  # type: ignore[attr-defined]
    assert types == {name: SPARK_TYPES[spec.type] for name, spec in CONTRACT.columns.items() if name in types}
    assert set(types) == set(CONTRACT.column_names(serving=False))


def test_nanosecond_timestamps_are_refused_by_name_on_spark(spark: Any, clean: pd.DataFrame, tmp_path: Path) -> None:
    # Spark reads Parquet timestamps in microseconds and refuses TIMESTAMP(NANOS) columns (pandas writes them for
    # a datetime64[ns] column): the Spark engine rejects such a file as unreadable and names the type, where the
    # local engine reads it. The landing contract for engine: spark is therefore microsecond (or millisecond)
    # timestamps, as Spark and most exporters write them.
    path = tmp_path / "data.parquet"
    clean.assign(event_ts=clean["event_ts"].astype("datetime64[ns, UTC]")).to_parquet(path, index=False)
    outcome, rows, _ = check_partition(SPARK, path, "parquet", CONTRACT, partition=DAY, serving=False, history=[])
    assert rows is None and [f.rule for f in outcome.hard_failures] == ["readable"]
    assert "TIMESTAMP(NANOS" in outcome.hard_failures[0].observed
    assert local_check(path, "parquet", [])[0].success


def test_the_median_on_spark_is_spark_s_approximate_one_within_its_rank_error(spark: Any) -> None:
    # GX's own Spark median is exact: one task merges a summary of every value (a 4 GiB heap ran out at 50M rows).
    # The Spark engine registers Spark's approximate median instead; pandas keeps the exact one.
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.expectations.registry import _registered_metrics

    from mlcycle.contracts.gx_patch import MEDIAN_RELATIVE_ERROR, approximate_spark_median
    from mlcycle.spark.validate import _batch

    approximate_spark_median()
    providers = _registered_metrics["column.median"]["providers"]
    assert providers["SparkDFExecutionEngine"][0].__name__ == "ApproximateSparkMedian"
    assert providers["PandasExecutionEngine"][0].__name__ == "ColumnMedian"

    rows = 200_001  # 0..200,000 in shuffled partitions: the exact median is 100,000
    frame = spark.range(rows).selectExpr("cast(id as double) as x").repartition(8)
    suite = gx.ExpectationSuite(
        name="median", expectations=[gxe.ExpectColumnMedianToBeBetween(column="x", min_value=0, max_value=rows)]
    )
    observed = _batch(frame).validate(suite).results[0].result["observed_value"]
    assert abs(observed - 100_000) <= MEDIAN_RELATIVE_ERROR * rows
