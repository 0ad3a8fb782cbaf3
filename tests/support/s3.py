"""The environment that points boto3 (and so `Storage` and the registry lock) at a moto S3 endpoint."""

from __future__ import annotations

import pytest

TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


def use_s3_endpoint(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Every S3 client made after this talks to `endpoint` with moto's test credentials."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    for key, value in TEST_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    # A service-specific endpoint would win over AWS_ENDPOINT_URL (botocore's precedence).
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
