"""`mlcycle lineage` on a real chain of steps, on both backends: the embedded default (local folder + MLflow on
SQLite) and S3 (moto's server) + an MLflow tracking server whose artifacts live in S3.

Seven YarnIt days; 09-03 breaks the contract (quarantined); version 1 is trained on 09-06 (days 01, 02, 04, 05,
06), promoted by the gate, and scores 09-07. The steps run in-process and outside Airflow, so their DAG runs are
"unknown (written outside Airflow)": the DAG run ids of a real run are checked in tests/integration/
test_training_dag.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlcycle.cli import main as cli_main
from mlcycle.config import USECASES_ENV
from mlcycle.settings import embedded_environment
from mlcycle.storage.layout import SUCCESS
from support.cli import ok_result, step, train_to_champion
from support.fixtures import StdoutCapture
from support.s3 import use_s3_endpoint
from support.usecases import lenient_usecases

pytestmark = pytest.mark.integration

FIRST, BROKEN, TRAINED, SCORED = (dt.date(2026, 9, d) for d in (1, 3, 6, 7))
ROWS = 900


def _run_chain(out: StdoutCapture) -> str:
    """generate -> ingest/validate (09-03 quarantined) -> features -> train -> evaluate -> promote -> score."""
    generate = ["generate", "--usecase", "yarnit", "--start", str(FIRST), "--end", str(SCORED), "--rows", str(ROWS)]
    assert cli_main([*generate, "--scenario", f"schema_break:{BROKEN}"]) == 0
    ok_result(step(out, "ingest", TRAINED, "--lookback", "6"))
    ok_result(step(out, "validate", TRAINED, "--lookback", "6"))
    ok_result(step(out, "features", TRAINED))
    version = train_to_champion(out, TRAINED)
    ok_result(step(out, "ingest", SCORED))
    ok_result(step(out, "validate", SCORED, "--serving"))
    ok_result(step(out, "score", SCORED))
    return version


def _start_mlflow_server(home: Path, port: int, artifacts: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}"]
    argv += ["--serve-artifacts", "--artifacts-destination", artifacts, "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_ENABLE_TELEMETRY": "false"}
    log = (home / "mlflow-server.log").open("wb")
    process = subprocess.Popen([*argv, "--workers", "1"], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, (home / "mlflow-server.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
                if answer.status == 200:
                    return process
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise AssertionError(f"the MLflow server did not answer within 180 s: {(home / 'mlflow-server.log').read_text()}")


@pytest.fixture(scope="module", params=["local", "s3"])
def chain(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The chain run on one backend; yields its environment, storage root and the trained version."""
    home = tmp_path_factory.mktemp(f"lineage-{request.param}")
    mp = pytest.MonkeyPatch()
    for key, value in {**embedded_environment(home), USECASES_ENV: str(lenient_usecases(home))}.items():
        mp.setenv(key, value)
    server = None
    moto = None
    try:
        if request.param == "s3":
            import boto3
            from moto.server import ThreadedMotoServer

            from mlcycle_dev.stack.process import free_ports

            moto_port, mlflow_port = free_ports(2)
            moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
            moto.start()
            use_s3_endpoint(mp, f"http://127.0.0.1:{moto_port}")
            bucket = f"lineage-{uuid.uuid4().hex[:10]}"
            boto3.client("s3", endpoint_url=f"http://127.0.0.1:{moto_port}").create_bucket(Bucket=bucket)
            mp.setenv("MLCYCLE_STORAGE_ROOT", f"s3://{bucket}/data")
            mp.delenv("MLCYCLE_ARTIFACT_ROOT", raising=False)  # the server stores artifacts (in S3)
            server = _start_mlflow_server(home, mlflow_port, f"s3://{bucket}/mlflow")
            mp.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{mlflow_port}")
        capture = StdoutCapture()
        import contextlib

        with contextlib.redirect_stdout(capture.stream):
            version = _run_chain(capture)
        yield {"backend": request.param, "root": os.environ["MLCYCLE_STORAGE_ROOT"], "version": version}
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        if moto is not None:
            moto.stop()
        mp.undo()


