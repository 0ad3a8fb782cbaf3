"""Test support for the inputs drills (issue 12, L1 and M4): use-case folders with one broken use case, and the
DAG folder parsed in a fresh interpreter the way Airflow's dag processor parses it (optionally into its DB)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from mlcycle.config import DEFAULT_USECASES_DIR
from mlcycle.settings import REPO_ROOT, embedded_environment

DAGS = REPO_ROOT / "dags"


def usecase_copy(root: Path, name: str, change: Any = None) -> Path:
    """A copy of yarnit named `name` under `root`, its usecase.yaml changed by `change(data)`; returns the file."""
    folder = root / name
    shutil.copytree(DEFAULT_USECASES_DIR / "yarnit", folder)
    path = folder / "usecase.yaml"
    data = yaml.safe_load(path.read_text())
    data["name"] = name
    if change is not None:
        change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


#: Ways to break a usecase.yaml: (what the change is, the change, what the error says).
BREAKAGES: dict[str, tuple[Any, str]] = {
    "typo": (lambda data: data["split"].update(window_dayz=14), "split.window_dayz: Extra inputs are not permitted"),
    "cron_out_of_range": (lambda data: data["schedule"].update(training="99 * * * *"), "schedule.training"),
}


def one_good_one_broken(root: Path, breakage: str = "typo") -> tuple[str, Path]:
    """Use cases `yarnit` (good) and `churn` (broken as BREAKAGES[breakage] says); returns ("yarnit", churn's
    usecase.yaml)."""
    usecase_copy(root, "yarnit")
    broken = usecase_copy(root, "churn", BREAKAGES[breakage][0])
    return "yarnit", broken


# Parses the DAG folder as the dag processor does; with a second argument, also records the result in Airflow's
# DB the way the dag processor does (sync_bag_to_db) and reads back what the UI and the scheduler see.
_PARSE = """
import json, sys
from pathlib import Path
from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
folder = Path(sys.argv[1])
bag = DagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")
out = {"dag_ids": sorted(bag.dag_ids), "errors": {k: str(v) for k, v in bag.import_errors.items()}}
if len(sys.argv) > 2:
    from sqlalchemy import select
    from airflow.models.dag import DagModel
    from airflow.models.errors import ParseImportError
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.utils.session import create_session
    DagBundlesManager().sync_bundles_to_db()  # the dag processor registers its bundles first
    sync_bag_to_db(bag, "dags-folder", None)
    with create_session() as session:
        out["db_dags"] = {d.dag_id: {"stale": d.is_stale, "import_errors": d.has_import_errors}
                          for d in session.scalars(select(DagModel))}
        out["db_errors"] = {e.filename: e.stacktrace for e in session.scalars(select(ParseImportError))}
print(json.dumps(out))
"""


def parse_dags(usecases: Path, home: Path, *, into_db: bool = False) -> dict[str, Any]:
    """The DAG folder parsed with MLCYCLE_USECASES_DIR=usecases in a fresh interpreter (and Airflow home)."""
    env = {**os.environ, **embedded_environment(home), "MLCYCLE_USECASES_DIR": str(usecases)}
    if into_db:
        subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True
        )
    argv = [sys.executable, "-c", _PARSE, str(DAGS), *(["db"] if into_db else [])]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result
