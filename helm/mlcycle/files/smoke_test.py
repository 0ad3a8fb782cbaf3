"""`helm test`: the release works from where a step runs.

The test pod is set up like a step pod (the task ServiceAccount, the pipeline ConfigMap and the credentials
Secrets as environment, the step NetworkPolicy), so each check is one a step depends on:

1. MLflow answers (/health) and refuses anonymous API calls (authentication is on);
2. the pipeline's MLflow user (MLFLOW_TRACKING_USERNAME/PASSWORD) is accepted;
3. the storage root is readable with the step credentials (s3:// roots);
4. the alert receiver is healthy (when --alert-receiver is given).

Standard library only, except boto3 for the storage check (in the task image).
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

TERMINATION_LOG = Path("/dev/termination-log")


def status(url: str, auth: tuple[str, str] | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def check_mlflow(uri: str) -> str:
    if status(f"{uri}/health") != 200:
        raise AssertionError(f"{uri}/health does not answer 200")
    search = f"{uri}/api/2.0/mlflow/experiments/search?max_results=1"
    anonymous = status(search)
    if anonymous != 401:
        raise AssertionError(f"an anonymous API call got {anonymous}, not 401: authentication is off")
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if not user or not password:
        raise AssertionError("MLFLOW_TRACKING_USERNAME/PASSWORD are not set: check tasks.credentialsSecrets")
    authenticated = status(search, (user, password))
    if authenticated != 200:
        raise AssertionError(f"the pipeline user {user!r} got {authenticated} from MLflow")
    return f"MLflow at {uri}: healthy, anonymous refused, pipeline user accepted"


def check_storage(root: str) -> str:
    if not root.startswith("s3://"):
        return f"storage root {root}: not S3, not checked"
    import boto3  # in the task image; only this check needs it

    bucket, _, prefix = root[len("s3://") :].partition("/")
    boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    return f"storage root {root}: listable with the step credentials"


def check_receiver(url: str) -> str:
    if status(f"{url}/healthz") != 200:
        raise AssertionError(f"{url}/healthz does not answer 200")
    return f"alert receiver at {url}: healthy"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alert-receiver", help="base URL of the alert receiver")
    args = parser.parse_args(argv)
    checks: list[Callable[[], str]] = [
        lambda: check_mlflow(os.environ["MLFLOW_TRACKING_URI"].rstrip("/")),
        lambda: check_storage(os.environ["MLCYCLE_STORAGE_ROOT"]),
    ]
    if args.alert_receiver:
        checks.append(lambda: check_receiver(args.alert_receiver.rstrip("/")))
    for check in checks:
        try:
            print("ok:", check(), flush=True)
        except Exception as exc:  # one line for `kubectl describe` / helm's output
            reason = f"{type(exc).__name__}: {exc}"
            print("FAILED:", reason, file=sys.stderr, flush=True)
            if TERMINATION_LOG.exists():
                TERMINATION_LOG.write_text(reason[:4000])
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
