"""The Spark engine's tests: one local-mode SparkSession for the whole folder (its JVM takes seconds to start).

tests/conftest.py keeps this folder on one xdist worker, so the session is started once per test run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from mlcycle_dev.demo_spark import SPARK_RESOURCES, spark_usecases

__all__ = ["SPARK", "spark_usecases"]

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Two local cores and a small driver (`make demo-spark`'s): the tests' data is a few thousand rows.
SPARK = SPARK_RESOURCES


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    from mlcycle.spark.session import get_session

    session = get_session(SPARK)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
