"""A Spark step in the Spark image, run as its SparkApplication's driver runs it; its result against the local engine.

`python -m mlcycle_dev.containers.spark_driver [--image REF]` (after `make image-spark`; a documented check, not in
`make test`: CI builds the CPU image only). On one tiny YarnIt day (generated and ingested by the local CLI):

1. the SparkApplication of the scoring DAG's `validate --serving` is rendered by the launcher
   (`mlcycle.orchestration.spark.spark_application`; its one template, the partition, filled in);
2. the image runs it as the Spark operator's driver pod would, through the image's entrypoint: `driver` +
   spark-submit's arguments (`--class org.apache.spark.deploy.PythonRunner <mainApplicationFile> <arguments>`),
   the application's `sparkConf` and driver env, Spark in local mode (`local[1]`: no cluster here), uid 10001,
   read-only root, tmpfs for /tmp and Spark's local dir, all capabilities dropped, no new privileges, and
   KPO's `/airflow/xcom` folder, where the CLI writes its JSON result as in a pod;
3. the local engine validates the same partition (a copy of the store) and the figures both engines report must
   be equal (verdict, profile, expectations evaluated, failures) and the validated data identical.

Prints both results' figures, the exit codes and the wall time; exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mlcycle.config import DEFAULT_USECASES_DIR, USECASES_ENV, Spark, load_usecase
from mlcycle.settings import IMAGE_SPARK_ENV, embedded_environment
from mlcycle.specs.catalog import ValidateOptions
from mlcycle.specs.names import Step
from mlcycle_dev.containers.build import DEFAULT_REPO, git_sha
from mlcycle_dev.containers.runtime import detect
from mlcycle_dev.demo_spark import USECASE, run_cli, spark_usecases

DAY = dt.date(2026, 9, 6)
#: Sessions of the day: about 800 rows, over the contract's 500-row floor (300 gives ~360: a rejected day).
ROWS = 700
XCOM = "/airflow/xcom"
#: Where the container sees the use cases (the Spark copy); the store is mounted at its own path.
USECASES_IN_CONTAINER = "/usecases"


def application(usecases: Path, image: str) -> dict[str, Any]:
    """The SparkApplication of the scoring DAG's validate for DAY (kubernetes-mode launcher, partition rendered)."""
    os.environ.setdefault(IMAGE_SPARK_ENV, image)
    from mlcycle.orchestration.spark import spark_application
    from mlcycle.orchestration.spec import PARTITION, StepSpec
    from mlcycle.settings import KubernetesSettings

    usecase = load_usecase(usecases / USECASE / "usecase.yaml")
    spec = StepSpec(Step.VALIDATE, usecase, ValidateOptions.for_task(serving=True))
    rendered = spark_application(spec, KubernetesSettings.from_env())
    rendered["spec"]["arguments"] = [str(DAY) if a == PARTITION else a for a in rendered["spec"]["arguments"]]
    return rendered


