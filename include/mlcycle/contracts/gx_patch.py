"""The two changes this project makes to Great Expectations' globals, applied by the runners, not on import.

- **No batch fingerprint** (both engines' runner calls it; only pandas batches are fingerprinted). GX labels every
  in-memory pandas batch smaller than ``pandas_execution_engine.HASH_THRESHOLD`` bytes (1 GB) with a fingerprint:
  it hashes every cell (``hash_pandas_object`` + md5), which costs about as much as validating half the columns.
  Nothing in mlcycle reads that label, so the threshold is set to 0 (never fingerprint). ``HASH_THRESHOLD`` is a GX
  internal: re-check it on every GX upgrade (docs/benchmarks.md has the measurement).
- **An approximate median on Spark** (the Spark engine only). GX computes ``column.median`` on Spark with
  ``approxQuantile(..., relativeError=0)``: exact, so the summary that one task merges holds every value of the
  column. At 50M rows a day that task ran out of a 4 GiB heap (docs/benchmarks.md, Engines). The Spark engine asks
  Spark for the median within a rank error of ``MEDIAN_RELATIVE_ERROR`` x the column's rows instead, in memory that
  does not grow with the day. The median rule is a soft statistic with bounds far from the values it guards (a
  unit change moves the median sixty-fold): a rank error of 1e-4 of the rows cannot turn its verdict unless the
  median sits on a bound. The local engine's median stays exact.
"""

from __future__ import annotations

import functools
from typing import Any

from great_expectations.execution_engine import pandas_execution_engine

__all__ = ["MEDIAN_RELATIVE_ERROR", "approximate_spark_median", "disable_batch_fingerprint"]

#: The median's rank error on Spark, as a share of the column's non-null rows (Spark's ``relativeError``).
MEDIAN_RELATIVE_ERROR = 1e-4


def disable_batch_fingerprint() -> None:
    """Stop GX from hashing every cell of an in-memory batch only to label it (idempotent)."""
    pandas_execution_engine.HASH_THRESHOLD = 0


@functools.cache  # once per process: GX logs each re-registration
def approximate_spark_median() -> None:
    """Register ``column.median`` for GX's Spark engine as Spark's approximate median (idempotent).

    A subclass of GX's metric provider registers its metric functions under the same metric name when it is
    defined, the Spark one replacing GX's; pandas and SQL keep theirs (inherited unchanged).
    """
    from great_expectations.core.metric_domain_types import MetricDomainTypes
    from great_expectations.execution_engine import SparkDFExecutionEngine
    from great_expectations.expectations.metrics.column_aggregate_metrics.column_median import ColumnMedian
    from great_expectations.expectations.metrics.metric_provider import metric_value

    class ApproximateSparkMedian(ColumnMedian):
        @metric_value(engine=SparkDFExecutionEngine)
        def _spark(
            cls,
            execution_engine: Any,
            metric_domain_kwargs: dict[str, Any],
            metric_value_kwargs: dict[str, Any],
            metrics: dict[str, Any],
            runtime_configuration: dict[str, Any],
        ) -> float:
            frame, _, accessor = execution_engine.get_compute_domain(metric_domain_kwargs, MetricDomainTypes.COLUMN)
            values = frame.approxQuantile(accessor["column"], [0.5], MEDIAN_RELATIVE_ERROR)
            return float(values[0]) if values else float("nan")  # no non-null value: NaN, as GX's own median
