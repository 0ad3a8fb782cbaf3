"""Per-environment settings, read from environment variables only (standard library only).

The DAG files never change between the embedded default, `make up` and production: only these
variables (and Airflow connections) do. See docs/architecture.md, "Modes".
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "MLCYCLE_HOME"
STORAGE_ROOT_ENV = "MLCYCLE_STORAGE_ROOT"
EXECUTION_MODE_ENV = "MLCYCLE_EXECUTION_MODE"
IMAGE_ENV = "MLCYCLE_IMAGE"
NAMESPACE_ENV = "MLCYCLE_NAMESPACE"
ARTIFACT_ROOT_ENV = "MLCYCLE_ARTIFACT_ROOT"

REPO_ROOT = Path(__file__).resolve().parents[2]


def home() -> Path:
    """The one git-ignored folder holding all embedded-default state."""
    return Path(os.environ.get(HOME_ENV, REPO_ROOT / ".mlcycle")).resolve()


def storage_root() -> str:
    """Where data partitions live: a local folder (default) or `s3://bucket/prefix`."""
    return os.environ.get(STORAGE_ROOT_ENV) or str(home() / "data")


def execution_mode() -> str:
    mode = os.environ.get(EXECUTION_MODE_ENV, "local")
    if mode not in ("local", "kubernetes"):
        raise ValueError(f"{EXECUTION_MODE_ENV}={mode!r}: expected 'local' or 'kubernetes'")
    return mode


def embedded_environment(base: Path | None = None) -> dict[str, str]:
    """Environment of the embedded default: Airflow on SQLite, MLflow on SQLite, data in a local folder."""
    root = (base or home()).resolve()
    return {
        HOME_ENV: str(root),
        STORAGE_ROOT_ENV: str(root / "data"),
        ARTIFACT_ROOT_ENV: str(root / "mlflow-artifacts"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # 2-core laptops: Airflow's defaults start 32 local workers.
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__PORT": os.environ.get("AIRFLOW__API__PORT", "8080"),
        # Telemetry and network look-ups fail on closed machines and slow every start.
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "DO_NOT_TRACK": "true",
        "GX_ANALYTICS_ENABLED": "false",
    }
