"""The SparkSession a Spark step runs in: local mode here and in CI, the SparkApplication's in a pod.

In a pod the Spark operator starts the driver with its master and resources in Spark's own configuration
(`spark.master`, set by spark-submit); a session found that way is used as it is. Otherwise (a laptop, CI,
`airflow dags test`) the step starts Spark in local mode from the use case's `spark:` resources, with a shuffle
sized for one machine's cores. Either way: no web UI (nothing here serves it, and it would take a port), UTC as
the session time zone (a timestamp is the same instant in Spark, pandas and the data contract) and Parquet
timestamps written as pandas writes them.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from mlcycle.config import Spark

if TYPE_CHECKING:
    from pyspark.sql import Column, SparkSession

APP_NAME = "mlcycle"
#: Shuffle partitions of a local run: Spark's default (200) is sized for a cluster, not a laptop's cores.
LOCAL_SHUFFLE_PARTITIONS = 4


def _common(builder: SparkSession.Builder) -> SparkSession.Builder:
    return (
        builder.config("spark.ui.enabled", "false")
        # No console progress bars: a step's stderr is its task log, and a bar redraws a line per stage there.
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        # Arrow moves columns between the JVM and Python (toPandas, pandas UDFs such as MLflow's spark_udf).
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # Parquet timestamps as pandas and pyarrow write them (INT64 microseconds, UTC), not Spark's legacy INT96,
        # which pandas reads back without a time zone.
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        # No `_SUCCESS` file from Hadoop's committer: the storage layer writes the partition's own marker.
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
    )


def under_spark_submit() -> bool:
    """Whether spark-submit started this driver (a SparkApplication's pod): its JVM is already running, with the
    master and resources of the SparkApplication in Spark's own configuration, and pyspark connects to it."""
    # spark-submit starts the JVM first and hands its gateway to the Python driver in this variable.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_session(spark: Spark) -> SparkSession:
    """The running session, the SparkApplication's (in a pod), or a new local-mode one sized by ``spark``."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = _common(SparkSession.builder.appName(APP_NAME))
    if under_spark_submit():
        # Master and resources come from the SparkApplication (spark-submit's configuration): keep them.
        return builder.getOrCreate()
    # The Python workers (pandas UDFs such as MLflow's spark_udf) run this interpreter, with this environment's
    # packages, not whatever `python3` the PATH finds first (pyspark reads only the environment for it).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return (
        builder.master(spark.local_master)
        .config("spark.driver.memory", spark.driver_memory)
        .config("spark.sql.shuffle.partitions", str(LOCAL_SHUFFLE_PARTITIONS))
        .config("spark.default.parallelism", str(LOCAL_SHUFFLE_PARTITIONS))
        .getOrCreate()
    )


def column(name: str) -> Column:
    """The column named ``name`` exactly: a dot in a name (``n_loc_0.5sd``) would otherwise read as a struct field."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")
