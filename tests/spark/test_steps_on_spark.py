"""score, monitor and validate through the CLI on both engines, on the same YarnIt partitions and registry.

One world for the module: eleven YarnIt days (the last a heatwave: covariate shift), @champion v1 and the shadow
@challenger v2 trained by the real steps on the local engine. Then each step runs once per engine on the same
partition (the use case folder switched between `engine: local` and `engine: spark`) and the outputs are compared:
identical prediction ids and decisions and scores within 1e-9 for both roles; identical drift verdicts; the same
quarantine record for a rejected day; and multi-file (`part-*.parquet`) landing partitions on both engines.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlcycle.cli import main as cli_main
from mlcycle.config import USECASES_ENV
from mlcycle.exitcodes import ExitCode
from mlcycle.storage.partitions import SCRATCH
from spark.conftest import SPARK, spark_usecases
from support.cli import CaptureStdout, ok_result, step, train_to_champion
from support.cli import usecase_root as root
from support.usecases import lenient_usecases

FIRST, TRAINED = dt.date(2026, 9, 1), dt.date(2026, 9, 10)
SHIFTED = dt.date(2026, 9, 11)
PARTS_LOCAL, PARTS_SPARK, REJECTED = (dt.date(2026, 9, d) for d in (12, 13, 14))
ROWS = 900
#: A standalone master with two executors of one core and 1 GiB each, in JVMs of their own (Spark's own tests'
#: stand-in for a cluster).
CLUSTER = {"local_master": "local-cluster[2,1,1024]", "driver_memory": "1g"}


@pytest.fixture(scope="module")
def folders(module_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The use case folders of each engine; the local one is in force unless a test switches."""
    base = tmp_path_factory.mktemp("usecases")
    local = lenient_usecases(base / "local")
    found = {"local": local, "spark": spark_usecases(local, base / "spark" / "usecases")}
    patch = pytest.MonkeyPatch()
    patch.setenv(USECASES_ENV, str(local))
    yield found
    patch.undo()


@pytest.fixture(scope="module")
def world(folders: dict[str, Path], module_env: dict[str, str], capture_stdout: CaptureStdout) -> dict[str, str]:
    """Days FIRST..SHIFTED generated, ingested and validated; v1 @champion, v2 the shadow @challenger."""
    argv = ["generate", "--usecase", "yarnit", "--start", str(FIRST), "--end", str(SHIFTED), "--rows", str(ROWS)]
    assert cli_main([*argv, "--scenario", f"covariate_shift:{SHIFTED}"]) == 0
    with capture_stdout() as out:
        ok_result(step(out, "ingest", SHIFTED, "--lookback", "10"))
        ok_result(step(out, "validate", TRAINED, "--lookback", "9"))
        ok_result(step(out, "validate", SHIFTED, "--serving"))
        ok_result(step(out, "features", TRAINED))
        v1 = train_to_champion(out, TRAINED)
        v2 = ok_result(step(out, "train", TRAINED, "--cache", "off"))["metrics"]["model_version"]
    return {"champion": v1, "challenger": v2}


def on_engine(folders: dict[str, Path], engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USECASES_ENV, str(folders[engine]))


def predictions(result: dict[str, Any], output: str) -> pd.DataFrame:
    return pd.read_parquet(result["outputs"][output]).sort_values("prediction_id").reset_index(drop=True)


