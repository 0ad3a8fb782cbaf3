"""Drive the `mlcycle` CLI in-process (tests/unit, tests/data): run a command, read its JSON result."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from mlcycle.cli import main as cli_main

#: The session fixture `capture_stdout` (tests/support/fixtures.py): stdout capture for module-scoped set-ups.
CaptureStdout = Callable[[], AbstractContextManager[Any]]


class _Capture(Protocol):
    def readouterr(self) -> Any: ...


def run(capsys: _Capture, *argv: str) -> tuple[int, dict[str, Any]]:
    """Run `mlcycle *argv`; return its exit code and the JSON result it printed last."""
    code = cli_main(list(argv))
    lines = [line for line in capsys.readouterr().out.strip().splitlines() if line.startswith("{")]
    return code, json.loads(lines[-1])


def ok_result(result: tuple[int, dict[str, Any]]) -> dict[str, Any]:
    """The JSON result of a command that must succeed (exit 0); the result is the assertion's message otherwise."""
    code, document = result
    assert code == 0, document
    return document


def step(capsys: _Capture, name: str, day: dt.date, *extra: str, usecase: str = "yarnit") -> tuple[int, dict[str, Any]]:
    """Run one lifecycle step for one partition."""
    return run(capsys, name, "--usecase", usecase, "--partition", day.isoformat(), *extra)


def train_to_champion(capsys: _Capture, day: dt.date, usecase: str = "yarnit") -> str:
    """Train on ``day``'s features, evaluate and promote: the new version (the gate must promote it)."""
    version = str(ok_result(step(capsys, "train", day, usecase=usecase))["metrics"]["model_version"])
    evaluated = ok_result(step(capsys, "evaluate", day, "--model-version", version, usecase=usecase))
    ok_result(step(capsys, "promote", day, "--decision", evaluated["outputs"]["decision"], usecase=usecase))
    return version


def usecase_root(env: dict[str, str], usecase: str = "yarnit") -> Path:
    """The use case's folder under the storage root of an embedded environment."""
    return Path(env["MLCYCLE_STORAGE_ROOT"]) / usecase
