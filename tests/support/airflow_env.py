"""What the tests of Airflow's own environment share (.venv-airflow and the Airflow image): the ML stack that must
be absent there, and the script that parses the DAG folder in that interpreter and reports what it found."""

from __future__ import annotations

import tomllib

from mlcycle.settings import REPO_ROOT

#: The ML stack: the libraries that ruff's TID253 bans at module level in DAG-side code (pyproject.toml).
ML_LIBRARIES: list[str] = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"][
    "flake8-tidy-imports"
]["banned-module-level-imports"]

# Parses the DAG folder (argv[1]) and reports the ML libraries importable in this interpreter, where mlcycle
# comes from, and whether the provider that runs the pods is there.
PARSE_DAGS = """
import importlib.util, json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
import mlcycle
print(json.dumps({
    "dag_ids": sorted(bag.dag_ids),
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "installed_ml": [m for m in json.loads(sys.argv[2]) if importlib.util.find_spec(m) is not None],
    "mlcycle": mlcycle.__file__,
    "pod_operator": importlib.util.find_spec("airflow.providers.cncf.kubernetes.operators.pod") is not None,
    "step_operators": sorted({t.task_type for d in bag.dags.values() for t in d.tasks}),
}))
"""
