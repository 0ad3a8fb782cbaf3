"""The environment that points boto3 (and so `Storage` and the registry lock) at a moto S3 endpoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


def use_s3_endpoint(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Every S3 client made after this talks to `endpoint` with moto's test credentials."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    for key, value in TEST_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    # A service-specific endpoint would win over AWS_ENDPOINT_URL (botocore's precedence).
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)


def s3_client(env: Mapping[str, str]) -> Any:
    """A boto3 S3 client for the endpoint and credentials an environment (a stack's `client_env()`) names."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
