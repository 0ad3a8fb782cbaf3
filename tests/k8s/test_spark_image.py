"""The Spark build of the task image (Dockerfile target task-spark, `make image-spark`), proven without building it:
it agrees with the SparkApplications (paths, Spark version) and with the lock, and its entrypoint turns the
arguments Spark's Kubernetes backend gives a driver or an executor pod into the right process."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from mlcycle.orchestration.spark import MAIN_APPLICATION_FILE, PYSPARK_PYTHON, SPARK_VERSION, VENV
from mlcycle_dev.locks import TASK
from support.dockerfile import Stage, parse_dockerfile, shipped
from support.kube_checks import REPO

ENTRYPOINT = REPO / "docker" / "spark-entrypoint.sh"


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    _, parsed = parse_dockerfile((REPO / "Dockerfile").read_text())
    by_name = {s.name: s for s in parsed}
    return {"runtime": by_name["task-runtime"], "spark": shipped(by_name, "task-spark"), "builder": by_name["builder"]}


def _env(stage: Stage) -> dict[str, str]:
    text = " ".join(stage.all("ENV"))
    return dict(re.findall(r"([A-Z_]+)=(\S+)", text))


def test_the_spark_build_matches_the_spark_applications(stages: dict[str, Stage]) -> None:
    spark = stages["spark"]
    env = _env(spark)
    assert env["VIRTUAL_ENV"] == VENV
    assert env["SPARK_HOME"] == f"{VENV}/lib/python3.11/site-packages/pyspark", "pyspark's folder in the venv"
    assert env["PYSPARK_PYTHON"] == PYSPARK_PYTHON == f"{VENV}/bin/python"
    copied = dict(c.split() for c in spark.all("COPY") if c.startswith("docker/"))
    assert os.access(ENTRYPOINT, os.X_OK)
    assert spark.all("ENTRYPOINT")[-1] == f'["{copied["docker/spark-entrypoint.sh"]}"]'
    # The applications' main file is the CLI wrapper the image holds, in the venv's bin/ (not on a package path).
    assert MAIN_APPLICATION_FILE == f"local://{copied['docker/mlcycle-step.py']}"
    assert MAIN_APPLICATION_FILE.endswith(".py"), "spark-submit runs a Python application only from a .py file"
    assert spark.all("USER")[-1] == "10001:10001", "root only to install Java, the image runs as the pods' uid"


def test_java_only_in_the_spark_build_and_torch_for_cpu_in_it(stages: dict[str, Stage]) -> None:
    runtime = " ".join(stages["runtime"].all("RUN"))
    assert "openjdk" not in runtime, "the CPU image (every step pod) carries no JVM"
    spark_runs = stages["spark"].all("RUN")
    assert any(re.search(r"apt-get install .*openjdk-17-jre-headless", r) for r in spark_runs)
    assert "java -version" in spark_runs[-1] and "spark-kubernetes_" in spark_runs[-1], (
        "the build proves Java and K8s jars"
    )
    builder = " ".join(stages["builder"].all("RUN"))
    assert "cpu|spark) uv pip install --no-deps --require-hashes" in builder


def test_s3a_is_a_build_input_never_a_silent_gap(stages: dict[str, Stage]) -> None:
    """hadoop-aws must match pyspark's Hadoop (the build reads it from pyspark's jars) and come with the SDK bundle;
    SPARK_S3A=1 refuses a build without them, and the image's label says which build it is."""
    spark = stages["spark"]
    assert "SPARK_S3A=0" in spark.all("ARG")
    s3a = " ".join(r for r in spark.all("RUN") if "SPARK_S3A" in r)
    assert "hadoop-client-api-*.jar" in s3a and "hadoop-aws-$hadoop.jar" in s3a and "bundle-2.*.jar" in s3a
    assert "exit 1" in s3a
    assert 'io.mlcycle.s3a="${SPARK_S3A}"' in " ".join(spark.all("LABEL"))
    import pyspark

    hadoop = sorted(Path(pyspark.__file__).parent.glob("jars/hadoop-client-api-*.jar"))
    assert len(hadoop) == 1, hadoop
    version = hadoop[0].name.removeprefix("hadoop-client-api-").removesuffix(".jar")
    readme = (REPO / "docker" / "spark-jars" / "README.md").read_text()
    assert f"{version} for pyspark {pyspark.__version__}" in readme, "the README names the hadoop-aws to fetch"


def test_the_spark_version_is_the_locked_pyspark() -> None:
    """The SparkApplications' sparkVersion is the Spark the image runs: pyspark's locked version."""
    locked = re.search(r"^pyspark==(\S+)", (REPO / TASK.file).read_text(), re.M)
    if locked is None:
        pytest.skip(f"{TASK.file} has no pyspark yet (issue 17's spark-steps part adds it to the task extra)")
    assert SPARK_VERSION == locked[1]


