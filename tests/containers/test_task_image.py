"""The built task image (issue 13, item 1): the CLI runs as uid 10001 with a read-only root filesystem, no
capabilities and no privilege escalation, and its locked environment is consistent (`uv pip check`)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from mlcycle.orchestration.kubernetes import RUN_AS_USER
from mlcycle_dev.containers.pods import RESTRICTED, run_container
from mlcycle_dev.containers.runtime import Engine

from .conftest import Images


def test_the_image_runs_as_the_pods_numeric_user(engine: Engine, images: Images) -> None:
    user = engine.run("image", "inspect", "--format", "{{.Config.User}}", images.task).stdout.strip()
    assert user == f"{RUN_AS_USER}:{RUN_AS_USER}"


def test_the_cli_answers_under_the_restricted_profile(engine: Engine, images: Images) -> None:
    done = run_container(engine, images.task, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: mlcycle")


def test_every_step_imports_its_libraries_on_a_read_only_root(engine: Engine, images: Images) -> None:
    """The heavy imports of the steps (torch, MLflow, GX, Evidently, matplotlib) need no writable path but
    the pods' scratch folder (a tmpfs here, the emptyDir in a pod)."""
    code = "import torch, mlflow, great_expectations, evidently, matplotlib.pyplot, sklearn, pyarrow; print('ok')"
    flags = ("-e", "HOME=/tmp", "-e", "MPLCONFIGDIR=/tmp/matplotlib", "--tmpfs", "/tmp")
    done = engine.run(
        "run", "--rm", *RESTRICTED, *flags, "--entrypoint", "python", images.task, "-c", code, check=False
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_uv_pip_check_passes_inside(engine: Engine, images: Images) -> None:
    """No build tool ships in the image: this machine's uv binary is mounted read-only to check it."""
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    assert Path(uv).is_file(), "uv is in .venv (make install)"
    done = run_container(
        engine, images.task, "pip", "check", "--no-cache", "--python", "/opt/mlcycle/bin/python",
        volumes=(f"{uv}:/usr/local/bin/uv:ro", "/tmp"), entrypoint="/usr/local/bin/uv",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All installed packages are compatible" in done.stdout + done.stderr


#: Imports every module of the mlcycle package but Airflow's side (the DAG factories, and the lifecycle page the
#: api-server mounts: the `steps-without-airflow` contract of pyproject.toml) and reports what failed and
#: whether Airflow (or the Kubernetes client that comes with its provider) is installed or was loaded.
_IMPORT_ALL = """
import importlib, importlib.util, json, pkgutil, sys, mlcycle
failed = {}
for module in pkgutil.walk_packages(mlcycle.__path__, "mlcycle."):
    if not module.name.startswith(("mlcycle.orchestration", "mlcycle.lifecycle")):
        try:
            importlib.import_module(module.name)
        except Exception as exc:
            failed[module.name] = repr(exc)
print(json.dumps({"failed": failed,
                  "installed": [m for m in ("airflow", "kubernetes") if importlib.util.find_spec(m) is not None],
                  "orchestration": importlib.util.find_spec("mlcycle.orchestration") is not None}))
"""


def test_the_image_has_no_airflow_and_every_step_module_imports_without_it(engine: Engine, images: Images) -> None:
    """Two environments (ADR 0009): the task image holds the steps' stack only. Every module it can run imports
    there (found by running: a step path that reached Airflow would fail here), and Airflow is not installed."""
    flags = ("-e", "HOME=/tmp", "-e", "MPLCONFIGDIR=/tmp/matplotlib", "--tmpfs", "/tmp")
    done = engine.run(
        "run", "--rm", *RESTRICTED, *flags, "--entrypoint", "python", images.task, "-c", _IMPORT_ALL, check=False
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["installed"] == [], f"the task image holds {report['installed']}"
    assert report["failed"] == {}
    assert report["orchestration"], "the package is whole; only its Airflow side cannot be imported here"
