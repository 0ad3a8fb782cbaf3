"""Spark's reads of an S3 storage root: Hadoop's S3A connector (`s3a://`), credentials from the pod.

The storage layer names S3 objects `s3://bucket/key` (pyarrow, boto3); Hadoop reads them through S3A, as
`s3a://bucket/key`, so the executors read a partition's files themselves instead of through the driver. pyspark
does not ship S3A: the Spark image gets hadoop-aws (at pyspark's Hadoop version) and the AWS SDK v2 bundle at
build time (`make image-spark SPARK_S3A=1`, docker/spark-jars/README.md). Without them a Spark step given an
s3:// root fails with :class:`S3AUnavailable`, naming the jars, before it reads anything.

S3A is configured from the environment the pods already have (the pipeline ConfigMap and the credential
Secrets, ADR 0011): ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (an S3-compatible endpoint, path-style),
``AWS_REGION``; credentials come from the AWS SDK's default chain (environment variables, IRSA's web identity
token, the node's instance profile), never from Spark's configuration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["S3A_CLASS", "S3AUnavailable", "require_s3a", "s3a_settings", "spark_paths", "spark_uri"]

S3A_CLASS = "org.apache.hadoop.fs.s3a.S3AFileSystem"
#: The AWS SDK v2 chain: environment, system properties, web identity (IRSA), profile, container, instance.
CREDENTIALS_PROVIDER = "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"


class S3AUnavailable(RuntimeError):
    """The storage root is on S3 and this Spark has no S3A connector (an infrastructure error: exit code 1)."""


def spark_uri(uri: str) -> str:
    """The URI Spark reads for a storage URI: ``s3://bucket/key`` -> ``s3a://bucket/key``; a local path as it is."""
    if uri.startswith("s3://"):
        return "s3a://" + uri.removeprefix("s3://")
    if "://" in uri and not uri.startswith(("file://", "s3a://")):
        raise ValueError(f"{uri}: Spark steps read local paths and s3:// storage roots only")
    return uri


def s3a_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Hadoop settings of S3A from the environment of the step (see the module docstring)."""
    env = os.environ if environ is None else environ
    settings = {"fs.s3a.aws.credentials.provider": CREDENTIALS_PROVIDER}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        # S3-compatible stores (and a loopback endpoint) address buckets by path, not by host name.
        settings |= {"fs.s3a.endpoint": endpoint, "fs.s3a.path.style.access": "true"}
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        settings["fs.s3a.endpoint.region"] = region
    return settings


def hadoop_version(session: SparkSession) -> str:
    version: str = session.sparkContext._jvm.org.apache.hadoop.util.VersionInfo.getVersion()  # type: ignore[union-attr]
    return version


def require_s3a(session: SparkSession) -> None:
    """:class:`S3AUnavailable` unless this Spark's JVM can load S3A; else set its Hadoop settings."""
    from py4j.protocol import Py4JJavaError

    jvm = session.sparkContext._jvm
    assert jvm is not None, "a running SparkContext has a JVM gateway"
    try:
        jvm.java.lang.Class.forName(S3A_CLASS)
    except Py4JJavaError as exc:
        version = hadoop_version(session)
        raise S3AUnavailable(
            f"the storage root is on S3 but this Spark cannot load {S3A_CLASS} (Hadoop {version}): its jars/ "
            f"need hadoop-aws-{version}.jar and the AWS SDK v2 bundle it names (the Spark image: "
            "`make image-spark SPARK_S3A=1`, docker/spark-jars/README.md)"
        ) from exc
    configuration = session.sparkContext._jsc.hadoopConfiguration()
    for name, value in s3a_settings().items():
        configuration.set(name, value)


def spark_paths(session: SparkSession, uris: Sequence[str]) -> list[str]:
    """What Spark reads for ``uris`` (local paths or s3:// objects); S3A checked and configured for s3:// ones."""
    paths = [spark_uri(u) for u in uris]
    if any(p.startswith("s3a://") for p in paths):
        require_s3a(session)
    return paths
