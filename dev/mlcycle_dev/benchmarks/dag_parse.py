"""Benchmark: how long Airflow takes to parse the DAG folder, and what parsing imports.

    python -m mlcycle_dev.benchmarks.dag_parse [--repeat 5]

Each repetition parses in a fresh interpreter (as the dag processor's parsing subprocesses do) and
reports the DagBag fill time, per-file parse times, the number of DAGs, the modules the DAG code added
beyond Airflow itself, and whether any heavy ML library was imported. The baseline is an empty DAG
file parsed the same way, to separate our cost from Airflow's fixed cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from mlcycle.settings import REPO_ROOT, embedded_environment

HEAVY = ("pandas", "numpy", "sklearn", "torch", "mlflow", "great_expectations", "evidently", "pyarrow", "kubernetes")

PROBE = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
before = set(sys.modules)
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - started
added = sorted({m.split(".")[0] for m in set(sys.modules) - before if not m.startswith("unusual_prefix")})
stats = [{"file": s.file, "seconds": s.duration.total_seconds() if hasattr(s.duration, "total_seconds") else s.duration,
          "dags": s.dag_num} for s in bag.dagbag_stats]
print(json.dumps({"seconds": seconds, "dags": len(bag.dag_ids), "errors": len(bag.import_errors),
                  "added_top_level_modules": added, "heavy": [m for m in json.loads(sys.argv[2]) if m in sys.modules],
                  "files": stats}))
"""

EMPTY_DAG = (
    '"""Airflow DAG file used as a baseline."""\nfrom airflow.sdk import DAG\n\ndag = DAG("baseline", schedule=None)\n'
)


def parse_once(folder: Path, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder), json.dumps(HEAVY)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, **embedded_environment(Path(tmp) / "home")}
        baseline_folder = Path(tmp) / "baseline"
        baseline_folder.mkdir()
        (baseline_folder / "baseline.py").write_text(EMPTY_DAG)
        ours = [parse_once(REPO_ROOT / "dags", env) for _ in range(args.repeat)]
        base = [parse_once(baseline_folder, env) for _ in range(args.repeat)]
    median = statistics.median(r["seconds"] for r in ours)
    base_median = statistics.median(r["seconds"] for r in base)
    print(f"DAG files parsed {args.repeat}x, each in a fresh interpreter")
    print(
        f"  mlcycle dags/:   {median * 1000:7.1f} ms median ({ours[0]['dags']} DAGs, {ours[0]['errors']} import errors)"
    )
    print(f"  baseline (1 empty DAG): {base_median * 1000:7.1f} ms median")
    print(f"  ratio: {median / base_median:.1f}x the baseline")
    for stat in ours[0]["files"]:
        print(f"    {Path(stat['file']).name:16s} {float(stat['seconds']) * 1000:6.1f} ms  {stat['dags']} DAGs")
    print(f"  heavy ML modules imported while parsing: {ours[0]['heavy'] or 'none'}")
    print(f"  top-level modules the DAG code added: {', '.join(ours[0]['added_top_level_modules'])}")
    return 0 if not ours[0]["heavy"] and not ours[0]["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