def driver_command(app: dict[str, Any], env: dict[str, str], work: Path, xcom: Path) -> list[str]:
    """`podman run` of the image's entrypoint with the arguments Spark gives a driver pod (client mode, local[1])."""
    spec = app["spec"]
    driver_env = {item["name"]: item["value"] for item in spec["driver"]["env"]}
    environment = {**env, **driver_env, USECASES_ENV: USECASES_IN_CONTAINER, "SPARK_DRIVER_BIND_ADDRESS": "127.0.0.1"}
    conf = {**spec["sparkConf"], "spark.driver.memory": spec["driver"]["memory"]}
    hardening = ["--user", "10001:10001", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    mounts = [
        "--tmpfs", "/tmp:rw,mode=1777",
        "--tmpfs", "/var/data/spark-local-dir-1:rw,mode=1777",
        "--volume", f"{work}:{work}",
        "--volume", f"{work / 'spark-usecases'}:{USECASES_IN_CONTAINER}:ro",
        "--volume", f"{xcom}:{XCOM}",
    ]  # fmt: skip
    return [
        "run", "--rm", "--network", "host", *hardening, *mounts,
        *(a for name, value in environment.items() for a in ("--env", f"{name}={value}")),
        spec["image"], "driver", "--master", "local[1]",
        *(a for name, value in conf.items() for a in ("--conf", f"{name}={value}")),
        "--class", "org.apache.spark.deploy.PythonRunner", spec["mainApplicationFile"], *spec["arguments"],
    ]  # fmt: skip


def check(image: str, rows: int = ROWS) -> int:
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="mlcycle-spark-driver-"))
    try:
        local_usecases = work / "local-usecases"
        shutil.copytree(DEFAULT_USECASES_DIR, local_usecases)
        spark_usecases(
            local_usecases, work / "spark-usecases", spark=Spark(local_master="local[1]", driver_memory="1g")
        )
        env = {**embedded_environment(work / "home"), USECASES_ENV: str(local_usecases)}
        mlcycle = str(Path(sys.executable).parent / "mlcycle")
        day = ["--usecase", USECASE, "--start", str(DAY), "--end", str(DAY)]
        subprocess.run([mlcycle, "generate", *day, "--rows", str(rows)], env={**os.environ, **env}, check=True)
        code, ingested = run_cli([Step.INGEST.value, "--usecase", USECASE, "--partition", str(DAY)], env)
        if code != 0:
            raise RuntimeError(f"ingest exited {code}: {ingested}")
        local_env = {**embedded_environment(work / "local-home"), USECASES_ENV: str(local_usecases)}
        shutil.copytree(work / "home", work / "local-home")
        xcom = work / "xcom"
        xcom.mkdir()
        for path in (work, *work.rglob("*")):  # the step runs as uid 10001 and writes the store and the result
            path.chmod(0o777 if path.is_dir() else 0o666)

        app = application(work / "spark-usecases", image)
        engine = detect()
        contained = time.perf_counter()
        done = engine.run(*driver_command(app, env, work, xcom), check=False, capture=True)
        contained = time.perf_counter() - contained
        print(done.stderr[-3000:], file=sys.stderr)
        result_file = xcom / "return.json"
        if not result_file.is_file():
            print(f"the driver exited {done.returncode} and wrote no {XCOM}/return.json")
            return 1
        spark = json.loads(result_file.read_text())
        code, local = run_cli(
            [Step.VALIDATE.value, "--usecase", USECASE, "--partition", str(DAY), "--serving"], local_env
        )
        got, want = verdict(spark), verdict(local)
        print(f"driver in {image}: exit {done.returncode} in {contained:.0f}s, engine {got['engine']}")
        print(f"  spark: {json.dumps(got)}\n  local: {json.dumps(want)} (exit {code})")
        engines = (got.pop("engine"), want.pop("engine"))
        same_data = got["status"] != "success" or _data(spark) == _data(local)
        print(f"  validated data identical: {same_data}; wall time {time.perf_counter() - started:.0f}s")
        ok = done.returncode == code and engines == ("spark", "local") and got == want and same_data
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def verdict(result: dict[str, Any]) -> dict[str, Any]:
    """What both engines must agree on, whether the day passed (`metrics`) or was rejected (the reason's fields)."""
    metrics = result.get("metrics") or result
    summary = metrics["summary"]
    return {
        "status": result["status"],
        "engine": metrics.get("engine"),
        "profile": metrics["profile"],
        **{k: summary[k] for k in ("success", "evaluated", "hard_failures", "soft_failures")},
        "failed": [(f["rule"], f["column"], f["unexpected_count"], f["observed"]) for f in summary["failed"]],
    }


def _data(result: dict[str, Any]) -> bytes:
    folder = Path(result["outputs"]["validated"])
    return b"".join(p.read_bytes() for p in sorted(folder.glob("*.parquet")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=f"{DEFAULT_REPO}-task:{git_sha(short=True)}-spark")
    parser.add_argument("--rows", type=int, default=ROWS, help="sessions of the day (fewer than ~420: rejected)")
    args = parser.parse_args(argv)
    return check(args.image, args.rows)


if __name__ == "__main__":
    sys.exit(main())
