"""The Spark engine's tests: one local-mode SparkSession for the whole folder (its JVM takes seconds to start).

tests/conftest.py keeps this folder on one xdist worker, so the session is started once per test run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from mlcycle.config import Spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Two local cores and a small driver: the tests' data is a few thousand rows.
SPARK = Spark(local_master="local[2]", driver_memory="1g")


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    from mlcycle.spark.session import get_session

    session = get_session(SPARK)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def spark_usecases(local: Path, target: Path, usecase: str = "yarnit") -> Path:
    """A copy of the use case folder ``local`` whose ``usecase`` runs on Spark (``SPARK``'s resources)."""
    import shutil

    shutil.copytree(local, target)
    config = target / usecase / "usecase.yaml"
    data: dict[str, Any] = yaml.safe_load(config.read_text())
    data["engine"] = "spark"
    data["spark"] = SPARK.model_dump()
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return target