def manifest(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((folder / "_SUCCESS").read_text())
    return loaded


def test_scores_and_decisions_match_the_local_engine(
    world: dict[str, str], folders: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    local = ok_result(step(capsys, "score", SHIFTED))
    expected = {o: predictions(local, o) for o in ("predictions", "predictions_challenger")}
    on_engine(folders, "spark", monkeypatch)
    spark = ok_result(step(capsys, "score", SHIFTED))

    assert spark["metrics"]["engine"] == "spark" and local["metrics"]["engine"] == "local"
    for key in ("rows", "positive_decisions", "model_version", "challenger_version", "challenger_rows"):
        assert spark["metrics"][key] == local["metrics"][key], key
    assert spark["outputs"] == local["outputs"]
    for output, want in expected.items():
        got = predictions(spark, output)
        assert list(got.columns) == list(want.columns)
        # Spark writes timestamps in microseconds; the local engine's `scored_for` is in nanoseconds: same instants.
        assert {c: str(t).replace("[ns", "[us") for c, t in got.dtypes.items()} == {
            c: str(t).replace("[ns", "[us") for c, t in want.dtypes.items()
        }
        assert got["prediction_id"].tolist() == want["prediction_id"].tolist()
        assert got["decision"].tolist() == want["decision"].tolist()
        assert (got["score"] - want["score"]).abs().max() <= 1e-9
        others = [c for c in want.columns if c != "score"]
        pd.testing.assert_frame_equal(got[others], want[others], check_dtype=False)
        committed = Path(spark["outputs"][output])
        assert manifest(committed)["engine"] == "spark"
        assert sorted(p.name for p in committed.iterdir()) == ["_SUCCESS", "part-00000.parquet"]
    assert set(expected["predictions"]["model_version"]) == {world["champion"]}
    assert set(expected["predictions_challenger"]["model_version"]) == {world["challenger"]}


def test_a_cluster_master_writes_the_parts_on_the_storage_roots_volume(
    world: dict[str, str],
    folders: dict[str, Path],
    module_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """`local-cluster[2,1,1024]`: a standalone master with two executor JVMs of their own, each with its own Python
    workers, as on a cluster. Their parts go to the step's scratch on the storage root's volume (`.scratch/`, which
    executors on other nodes would mount), the driver counts every row there, and the committed predictions are
    the local engine's. It runs as its own process: this folder's session is a local-mode one."""
    local = ok_result(step(capsys, "score", SHIFTED))
    want = predictions(local, "predictions")
    cluster = spark_usecases(folders["local"], tmp_path / "usecases", spark=SPARK.model_copy(update=CLUSTER))
    command = [sys.executable, "-m", "mlcycle.cli", "score", "--usecase", "yarnit", "--partition", str(SHIFTED)]
    done = subprocess.run(
        command, env={**os.environ, USECASES_ENV: str(cluster)}, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    spark = json.loads(done.stdout.strip().splitlines()[-1])
    assert spark["metrics"]["engine"] == "spark" and spark["metrics"]["rows"] == local["metrics"]["rows"]
    got = predictions(spark, "predictions")
    assert got["prediction_id"].tolist() == want["prediction_id"].tolist()
    assert got["decision"].tolist() == want["decision"].tolist()
    assert (got["score"] - want["score"]).abs().max() <= 1e-9
    scratch = root(module_env).parent / SCRATCH
    assert scratch.is_dir() and not any(scratch.iterdir()), "written on the root's volume, then removed"


def test_drift_verdicts_match_the_local_engine(
    world: dict[str, str], folders: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ok_result(step(capsys, "score", SHIFTED))
    local = ok_result(step(capsys, "monitor", SHIFTED))["metrics"]
    on_engine(folders, "spark", monkeypatch)
    result = ok_result(step(capsys, "monitor", SHIFTED))
    spark = result["metrics"]

    assert local["dataset_drift"] is True, "the heatwave day drifts"
    assert spark["engine"] == "spark"
    for key in ("dataset_drift", "drift_share", "drifted_columns", "prediction_drift"):
        assert spark[key] == local[key], key
    assert [(c["column"], c["test"], c["drifted"]) for c in spark["columns"]] == [
        (c["column"], c["test"], c["drifted"]) for c in local["columns"]
    ]
    monitoring = Path(result["outputs"]["monitoring"])
    assert manifest(monitoring)["engine"] == "spark"
    statistics = json.loads((monitoring / "statistics.json").read_text())
    validated = pd.read_parquet(root(dict(os.environ)) / "validated" / f"ds={SHIFTED}" / "data.parquet")
    assert statistics["rows"] == len(validated)
    summary = json.loads((monitoring / "summary.json").read_text())
    assert summary["n_current"] == len(validated)
    for column, entry in statistics["columns"].items():
        assert entry["nulls"] == int(validated[column].isna().sum()), column
        assert entry["nulls"] + sum(entry["counts"].values()) == len(validated), column


def _land_parts(frame: pd.DataFrame, day: dt.date, parts: int) -> list[Path]:
    folder = root(dict(os.environ)) / "landing" / f"ds={day}"
    folder.mkdir(parents=True)
    size = -(-len(frame) // parts)
    written = []
    for index in range(parts):
        path = folder / f"part-{index:05d}-3f1c.snappy.parquet"
        frame.iloc[index * size : (index + 1) * size].to_parquet(path, index=False)
        written.append(path)
    (folder / "_SUCCESS").write_text("{}")
    return written


@pytest.mark.parametrize(("engine", "day"), [("local", PARTS_LOCAL), ("spark", PARTS_SPARK)])
def test_a_multi_file_landing_partition_is_read_whole(
    engine: str,
    day: dt.date,
    world: dict[str, str],
    folders: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlcycle.synthetic.yarnit import generate_day

    frame = generate_day(day, base_rows=ROWS)
    parts = _land_parts(frame, day, 3)
    on_engine(folders, engine, monkeypatch)
    ingested = ok_result(step(capsys, "ingest", day))
    raw = root(dict(os.environ)) / "raw" / f"ds={day}"
    assert sorted(p.name for p in raw.glob("part-*.parquet")) == [p.name for p in parts]
    assert manifest(raw)["file"] == "part-*.parquet" and ingested["metrics"]["format"] == "parquet"
    again = ok_result(step(capsys, "ingest", day))
    assert again["metrics"]["unchanged"] == [day.isoformat()], "the same parts are the same delivery"

    result = ok_result(step(capsys, "validate", day))
    assert result["metrics"]["engine"] == engine
    validated = root(dict(os.environ)) / "validated" / f"ds={day}"
    assert manifest(validated)["rows"] == len(frame)
    pd.testing.assert_frame_equal(pd.read_parquet(validated / "data.parquet"), frame, check_dtype=False)


def test_a_rejected_day_is_quarantined_alike(
    world: dict[str, str], folders: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlcycle.synthetic.yarnit import generate_day

    frame = generate_day(REJECTED, base_rows=ROWS)
    frame.loc[frame.index[[3, 10, 11]], "price"] = -4.5
    folder = root(dict(os.environ)) / "landing" / f"ds={REJECTED}"
    folder.mkdir(parents=True)
    frame.to_parquet(folder / "data.parquet", index=False)
    (folder / "_SUCCESS").write_text("{}")
    ok_result(step(capsys, "ingest", REJECTED))
    quarantine = root(dict(os.environ)) / "quarantine" / f"ds={REJECTED}"

    reasons = {}
    for engine in ("local", "spark"):
        on_engine(folders, engine, monkeypatch)
        code, result = step(capsys, "validate", REJECTED)
        assert code == ExitCode.REJECTED, result
        assert manifest(quarantine)["engine"] == engine
        assert (quarantine / "data.parquet").read_bytes() == (folder / "data.parquet").read_bytes()
        reasons[engine] = json.loads((quarantine / "reason.json").read_text())
    local, spark = reasons["local"], reasons["spark"]
    assert [f["rule"] for f in spark["failures"]] == [f["rule"] for f in local["failures"]] == ["range"]
    assert spark["failures"][0]["unexpected_count"] == local["failures"][0]["unexpected_count"] == 3
    assert len(spark["failures"][0]["rows"]) == 3
    assert spark["failed"] == local["failed"]
