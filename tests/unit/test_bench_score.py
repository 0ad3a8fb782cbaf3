"""Smoke test of the scoring benchmark (mlcycle_dev.benchmarks.score): tiny sizes, no timing thresholds."""

from __future__ import annotations

import json

import pytest

from mlcycle_dev.benchmarks import score as bench


def test_sizes_parse() -> None:
    assert bench._sizes("5k,1m,2500,1.5m") == [5_000, 1_000_000, 2_500, 1_500_000]
    assert bench._short(3_000_000) == "3M" and bench._short(50_000) == "50k" and bench._short(1234) == "1234"


def test_benchmark_runs_small(capsys: pytest.CaptureFixture[str]) -> None:
    # One process, one thread: a few seconds beyond the imports. Chunks of 2k over 5k rows: 3 parts.
    argv = ["--sizes", "5k", "--chunk-rows", "2k", "--fit-rows", "2k", "--repeat", "1", "--threads", "1"]
    assert bench.main([*argv, "--in-process"]) == 0
    out = capsys.readouterr().out
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["case"] for r in results] == ["step", "raw", "whole"]
    for r in results:
        assert r["rows"] == r["scored_rows"] == 5_000
        assert r["seconds"] > 0 and r["rows_per_second"] > 0
        assert r["peak_rss_mib"] > 0 and r["process_peak_rss_mib"] >= r["peak_rss_mib"]
        assert 0 < r["positive_decisions"] < 5_000
    step, raw, whole = results
    assert step["parts"] == 3 and step["chunk_rows"] == 2_000 and step["written_bytes"] > 0
    assert whole["written_bytes"] > 0
    assert raw["same_scores"] and raw["sklearn_rows_per_second"] > 0
    # Every path scores the same rows with the same model: the same decisions.
    assert step["positive_decisions"] == raw["positive_decisions"] == whole["positive_decisions"]
    assert "rows/s" in out and "x raw" in out
