"""The two launchers of a StepSpec and the one mapping from exit codes to Airflow outcomes.

- `LocalStepOperator` runs the spec's argv in a subprocess (embedded default, `make up`).
- `StepPodOperator` (kubernetes mode, built in `factory.py`) runs the same argv in a pod.
Both map USAGE and REJECTED to a failure without retry, NOTHING_TO_DO to a skip, and return the step's JSON
result as the task's XCom. Both declare the step's input and output datasets to OpenLineage from that result
(`mlcycle.orchestration.openlineage`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from mlcycle.exitcodes import ExitCode

# The tail of a failed step's output kept in the exception message (the alert's one-line reason).
_REASON_CHARS = 500


def raise_for_exit_code(code: int, result: dict[str, Any] | None, where: str) -> None:
    """The single place where a step's exit code becomes an Airflow outcome (both launchers use it)."""
    if code == ExitCode.OK:
        return
    reason = str((result or {}).get("reason", ""))[:_REASON_CHARS]
    if code == ExitCode.NOTHING_TO_DO:
        raise AirflowSkipException(f"{where}: nothing to do: {reason}")
    if code == ExitCode.REJECTED:
        raise AirflowFailException(f"{where}: rejected (not retried): {reason}")
    if code == ExitCode.USAGE:
        raise AirflowFailException(f"{where}: usage error (not retried): {reason}")
    raise AirflowException(f"{where}: failed with exit code {code} (retried): {reason}")


def parse_result(stdout_tail: str) -> dict[str, Any] | None:
    """The step's JSON result: the last output line that is a JSON object with a "status"."""
    for line in reversed(stdout_tail.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                loaded = json.loads(line)
            except ValueError:
                continue
            if isinstance(loaded, dict) and "status" in loaded:
                return loaded
    return None


def resolve_entrypoint(name: str) -> str:
    """The `mlcycle` executable: on PATH, else next to the running interpreter (a venv's bin/)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    raise AirflowException(f"cannot find the {name!r} executable on PATH or in {beside.parent}")


class LocalStepOperator(BaseOperator):
    """Run one `mlcycle` step in a local subprocess: the embedded-default launcher of a StepSpec."""

    template_fields: Sequence[str] = ("cmds", "arguments", "env_vars")
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        cmds: list[str],
        arguments: list[str],
        env_vars: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cmds = cmds
        self.arguments = arguments
        self.env_vars = env_vars or {}

    @property
    def argv(self) -> list[str]:
        return [*self.cmds, *self.arguments]

    def execute(self, context: Any) -> dict[str, Any] | None:
        argv = self.argv
        executable = [resolve_entrypoint(argv[0]), *argv[1:]]
        env = {**os.environ, **self.env_vars}
        self.log.info("running: %s", " ".join(argv))
        tail: list[str] = []
        # stdout and stderr both go to the task log; the last stdout line is the JSON result.
        with subprocess.Popen(
            executable, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        ) as process:
            self._process = process
            assert process.stdout is not None
            for line in process.stdout:
                self.log.info("%s", line.rstrip())
                tail.append(line)
                del tail[:-50]
            code = process.wait()
        result = parse_result("".join(tail))
        self._step_result = result
        raise_for_exit_code(code, result, f"mlcycle {argv[1] if len(argv) > 1 else ''}")
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The step's input and output datasets, for Airflow's OpenLineage provider (docs/lineage.md)."""
        from mlcycle.orchestration.openlineage import step_lineage

        return step_lineage(getattr(self, "_step_result", None))

    def on_kill(self) -> None:
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            process.terminate()
