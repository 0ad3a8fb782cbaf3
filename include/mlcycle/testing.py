"""Helpers for tests that drive the `mlcycle` CLI in-process (shared by tests/unit and tests/data)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Protocol

from mlcycle.cli import main as cli_main


class _Capture(Protocol):
    def readouterr(self) -> Any: ...


def run(capsys: _Capture, *argv: str) -> tuple[int, dict[str, Any]]:
    """Run `mlcycle *argv`; return its exit code and the JSON result it printed last."""
    code = cli_main(list(argv))
    lines = [line for line in capsys.readouterr().out.strip().splitlines() if line.startswith("{")]
    return code, json.loads(lines[-1])


def step(capsys: _Capture, name: str, day: dt.date, *extra: str, usecase: str = "yarnit") -> tuple[int, dict[str, Any]]:
    """Run one lifecycle step for one partition."""
    return run(capsys, name, "--usecase", usecase, "--partition", day.isoformat(), *extra)


def usecase_root(env: dict[str, str], usecase: str = "yarnit") -> Path:
    """The use case's folder under the storage root of an embedded environment."""
    return Path(env["MLCYCLE_STORAGE_ROOT"]) / usecase


def lenient_usecases(folder: Path, usecase: str = "yarnit") -> Path:
    """A copy of the use case folders whose gate ignores latency; returns the folder for MLCYCLE_USECASES_DIR.

    The gate's p95 latency budget measures the machine as much as the model: on a loaded CI machine it can
    reject the only candidate. Tests about something else (backfills, UIs) need a champion every time.
    """
    import shutil

    from mlcycle.config import DEFAULT_USECASES_DIR

    target = folder / "usecases"
    shutil.copytree(DEFAULT_USECASES_DIR / usecase, target / usecase)
    config = target / usecase / "usecase.yaml"
    text = config.read_text()
    relaxed = text.replace("latency_p95_ms: 100 ", "latency_p95_ms: 60000 ")
    if relaxed == text:
        raise ValueError(f"{config}: no 'latency_p95_ms: 100' to relax")
    config.write_text(relaxed)
    return target
