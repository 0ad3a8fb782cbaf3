"""The built task image (issue 13, item 1): the CLI runs as uid 10001 with a read-only root filesystem, no
capabilities and no privilege escalation, and its locked environment is consistent (`uv pip check`)."""

from __future__ import annotations

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
