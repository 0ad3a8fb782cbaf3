"""Spark's reads of an S3 storage root (mlcycle.spark.s3): s3:// becomes s3a://, S3A is configured from the
pod's environment, and a Spark without the S3A connector (pyspark as installed here) is refused by name."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from mlcycle.spark.s3 import CREDENTIALS_PROVIDER, S3AUnavailable, require_s3a, s3a_settings, spark_paths, spark_uri
from mlcycle.spark.score import ScratchNotShared, check_parts_visible, refuse_remote_executors
from mlcycle.storage.partitions import Storage

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def test_storage_uris_become_what_spark_reads() -> None:
    assert spark_uri("s3://lake/mlcycle/yarnit/validated/ds=2026-09-06/v-1/data.parquet") == (
        "s3a://lake/mlcycle/yarnit/validated/ds=2026-09-06/v-1/data.parquet"
    )
    assert spark_uri("/data/yarnit/data.parquet") == "/data/yarnit/data.parquet"
    with pytest.raises(ValueError, match="gs://b/k: Spark steps read local paths and s3:// storage roots only"):
        spark_uri("gs://b/k")


def test_s3a_is_configured_from_the_pods_environment() -> None:
    assert s3a_settings({}) == {"fs.s3a.aws.credentials.provider": CREDENTIALS_PROVIDER}
    endpoint = {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:18390", "AWS_REGION": "eu-west-1"}
    assert s3a_settings(endpoint) == {
        "fs.s3a.aws.credentials.provider": CREDENTIALS_PROVIDER,
        "fs.s3a.endpoint": "http://127.0.0.1:18390",
        "fs.s3a.path.style.access": "true",
        "fs.s3a.endpoint.region": "eu-west-1",
    }
    assert not any("secret" in k.lower() or "access.key" in k for k in s3a_settings(endpoint)), "no credentials"


def test_a_spark_without_s3a_is_refused_naming_the_jars(spark: SparkSession) -> None:
    from pyspark import __version__

    assert __version__ == "4.3.0", "hadoop-aws must match this pyspark's Hadoop: update the expected version"
    with pytest.raises(S3AUnavailable, match=r"need hadoop-aws-3\.5\.0\.jar and the AWS SDK v2 bundle"):
        require_s3a(spark)
    with pytest.raises(S3AUnavailable, match=r"org\.apache\.hadoop\.fs\.s3a\.S3AFileSystem"):
        spark_paths(spark, ["s3://lake/yarnit/raw/ds=2026-09-06/part-00000.parquet"])
    assert spark_paths(spark, ["/tmp/x.parquet"]) == ["/tmp/x.parquet"], "local paths need no S3A"


def test_a_local_root_hands_out_folders_not_object_uris(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="file_uri is for S3 storage roots"):
        Storage(str(tmp_path)).file_uri(f"{tmp_path}/yarnit/validated/ds=2026-09-06", "data.parquet")


def test_the_driver_must_see_every_row_the_executors_wrote(tmp_path: Path) -> None:
    """An executor that does not mount the scratch's volume writes its parts to its own disk: committing what the
    driver sees would lose rows silently."""
    written = tmp_path / "spark-champion"
    written.mkdir()
    pd.DataFrame({"score": [0.1, 0.9]}).to_parquet(written / "part-00000-a.parquet")
    check_parts_visible(written, 2)
    with pytest.raises(ScratchNotShared, match=r"the driver sees 2 of the 5 prediction rows .* same path"):
        check_parts_visible(written, 5)


def test_the_spark_score_refuses_executors_that_cannot_reach_its_scratch() -> None:
    refuse_remote_executors(SimpleNamespace(sparkContext=SimpleNamespace(master="local[2]")))
    cluster = SimpleNamespace(sparkContext=SimpleNamespace(master="k8s://https://kubernetes.default.svc:443"))
    with pytest.raises(ScratchNotShared, match="executors of master k8s://"):
        refuse_remote_executors(cluster)
