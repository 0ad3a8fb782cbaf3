"""The task image, proven without building it (no Docker engine here): the Dockerfile's stages, user,
entrypoint and lock-based install agree with the pods, the CLI and requirements.lock."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field

import pytest

from mlcycle.orchestration.kubernetes import RUN_AS_USER
from mlcycle.settings import KubernetesSettings
from support.kube_checks import REPO
from support.step_pods import dag_side_env


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and stages; continuation lines joined and comment lines dropped, as Docker does."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current = f"{current} {line[:-1].strip()}" if line.endswith("\\") else f"{current} {line}"
        if not line.endswith("\\"):
            logical.append(current.strip())
            current = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arg = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.match(r"^(\S+)\s+AS\s+(\S+)$", arg, re.I)
            assert match, f"every stage is named: {line}"
            stages.append(Stage(match[1], match[2]))
        elif not stages and keyword == "ARG":
            name, _, default = arg.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((keyword, arg))
    return global_args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], dict[str, Stage], list[Stage]]:
    global_args, stages = parse_dockerfile((REPO / "Dockerfile").read_text())
    return global_args, {s.name: s for s in stages}, stages


@pytest.fixture(scope="module")
def lock() -> str:
    return (REPO / "requirements.lock").read_text()


def test_multi_stage_with_the_task_image_last(dockerfile: tuple) -> None:
    _, by_name, stages = dockerfile
    assert [s.name for s in stages] == ["builder", "airflow", "task"]
    # `docker build .` without --target builds the last stage: the task image.
    task = by_name["task"]
    assert task.base == "${PYTHON_IMAGE}" == by_name["builder"].base
    assert task.all("COPY")[0].startswith("--from=builder /opt/mlcycle")
    assert not any("pip install" in run or "uv " in run for run in task.all("RUN")), "no build tools in the image"


def test_non_root_numeric_user_matches_the_pods(dockerfile: tuple) -> None:
    _, by_name, _ = dockerfile
    task = by_name["task"]
    assert task.all("USER") == [f"{RUN_AS_USER}:{RUN_AS_USER}"]
    assert f"--uid {RUN_AS_USER}" in " ".join(task.all("RUN"))
    chart_values = (REPO / "helm" / "mlcycle" / "values.yaml").read_text()
    assert f"runAsUser: {RUN_AS_USER}" in chart_values


def test_the_entrypoint_is_the_mlcycle_cli(dockerfile: tuple) -> None:
    _, by_name, _ = dockerfile
    assert by_name["task"].all("ENTRYPOINT") == ['["mlcycle"]']
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mlcycle"] == "mlcycle.cli:main"


def test_versions_come_from_the_lock(dockerfile: tuple, lock: str) -> None:
    global_args, by_name, _ = dockerfile
    builder = " ".join(by_name["builder"].all("RUN"))
    assert "requirements.lock ./" in by_name["builder"].all("COPY")
    assert "--constraint /tmp/constraints.txt -r pyproject.toml" in builder, "dependencies at the lock's versions"
    assert "--no-deps --constraint /tmp/constraints.txt ." in builder, "then the project, in its own layer"
    # The builder reads torch's version from the lock with sed: run that very expression on the lock.
    expression = re.search(r"sed -n '([^']+)' requirements.lock", builder)
    assert expression, "the builder reads torch's version from the lock"
    out = subprocess.run(["sed", "-n", expression[1], str(REPO / "requirements.lock")], capture_output=True, text=True)
    assert out.stdout.split() == ["2.13.0"], out
    airflow = re.search(r"^apache-airflow==(\S+)( \\)?$", lock, re.M)
    assert airflow and global_args["AIRFLOW_IMAGE"] == f"apache/airflow:{airflow[1]}-python3.11"
    assert global_args["PYTHON_IMAGE"].startswith("python:3.11-")
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires.startswith(">=3.11")


def test_cpu_and_cuda_builds_from_one_argument(dockerfile: tuple) -> None:
    _, by_name, _ = dockerfile
    builder = by_name["builder"]
    assert "VARIANT=cpu" in builder.all("ARG")
    run = " ".join(builder.all("RUN"))
    assert re.search(r"cpu\)\s+cp requirements.lock", run) and re.search(r"cuda\)\s+cp /tmp/constraints-without", run)
    assert 'echo "VARIANT must be cpu or cuda' in run
    assert "io.mlcycle.variant" in " ".join(by_name["task"].all("LABEL"))


def test_the_image_finds_its_use_cases(dockerfile: tuple) -> None:
    _, by_name, _ = dockerfile
    task = by_name["task"]
    assert "include/usecases /opt/mlcycle/usecases" in task.all("COPY")
    env = " ".join(task.all("ENV"))
    assert "MLCYCLE_USECASES_DIR=/opt/mlcycle/usecases" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # the root filesystem is read-only in the pods


def test_dockerignore_keeps_local_state_out(dockerfile: tuple) -> None:
    _, _, stages = dockerfile
    rules = [r for r in (REPO / ".dockerignore").read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*", "an allowlist: new local files (.venv, .mlcycle, mlflow.db) stay out by default"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    sources = set()
    for stage in stages:
        for arg in stage.all("COPY"):
            words = [w for w in arg.split() if not w.startswith("--")]
            if not arg.startswith("--from"):
                sources |= {w.split("/")[0] for w in words[:-1]}
    assert sources == allowed, "everything copied is in the context, nothing else is"


def test_makefile_builds_both_variants() -> None:
    makefile = (REPO / "Makefile").read_text()
    image = re.search(r"^image:.*?(?=^\S)", makefile, re.M | re.S)
    cuda = re.search(r"^image-cuda:.*?(?=^\S|\Z)", makefile, re.M | re.S)
    assert image and cuda, "make image / make image-cuda"
    assert "mlcycle_dev.containers.build --variant cpu" in image[0]
    assert "mlcycle_dev.containers.build --variant cuda" in cuda[0]
    assert re.search(r"^\.PHONY:.*\bimage\b.*\bimage-cuda\b", makefile, re.M)
    driver = (REPO / "dev" / "mlcycle_dev" / "containers" / "build.py").read_text()
    assert '"--target", "task"' in driver and '"--target", "airflow"' in driver and '-{variant}"' in driver


def test_a_release_build_refuses_a_base_without_digest() -> None:
    """L7: AIRFLOW_IMAGE's digest cannot be resolved here, so it is a tag by default: RELEASE=1 refuses it
    before any engine is asked (and accepts it pinned)."""
    from mlcycle_dev.containers.build import base_images, unpinned

    assert unpinned(base_images({})) == ["AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11"]
    pinned = {"AIRFLOW_IMAGE": "apache/airflow:3.3.2-python3.11@sha256:" + "0" * 64}
    assert unpinned(base_images(pinned)) == []
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON_IMAGE", "AIRFLOW_IMAGE")}
    done = subprocess.run(
        [sys.executable, "-m", "mlcycle_dev.containers.build", "--release"],
        cwd=REPO, env={**env, "MLCYCLE_CONTAINER_ENGINE": "none-needed"}, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 1
    assert "RELEASE=1 builds only on bases pinned by digest; unpinned: AIRFLOW_IMAGE=" in done.stderr


def test_dags_pick_the_image_per_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's environment names the images (by tag here; by digest in production), never the DAG files."""
    for name, value in dag_side_env().items():
        monkeypatch.setenv(name, value)
    settings = KubernetesSettings.from_env()
    assert settings.image.startswith("ghcr.io/mlcycle/mlcycle-task:")
    assert settings.image_cuda == settings.image + "-cuda"
    assert "mlcycle-task" not in "".join(p.read_text() for p in (REPO / "dags").glob("*.py"))


