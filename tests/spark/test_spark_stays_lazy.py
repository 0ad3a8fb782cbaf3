"""Spark starts only when a Spark step runs: importing the CLI and every step module starts no JVM and loads none
of mlcycle's Spark bodies (each step imports its Spark body inside its `engine: spark` branch).

Great Expectations itself imports the pyspark *package* whenever it is installed (its compatibility shims); that
costs an import, never a JVM. A fresh interpreter, since this folder's SparkSession runs in the test process; run
with `-c` on purpose: with pyspark's Connect dependencies missing, pyspark would take such a process for its
doctests and exit it (0, silently) as Great Expectations imports it (pyproject.toml's pyspark[connect]).
"""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import json, sys
import mlcycle.cli, mlcycle.steps.ingest, mlcycle.steps.validate, mlcycle.steps.score, mlcycle.steps.monitor
import great_expectations
from pyspark import SparkContext
print(json.dumps({
    "jvm": SparkContext._gateway is not None or SparkContext._active_spark_context is not None,
    "spark_bodies": sorted(m for m in sys.modules if m.startswith("mlcycle.spark.")),
}))
"""


def test_no_step_module_starts_spark_until_a_spark_step_runs() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=True)
    lines = done.stdout.strip().splitlines()
    assert lines, f"the interpreter printed nothing (exit {done.returncode}): {done.stderr[-1500:]}"
    assert json.loads(lines[-1]) == {"jvm": False, "spark_bodies": []}