def _stub(folder: Path, name: str) -> Path:
    """An executable that records its arguments, one per line, in <folder>/<name>.args."""
    path = folder / name
    path.write_text(f'#!/bin/bash\nprintf "%s\\n" "$@" > "{folder}/{name}.args"\n')
    path.chmod(0o755)
    return path


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "SPARK_HOME": str(tmp_path / "spark")}
    return subprocess.run(
        ["bash", str(ENTRYPOINT), *args], env={**base, **env}, capture_output=True, text=True, check=False
    )


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    (tmp_path / "bin").mkdir()
    (tmp_path / "spark" / "bin").mkdir(parents=True)
    _stub(tmp_path / "spark" / "bin", "spark-submit")
    _stub(tmp_path / "bin", "java")
    _stub(tmp_path / "bin", "mlcycle")
    return tmp_path


def _args(folder: Path, name: str) -> list[str]:
    return (folder / f"{name}.args").read_text().splitlines()


def test_a_driver_pod_runs_spark_submit_in_client_mode(stubs: Path) -> None:
    argv = ["--properties-file", "/opt/spark/conf/spark.properties", "--class", "org.apache.spark.deploy.PythonRunner"]
    argv += [MAIN_APPLICATION_FILE, "score", "--usecase", "yarnit_spark", "--partition", "2026-09-14"]
    done = _run(stubs, "driver", *argv, SPARK_DRIVER_BIND_ADDRESS="10.1.2.3")
    assert done.returncode == 0, done.stderr
    assert _args(stubs / "spark" / "bin", "spark-submit") == [
        "--conf", "spark.driver.bindAddress=10.1.2.3",
        "--conf", "spark.executorEnv.SPARK_DRIVER_POD_IP=10.1.2.3",
        "--deploy-mode", "client",
        *argv,
    ]  # fmt: skip


def test_an_executor_pod_runs_the_executor_backend(stubs: Path) -> None:
    env = {
        "SPARK_JAVA_OPT_0": "-Dspark.driver.port=7078",
        "SPARK_JAVA_OPT_1": "-Djava.io.tmpdir=/tmp",
        "SPARK_EXECUTOR_MEMORY": "3g",
        "SPARK_DRIVER_URL": "spark://CoarseGrainedScheduler@driver-svc:7078",
        "SPARK_EXECUTOR_ID": "2",
        "SPARK_EXECUTOR_CORES": "2",
        "SPARK_APPLICATION_ID": "spark-app-1",
        "SPARK_EXECUTOR_POD_IP": "10.1.2.4",
        "SPARK_RESOURCE_PROFILE_ID": "0",
        "SPARK_EXECUTOR_POD_NAME": "yarnit-spark-score-exec-2",
    }
    done = _run(stubs, "executor", **env)
    assert done.returncode == 0, done.stderr
    args = _args(stubs / "bin", "java")
    assert args[:4] == ["-Dspark.driver.port=7078", "-Djava.io.tmpdir=/tmp", "-Xms3g", "-Xmx3g"]
    assert args[4:6] == ["-cp", f"{stubs / 'spark'}/conf:{stubs / 'spark'}/jars/*"]
    assert args[6] == "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend"
    options = dict(zip(args[7::2], args[8::2], strict=True))
    assert options == {
        "--driver-url": env["SPARK_DRIVER_URL"], "--executor-id": "2", "--cores": "2", "--app-id": "spark-app-1",
        "--hostname": "10.1.2.4", "--resourceProfileId": "0", "--podName": "yarnit-spark-score-exec-2",
    }  # fmt: skip


def test_anything_else_is_an_mlcycle_command(stubs: Path) -> None:
    done = _run(stubs, "validate", "--usecase", "yarnit_spark", "--partition", "2026-09-14")
    assert done.returncode == 0, done.stderr
    assert _args(stubs / "bin", "mlcycle") == ["validate", "--usecase", "yarnit_spark", "--partition", "2026-09-14"]


def test_without_spark_home_it_says_which_image_it_is_not(stubs: Path) -> None:
    done = subprocess.run(
        ["bash", str(ENTRYPOINT), "driver"], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True
    )
    assert done.returncode != 0 and "this is not the Spark build of the task image" in done.stderr


def test_the_main_file_is_the_mlcycle_cli() -> None:
    """`python mlcycle-step.py ARGS` is `mlcycle ARGS`: same output, same exit code (a usage error here: 64)."""
    import sys

    mlcycle = Path(sys.executable).parent / "mlcycle"
    for argv in (["--help"], ["score", "--usecase", "yarnit", "--partition", "not-a-day"]):
        wrapped = subprocess.run([sys.executable, str(STEP), *argv], capture_output=True, text=True, check=False)
        direct = subprocess.run([str(mlcycle), *argv], capture_output=True, text=True, check=False)
        assert (wrapped.returncode, wrapped.stdout) == (direct.returncode, direct.stdout), argv
    assert direct.returncode == 64


STEP = REPO / "docker" / "mlcycle-step.py"