def _lineage(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = cli_main(["lineage", "--usecase", "yarnit", *argv])
    out = capsys.readouterr().out
    result = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    return code, result, out


def _served_prediction_id(root: str) -> str:
    import pyarrow.dataset as ds

    from mlcycle.storage.partitions import Storage

    storage = Storage(root)
    with storage.local_copy(storage.partition_uri("yarnit", "predictions", SCORED, "role=champion")) as folder:
        table = ds.dataset(sorted(str(p) for p in folder.glob("part-*.parquet"))).to_table(columns=["prediction_id"])
    return str(table.column(0)[17])


def test_a_prediction_is_traced_back_to_its_partitions_digests_contract_and_gate(
    chain: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    prediction_id = _served_prediction_id(chain["root"])
    code, result, text = _lineage(capsys, "--prediction-id", prediction_id)
    assert code == 0, result
    lineage = result["metrics"]["lineage"]
    assert lineage["prediction"]["prediction_id"] == prediction_id
    predictions = lineage["predictions"]
    assert predictions["partition"] == str(SCORED) and predictions["role_when_scored"] == "champion"
    assert predictions["model_version"] == chain["version"]
    # The exact validated data scored: its digest is the one the validated partition's manifest lists.
    validated = predictions["data"]["contract"]["validated"]
    assert predictions["scored_data"]["data_digest"] == validated["data_digest"]
    assert predictions["scored_data"]["raw_digest"] == predictions["data"]["raw"]["digest"]

    model = lineage["model"]
    assert model["version"] == chain["version"] and "champion" in model["aliases_now"]
    assert model["training_run"]["run_id"] and {d["context"] for d in model["training_run"]["datasets"]} == {
        "train",
        "valid",
        "test",
    }
    days = {row["partition"]: row for row in model["training_data"]}
    assert sorted(days) == ["2026-09-01", "2026-09-02", "2026-09-04", "2026-09-05", "2026-09-06"]
    for row in days.values():
        assert row["trained_on_raw_digest"] == row["raw"]["digest"] and len(row["raw"]["digest"]) == 64
        assert row["contract"]["validated"]["verdict"] == "passed"
    assert model["gate"]["decision"] == "promote" and model["gate"]["record"].endswith(f"v{chain['version']}")
    assert model["promotion"]["promoted_by"] == "gate" and model["promotion"]["approver"].startswith("the gate")
    # Outside Airflow the DAG runs are not known, and the command says so rather than inventing them.
    assert predictions["scored_by"] == {"unknown": "written outside Airflow (the step had no MLCYCLE_AIRFLOW_RUN_ID)"}
    assert f"model_version: {chain['version']}" in text and "scored_by: UNKNOWN (written outside Airflow" in text


def test_forward_from_a_quarantined_partition_finds_no_model_and_from_a_trained_one_its_predictions(
    chain: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, result, _ = _lineage(capsys, "--partition", str(BROKEN), "--json")
    assert code == 0, result
    lineage = result["metrics"]["lineage"]
    assert "validated" not in lineage["data"]["contract"]
    assert lineage["data"]["contract"]["quarantined"]["verdict"] == "quarantined"
    assert lineage["forward"]["models"] == [] and lineage["forward"]["not_determined"] == []
    assert lineage["forward"]["summary"] == f"no model was trained on {BROKEN}"

    code, result, _ = _lineage(capsys, "--partition", "2026-09-05", "--json")
    forward = result["metrics"]["lineage"]["forward"]
    assert [(m["version"], m["split"]) for m in forward["models"]] == [(chain["version"], "test")]
    assert [(p["partition"], p["role"]) for p in forward["predictions"]] == [(str(SCORED), "champion")]


def test_a_removed_link_reads_unknown_with_its_reason(
    chain: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The served predictions' manifest loses the model version: the chain stops there, saying why."""
    if chain["backend"] != "local":
        pytest.skip("the link is removed from a copy of the local storage root")
    copy = tmp_path / "data"
    shutil.copytree(chain["root"], copy, symlinks=True)  # partition links are relative: they stay in the copy
    manifest_path = copy / "yarnit" / "predictions" / f"ds={SCORED}" / "role=champion" / SUCCESS
    manifest = json.loads(manifest_path.read_text())
    del manifest["model_version"]
    manifest_path.unlink()  # the version folder's own file, not the original's
    manifest_path.write_text(json.dumps(manifest))

    code, result, text = _lineage(capsys, "--storage-root", str(copy), "--partition", str(SCORED), "--role", "champion")
    assert code == 0, result
    lineage = result["metrics"]["lineage"]
    assert lineage["predictions"]["model_version"] == {"unknown": "the manifest names no model version"}
    assert lineage["model"] == {"unknown": "the manifest names no model version"}
    assert f"predictions {SCORED} champion: the manifest names no model version" in result["metrics"]["unknown"]
    assert "model_version: UNKNOWN (the manifest names no model version)" in text

    code, result, _ = _lineage(capsys, "--storage-root", str(copy), "--partition", str(SCORED))
    assert code == 0
    assert result["metrics"]["lineage"]["forward"]["models"] == []  # 09-07 was scored, never trained on