#: One locked requirement: `name==version \` then its `--hash=sha256:...` lines (uv pip compile --generate-hashes).
_LOCKED = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)(?P<rest>(?:[ \t]*\\\n[ \t]+--hash=\S+)*)", re.M
)
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def test_every_locked_package_carries_its_hash(lock: str) -> None:
    """L7: a package swapped on the index (same name and version, other bytes) must fail the install."""
    locked = list(_LOCKED.finditer(lock))
    assert len(locked) > 200, "the lock lists the whole stack"
    unhashed = [m["name"] for m in locked if not re.search(r"--hash=sha256:[0-9a-f]{64}", m["rest"])]
    assert unhashed == [], f"requirements.lock has no hash for {unhashed[:5]}... (make lock: --generate-hashes)"
    assert "--generate-hashes" in (REPO / "Makefile").read_text(), "make lock keeps the hashes"


def test_the_task_image_base_is_pinned_by_digest(dockerfile: tuple) -> None:
    """L7: the default base of the task image is an immutable digest, not a tag that moves under a rebuild."""
    global_args, _, _ = dockerfile
    assert _DIGEST.search(global_args["PYTHON_IMAGE"]), f"PYTHON_IMAGE={global_args['PYTHON_IMAGE']} has no digest"
    assert global_args["PYTHON_IMAGE"].startswith("python:3.11-slim-bookworm@")
