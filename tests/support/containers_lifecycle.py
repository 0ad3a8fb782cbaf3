"""Two copies of the services a step pod talks to, and the YarnIt story the container end-to-end test tells.

Each copy is `make up`'s stack without Airflow (PostgreSQL, the S3 endpoint, the MLflow server with auth):
one for the step pods, one for the local launcher. Both start empty, so model versions, experiment ids and
aliases come out the same when the two run the same steps; MLflow keeps one registered model per use case,
so two environments of one use case need two MLflow servers (a second storage prefix alone is not enough).

The pods get what the chart gives them: the pipeline ConfigMap rendered by helm/mlcycle with this stack's
URLs, and the two credential Secrets (S3 keys, the MLflow pipeline user) as podman secrets.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcycle.settings import ARTIFACT_ROOT_ENV, STORAGE_ROOT_ENV, embedded_environment
from mlcycle.storage.layout import DATA_PREFIX
from mlcycle_dev.stack.local import DATA_BUCKET, PIPELINE_USER, LocalStack
from mlcycle_dev.stack.s3 import REGION
from support.helm_release import render_values
from support.s3 import s3_client

#: The chart's default `tasks.pipeline.storageRoot` (both environments use it: one bucket each).
STORAGE_PREFIX = "mlcycle"
STORAGE_ROOT = f"s3://{DATA_BUCKET}/{STORAGE_PREFIX}"
SUCCESS = "_SUCCESS"


@dataclass(frozen=True)
class Stage:
    """One task of one DAG run: a run started with the `partition` Param, or by a retraining request."""

    dag_id: str
    task_id: str
    partition: str
    #: The extra of the Asset event that started the run (a drift-triggered retrain); None: a Param run.
    asset_event: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.partition}/{self.dag_id}.{self.task_id}"


class Services:
    """One stack of services (started and stopped by `services()`), seen as a pod and as a worker see it."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack

    def pipeline_configmap(self, name: str) -> dict[str, str]:
        """The chart's pipeline ConfigMap `name`, rendered with this stack's endpoints (as `helm install` would)."""
        values = {
            "tasks": {
                "pipeline": {
                    "storageRoot": STORAGE_ROOT,
                    "mlflowTrackingUri": self.stack.mlflow.url,
                    "s3EndpointUrl": self.stack.s3.url,
                    "awsRegion": REGION,
                }
            }
        }
        data: dict[str, str] = render_values(values, "containers-e2e").get("ConfigMap", name)["data"]
        return data

    def credentials(self) -> dict[str, dict[str, str]]:
        """The Secrets the chart's `tasks.credentialsSecrets` name, with this stack's pipeline credentials."""
        s3 = self.stack.s3
        return {
            "mlcycle-s3": {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key},
            "mlcycle-mlflow-client": {
                "MLFLOW_TRACKING_USERNAME": PIPELINE_USER,
                "MLFLOW_TRACKING_PASSWORD": self.stack.credentials["mlflow_pipeline_password"],
            },
        }

    def worker_env(self, home: Path) -> dict[str, str]:
        """What the local launcher's steps inherit from an Airflow worker pointed at this stack."""
        return {
            **embedded_environment(home),
            **self.stack.client_environment(),
            STORAGE_ROOT_ENV: STORAGE_ROOT,
            ARTIFACT_ROOT_ENV: "",
        }

    def generate(self, usecase: str, start: dt.date, end: dt.date, rows: int, scenarios: tuple[str, ...]) -> None:
        """Land the synthetic days (seeded: the same arguments land the same bytes in either stack)."""
        mlcycle = str(Path(sys.executable).parent / "mlcycle")
        argv = [mlcycle, "generate", "--usecase", usecase, "--start", start.isoformat(), "--end", end.isoformat()]
        argv += ["--rows", str(rows), *(arg for s in scenarios for arg in ("--scenario", s))]
        env = {**os.environ, **self.worker_env(self.stack.root / "generate")}
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"mlcycle generate into {self.stack.s3.url}: {done.stderr[-2000:]}")

    def _s3(self) -> Any:
        return s3_client(self.stack.s3.client_env())

    def read(self, partition: str, manifest: Mapping[str, Any], name: str) -> bytes:
        """File `name` of the committed `partition` (in the version folder its manifest points at)."""
        key = f"{STORAGE_PREFIX}/{partition}/{manifest[DATA_PREFIX]}/{name}"
        body: bytes = self._s3().get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read()
        return body

    def manifests(self) -> dict[str, dict[str, Any]]:
        """Every committed partition's manifest (its `_SUCCESS`), by the partition's path under the root."""
        s3 = self._s3()
        found: dict[str, dict[str, Any]] = {}
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=DATA_BUCKET, Prefix=f"{STORAGE_PREFIX}/")
        for page in pages:
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.rsplit("/", 1)[-1] != SUCCESS:
                    continue
                body = s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read()
                partition = key[len(STORAGE_PREFIX) + 1 : -len(SUCCESS) - 1]
                found[partition] = json.loads(body)
        return found


@contextmanager
def services(root: Path) -> Iterator[Services]:
    """PostgreSQL, the S3 endpoint and the MLflow server of `make up`, on loopback, stopped on exit."""
    stack = LocalStack(root, components=())
    stack.start()
    try:
        yield Services(stack)
    finally:
        survivors = stack.stop()
        if survivors:
            raise RuntimeError(f"services under {root} survived their stop: {survivors}")
