"""The images, proven without building them: the Dockerfile's stages, user, entrypoint and lock-based installs
agree with the pods, the CLI and the locks (requirements-task.lock, requirements-airflow.lock)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

import pytest

from mlcycle.orchestration.kubernetes import RUN_AS_USER
from mlcycle.settings import KubernetesSettings
from mlcycle_dev.locks import AIRFLOW, LOCKED_SETS, TASK
from support.dockerfile import Stage, parse_dockerfile, shipped
from support.kube_checks import REPO
from support.step_pods import dag_side_env


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], dict[str, Stage], list[Stage]]:
    global_args, stages = parse_dockerfile((REPO / "Dockerfile").read_text())
    return global_args, {s.name: s for s in stages}, stages


@pytest.fixture(scope="module")
def lock() -> str:
    return (REPO / TASK.file).read_text()


PROJECT_INSTALL = (
    'uv pip install --no-deps --prefix /out . && rm /out/.lock && cp -a /out/. "$VIRTUAL_ENV"/ && uv pip check'
)


def test_multi_stage_with_the_task_image_last(dockerfile: tuple) -> None:
    _, by_name, stages = dockerfile
    assert [s.name for s in stages] == [
        "uv", "task-lock", "builder", "project", "airflow-builder", "airflow-project", "airflow", "task-runtime",
        "task-spark", "task",
    ]  # fmt: skip
    # `docker build .` without --target builds the last stage: the task image.
    task, airflow = shipped(by_name, "task"), by_name["airflow"]
    assert by_name["task"].base == by_name["task-spark"].base == "task-runtime"
    assert task.base == airflow.base == by_name["uv"].base == "${PYTHON_IMAGE}"
    assert {by_name[name].base for name in ("task-lock", "builder", "airflow-builder")} == {"uv"}
    assert (by_name["project"].base, by_name["airflow-project"].base) == ("builder", "airflow-builder")
    assert task.all("COPY")[:2] == ["--from=builder /opt/mlcycle /opt/mlcycle", "--from=project /out/ /opt/mlcycle/"]
    assert airflow.all("COPY") == [
        "--from=airflow-builder /opt/airflow-env /opt/airflow-env",
        "--from=airflow-project /out/ /opt/airflow-env/",
    ]
    for image in (task, airflow, shipped(by_name, "task-spark")):
        assert not any("pip install" in run or "uv " in run for run in image.all("RUN")), "no build tools"


def test_each_image_installs_its_own_lock_with_hashes(dockerfile: tuple) -> None:
    """Two environments: the task image from requirements-task.lock (no Airflow), the Airflow image from
    requirements-airflow.lock (no ML library); every package at its locked version and sha256, nothing resolved."""
    _, by_name, _ = dockerfile
    assert by_name["task-lock"].all("COPY") == [f"{TASK.file} ./"]
    assert "uv pip install --no-deps --require-hashes -r /tmp/rest.txt" in by_name["builder"].all("RUN")
    assert by_name["airflow-builder"].all("COPY") == [f"{AIRFLOW.file} ./"]
    assert by_name["airflow-builder"].all("RUN")[-1] == f"uv pip install --no-deps --require-hashes -r {AIRFLOW.file}"
    copied = " ".join(arg for stage in by_name.values() for arg in stage.all("COPY"))
    assert "requirements.lock" not in copied, "the all-in-one lock (.venv's) reaches no image"
    # The project alone, into /out, checked against the stack it joins (`uv pip check`).
    for name in ("project", "airflow-project"):
        assert by_name[name].all("RUN") == [PROJECT_INSTALL], name


def test_the_layer_order_keeps_the_stack_cached_across_commits(dockerfile: tuple) -> None:
    """The stack (gigabytes) is a layer of its own that only a lock change rebuilds: the project's files are copied
    in stages built on it and shipped as a second, small layer; what changes with every commit (the git sha in
    labels, MLCYCLE_CODE_VERSION and a revision file) comes after them. torch's layer reads only torch's lines of
    the lock (a bump of another package keeps it)."""
    _, by_name, _ = dockerfile
    for name in ("builder", "airflow-builder"):
        assert not any("include/mlcycle" in arg or "pyproject" in arg for arg in by_name[name].all("COPY")), name
    for name, venv in (("task", "/opt/mlcycle"), ("airflow", "/opt/airflow-env")):
        steps = [(kw, arg) for kw, arg in shipped(by_name, name).instructions]
        per_commit = steps.index(("ARG", "GIT_SHA=unknown"))
        assert not [s for s in steps[:per_commit] if s[0] == "LABEL" or "GIT_SHA" in s[1]], name
        # After it, one RUN of a few bytes that every engine keys on the argument (buildah keys LABEL and ENV
        # on their parent and text alone: without a RUN first, it keeps an earlier commit's labels), then metadata.
        layers_after = [s for s in steps[per_commit:] if s[0] in ("RUN", "COPY", "ADD")]
        assert layers_after == [("RUN", f"printf '%s\\n' \"${{GIT_SHA}}\" > {venv}/REVISION")], layers_after
        assert ("ENV", "MLCYCLE_CODE_VERSION=${GIT_SHA}") in steps[per_commit:]
    builder = [f"{kw} {arg}" for kw, arg in by_name["builder"].instructions]
    torch_copy = builder.index("COPY --from=task-lock /lock/torch-version /lock/torch.txt /tmp/")
    assert builder.index("COPY --from=task-lock /lock/rest.txt /tmp/") > torch_copy + 1


@pytest.mark.parametrize("target", ["task", "task-spark"])
def test_non_root_numeric_user_matches_the_pods(dockerfile: tuple, target: str) -> None:
    _, by_name, _ = dockerfile
    task = shipped(by_name, target)
    users = task.all("USER")
    # The Spark build switches to root for its Java install only (its stage then returns to the pods' uid).
    assert users[-1] == f"{RUN_AS_USER}:{RUN_AS_USER}" and set(users) <= {users[-1], "root"}, users
    assert f"--uid {RUN_AS_USER}" in " ".join(task.all("RUN"))
    chart_values = (REPO / "helm" / "mlcycle" / "values.yaml").read_text()
    assert f"runAsUser: {RUN_AS_USER}" in chart_values


def test_the_entrypoint_is_the_mlcycle_cli(dockerfile: tuple) -> None:
    _, by_name, _ = dockerfile
    assert by_name["task"].all("ENTRYPOINT") == ['["mlcycle"]']
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mlcycle"] == "mlcycle.cli:entrypoint"


def test_torch_comes_from_the_lock(dockerfile: tuple, lock: str) -> None:
    _, by_name, _ = dockerfile
    cut = " ".join(by_name["task-lock"].all("RUN"))
    # The build reads torch's version from the lock with sed: run that very expression on the lock.
    expression = re.search(rf"sed -n '([^']+)' {re.escape(TASK.file)}", cut)
    assert expression, "the build reads torch's version from the task lock"
    out = subprocess.run(["sed", "-n", expression[1], str(REPO / TASK.file)], capture_output=True, text=True)
    assert out.stdout.split() == ["2.13.0"], out
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires.startswith(">=3.11")


def test_cpu_and_cuda_builds_from_one_argument(dockerfile: tuple) -> None:
    _, by_name, _ = dockerfile
    builder = by_name["builder"]
    assert "VARIANT=cpu" in builder.all("ARG")
    run = " ".join(builder.all("RUN"))
    assert re.search(r"cpu\|spark\)\s+uv pip install --no-deps --require-hashes \$torch_source -r /tmp/torch.txt", run)
    assert re.search(r'cuda\)\s+uv pip install "torch==\$\(cat /tmp/torch-version\)"', run)
    assert 'echo "VARIANT must be cpu, cuda or spark' in run
    assert "io.mlcycle.variant" in " ".join(shipped(by_name, "task").all("LABEL"))


def test_the_image_finds_its_use_cases(dockerfile: tuple) -> None:
    _, by_name, _ = dockerfile
    task = shipped(by_name, "task")
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
    spark = re.search(r"^image-spark:.*?(?=^\S|\Z)", makefile, re.M | re.S)
    assert spark and "mlcycle_dev.containers.build --variant spark" in spark[0]
    assert re.search(r"^\.PHONY:.*\bimage\b.*\bimage-cuda\b.*\bimage-spark\b", makefile, re.M)
    driver = (REPO / "dev" / "mlcycle_dev" / "containers" / "build.py").read_text()
    assert (
        '"--target", TASK_TARGETS[variant]' in driver and '"--target", "airflow"' in driver and '-{variant}"' in driver
    )
    from mlcycle_dev.containers.build import TASK_TARGETS

    assert TASK_TARGETS == {"cpu": "task", "cuda": "task", "spark": "task-spark"}


def test_a_release_build_refuses_a_base_without_digest() -> None:
    """L7: both images build on PYTHON_IMAGE; RELEASE=1 refuses it by tag before any engine is asked (and
    accepts the Dockerfile's default, pinned by digest)."""
    from mlcycle_dev.containers.build import base_images, unpinned

    assert unpinned(base_images({})) == []
    assert unpinned(base_images({"PYTHON_IMAGE": "python:3.11-slim-bookworm"})) == [
        "PYTHON_IMAGE=python:3.11-slim-bookworm"
    ]
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_IMAGE"}
    done = subprocess.run(
        [sys.executable, "-m", "mlcycle_dev.containers.build", "--release"],
        cwd=REPO, env={**env, "PYTHON_IMAGE": "python:3.11-slim-bookworm", "MLCYCLE_CONTAINER_ENGINE": "none-needed"},
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 1
    assert "RELEASE=1 builds only on bases pinned by digest; unpinned: PYTHON_IMAGE=" in done.stderr


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


@pytest.mark.parametrize("locked", LOCKED_SETS, ids=lambda s: s.file)
def test_every_locked_package_carries_its_hash(locked) -> None:
    """L7: a package swapped on the index (same name and version, other bytes) must fail the install."""
    found = list(_LOCKED.finditer((REPO / locked.file).read_text()))
    assert len(found) > 100, "the lock lists the whole stack"
    unhashed = [m["name"] for m in found if not re.search(r"--hash=sha256:[0-9a-f]{64}", m["rest"])]
    assert unhashed == [], f"{locked.file} has no hash for {unhashed[:5]}... (make lock: --generate-hashes)"
    assert "--generate-hashes" in (REPO / "dev" / "mlcycle_dev" / "locks.py").read_text(), "make lock keeps them"


def test_the_task_image_base_is_pinned_by_digest(dockerfile: tuple) -> None:
    """L7: the default base of the task image is an immutable digest, not a tag that moves under a rebuild."""
    global_args, _, _ = dockerfile
    assert _DIGEST.search(global_args["PYTHON_IMAGE"]), f"PYTHON_IMAGE={global_args['PYTHON_IMAGE']} has no digest"
    assert global_args["PYTHON_IMAGE"].startswith("python:3.11-slim-bookworm@")
