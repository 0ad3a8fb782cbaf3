"""An S3-compatible endpoint on loopback: `moto` in server mode, with the stack's buckets created.

moto keeps objects in memory: they last as long as the server process (one `make up` session). Any access
key is accepted; the stack still hands out one, so clients are configured exactly as for real S3
(`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`).
"""

from __future__ import annotations

import importlib.util
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlcycle_dev.stack.process import ManagedProcess, wait_until

REGION = "us-east-1"


def missing_reason() -> str | None:
    """Why the S3 endpoint cannot run here (for a test skip), or None when it can."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        return "moto[server] is not installed (the S3 endpoint of the local stack)"
    return None


class S3Server:
    """`python -m moto.server` on 127.0.0.1:`port`; `client_env` is what a client needs to reach it."""

    def __init__(self, port: int, access_key: str, secret_key: str, *, log_path: Path) -> None:
        self.port = port
        self.access_key = access_key
        self.secret_key = secret_key
        self.log_path = log_path
        self.process: ManagedProcess | None = None
        self.startup_seconds: dict[str, float] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_env(self) -> dict[str, str]:
        """Environment variables for boto3, pyarrow and MLflow's S3 client."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            # MLflow's S3 artifact repository predates AWS_ENDPOINT_URL and reads its own variable.
            "MLFLOW_S3_ENDPOINT_URL": self.url,
        }

    def start(self, env: Mapping[str, str], buckets: Sequence[str], timeout: float = 60.0) -> S3Server:
        started = time.monotonic()
        self.process = ManagedProcess(
            "s3",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            log_path=self.log_path,
        ).start()
        try:
            wait_until(self._ping, timeout, "the S3 endpoint (moto)", processes=[self.process])
            self.create_buckets(buckets)
        except BaseException:
            self.process.stop()
            raise
        self.startup_seconds["s3"] = round(time.monotonic() - started, 1)
        return self

    def stop(self, grace: float = 10.0) -> list[int]:
        return self.process.stop(grace) if self.process else []

    def _ping(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=5) as response:
            return bool(response.status == 200)

    def client(self) -> Any:
        """A boto3 S3 client of this endpoint (boto3 imported lazily: it costs ~0.5 s)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
        )

    def create_buckets(self, names: Sequence[str]) -> None:
        client = self.client()
        existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
        for name in names:
            if name not in existing:
                client.create_bucket(Bucket=name)
