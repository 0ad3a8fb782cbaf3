"""The engines benchmark's own parts (mlcycle_dev.benchmarks.engines): its data, its watchdog, its equality.

The benchmark itself is not run here (minutes at its sizes; `make bench-engines`).
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlcycle.config import get_usecase
from mlcycle_dev.benchmarks.engines import (
    chunk_plan,
    compare_predictions,
    drift_facts,
    land_partition,
    landed_parts,
    remove_partition,
    run_watched,
    session_ids,
    validate_facts,
)

DAY = dt.date(2026, 10, 1)
#: What YarnIt's shipped contract admits as a session id (the benchmark's ids must pass it unchanged).
SESSION_REGEX = str(get_usecase("yarnit").data_contract.columns["session_id"].regex)


def test_chunk_plan_covers_the_rows_exactly() -> None:
    assert chunk_plan(5, part_rows=2) == [2, 2, 1]
    assert chunk_plan(4, part_rows=2) == [2, 2]
    with pytest.raises(ValueError, match="at least one row"):
        chunk_plan(0)


def test_session_ids_fit_the_benchmark_contract_and_continue_across_chunks() -> None:
    ids = session_ids(DAY, 999_998, 3)
    assert ids == ["20261001-000999999", "20261001-001000000", "20261001-001000001"]
    assert all(re.fullmatch(SESSION_REGEX, i) for i in ids)


def test_a_landed_partition_has_exactly_the_rows_in_parts_with_unique_keys(tmp_path: Path) -> None:
    folder = tmp_path / "landing" / f"ds={DAY}"
    parts = land_partition(folder, DAY, 7_000, part_rows=3_000)

    assert [p.name for p in parts] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [pq.ParquetFile(p).metadata.num_rows for p in parts] == [3_000, 3_000, 1_000]
    assert (folder / "_SUCCESS").is_file()
    frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    assert frame["session_id"].is_unique
    assert frame["session_id"].str.fullmatch(SESSION_REGEX).all()
    assert frame["event_ts"].dt.date.eq(DAY).all(), "every event inside the partition's day"


def test_a_complete_landing_is_reused_and_a_partial_one_removed(tmp_path: Path) -> None:
    folder = tmp_path / f"ds={DAY}"
    parts = land_partition(folder, DAY, 1_500, part_rows=1_000)
    assert landed_parts(folder, 1_500) == parts
    assert landed_parts(folder, 2_000) is None and not folder.exists(), "not the rows asked for: written again"
    assert landed_parts(folder, 1_500) is None


def test_removing_a_committed_partition_removes_its_versions(tmp_path: Path) -> None:
    from mlcycle.storage.partitions import Storage

    storage = Storage(str(tmp_path))
    uri = str(tmp_path / "validated" / f"ds={DAY}")
    for content in ("first", "second"):
        with storage.writer(uri, {"step": "test"}) as staging:
            (staging / "data.parquet").write_text(content)
    folder = Path(uri)
    assert folder.is_symlink()
    remove_partition(folder)
    assert not folder.exists() and not folder.is_symlink()
    assert not (folder.parent / ".versions" / folder.name).exists()


def _predictions(folder: Path, frame: pd.DataFrame, sizes: list[int]) -> Path:
    folder.mkdir()
    start = 0
    for index, size in enumerate(sizes):
        frame.iloc[start : start + size].to_parquet(folder / f"part-{index:05d}.parquet", index=False)
        start += size
    return folder


def test_predictions_are_compared_row_by_row_across_different_part_sizes(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"prediction_id": [f"s{i}:m:1" for i in range(10)], "decision": [i % 2 for i in range(10)]}
    ).assign(score=[i / 10 for i in range(10)])
    same = compare_predictions(_predictions(tmp_path / "a", frame, [10]), _predictions(tmp_path / "b", frame, [3, 7]))
    assert same == {"rows": 10, "id_mismatches": 0, "decision_mismatches": 0, "max_score_diff": 0.0, "equal": True}

    changed = frame.copy()
    changed.loc[4, "score"] += 1e-6
    changed.loc[7, "decision"] = 1 - changed.loc[7, "decision"]
    other = compare_predictions(tmp_path / "a", _predictions(tmp_path / "c", changed, [4, 4, 2]))
    assert other["decision_mismatches"] == 1 and other["id_mismatches"] == 0
    assert other["max_score_diff"] == pytest.approx(1e-6) and other["equal"] is False

    with pytest.raises(ValueError, match="fewer rows"):
        compare_predictions(tmp_path / "a", _predictions(tmp_path / "d", frame.head(9), [9]))


def test_the_watchdog_kills_the_process_tree_above_its_cap(tmp_path: Path) -> None:
    # A child that starts a grandchild which holds 400 MiB: the tree, not the step alone, is what counts.
    grandchild = "import time; b = bytearray(400 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(60)"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}])"
    capped = run_watched([sys.executable, "-c", child], {}, tmp_path / "capped.log", cap_mib=200)
    assert capped.exceeded and capped.exit_code != 0
    assert capped.peak_rss_mib > 200

    # It lives a few samples long: the tree's RSS is sampled, not read from rusage.
    quick = 'import time; time.sleep(2); print(\'{"status": "ok"}\')'
    fine = run_watched([sys.executable, "-c", quick], {}, tmp_path / "ok.log", cap_mib=2**14)
    assert not fine.exceeded and fine.exit_code == 0 and fine.last_line == '{"status": "ok"}'
    assert 0 < fine.peak_rss_mib < 2**14


def test_the_engines_results_are_compared_on_verdicts_not_on_sampled_values() -> None:
    def validated(values: list[str]) -> dict[str, object]:
        failure = {"rule": "range", "column": "price", "severity": "hard", "unexpected_count": 3, "values": values}
        summary = {"success": False, "evaluated": 40, "hard_failures": 1, "soft_failures": 0, "failed": [failure]}
        return {"status": "failed", "metrics": {"summary": summary}}

    assert validate_facts(validated(["-4.5"])) == validate_facts(validated(["-1.0"]))
    assert validate_facts(validated([]))["failed"] == [("range", "price", "hard", 3)]

    def monitored(drifted: bool) -> dict[str, object]:
        column = {"column": "price", "test": "ks", "drifted": drifted, "score": 0.01}
        return {"metrics": {"dataset_drift": drifted, "drift_share": 0.5, "columns": [column]}}

    assert drift_facts(monitored(True)) != drift_facts(monitored(False))
    assert drift_facts(monitored(True))["columns"] == [("price", "ks", True)]
