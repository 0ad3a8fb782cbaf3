"""The nightly benchmark (mlcycle_dev.benchmarks.nightly) end to end at a tiny size: every step through the CLI,
each essential call, the table. No timing thresholds: the figures are only checked to exist and be consistent."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlcycle_dev.benchmarks import nightly as bench

# The steps with an essential call of their own; scoring's ingest/validate and freshness are fixed work only.
WITH_ESSENTIAL = {
    ("training", "ingest"),
    ("training", "validate"),
    ("training", "features"),
    ("training", "train"),
    ("training", "evaluate"),
    ("training", "promote"),
    ("scoring", "score"),
    ("monitoring", "monitor"),
}


def test_nightly_runs_end_to_end_small(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 6 days of ~300 rows: enough for features (5 partitions) and a model the gate promotes. No fixed-cost run:
    # it is the same code path on a second root.
    out_json, out_md = tmp_path / "night.json", tmp_path / "night.md"
    argv = ["--rows", "300", "--days", "6", "--fixed-rows", "0", "--workdir", str(tmp_path / "work")]
    assert bench.main([*argv, "--json", str(out_json), "--markdown", str(out_md)]) == 0

    facts = json.loads(out_json.read_text())
    steps = facts["steps"]
    assert [(s["dag"], s["step"]) for s in steps] == [
        ("training", "ingest"),
        ("training", "validate"),
        ("training", "features"),
        ("training", "train"),
        ("training", "evaluate"),
        ("training", "promote"),
        ("scoring", "ingest"),
        ("scoring", "validate"),
        ("scoring", "score"),
        ("monitoring", "monitor"),
        ("monitoring", "freshness"),
    ]
    for s in steps:
        assert s["exit_code"] == 0, s
        assert s["result"]["status"] == "success", s["result"]
        assert s["wall_seconds"] > 0 and s["cpu_seconds"] > 0 and s["peak_rss_mib"] > 0
        assert (s["essential"] is not None) == ((s["dag"], s["step"]) in WITH_ESSENTIAL), s
        if s["essential"]:
            assert s["essential"]["seconds"] > 0
    by_step = {(s["dag"], s["step"]): s for s in steps}
    # The essentials ran on the data the steps used: the same rows.
    assert (
        by_step["training", "train"]["essential"]["rows"]
        == by_step["training", "features"]["result"]["metrics"]["rows"]["train"]
    )
    assert by_step["scoring", "score"]["essential"]["rows"] == by_step["scoring", "score"]["result"]["metrics"]["rows"]
    assert by_step["training", "validate"]["essential"]["rows"] == facts["rows"]
    # The window's 6 days were validated with the whole contract, every check evaluated on each.
    assert by_step["training", "validate"]["essential"]["checks"] > 6 * 10
    assert facts["totals"]["night_seconds"] == pytest.approx(sum(s["wall_seconds"] for s in steps))
    assert facts["totals"]["peak_rss_mib"] == max(s["peak_rss_mib"] for s in steps)

    table = out_md.read_text()
    assert "| training | train |" in table and "| monitoring | freshness |" in table
    assert "step / essential" in table and "load average" in table
    assert "essential" in capsys.readouterr().out


def test_import_profile_names_the_costliest_packages() -> None:
    profile = bench.import_profile("features", {**bench.environment(Path("/nonexistent"), None)})
    assert profile["module"] == "mlcycle.steps.features"
    names = [name for name, _ in profile["top"]]
    assert "pandas" in names, names  # the features step reads Parquet with pandas
    assert profile["wall_seconds"] > 0 and all(seconds >= 0 for _, seconds in profile["top"])


def _trusted_types(prepare: str) -> dict[str, object]:
    """skops' trusted-type lists after `prepare` imported skops.io in a fresh interpreter, and whether torch came."""
    code = (
        f"import json, sys; {prepare}; import skops.io._trusted_types as t; print(json.dumps({{"
        "'estimators': sorted(t.SKLEARN_ESTIMATOR_TYPE_NAMES), 'internal': sorted(map(str, t._SKLEARN_INTERNAL_TYPES)),"
        "'torch': 'torch' in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_skops_without_torch_trusts_the_same_types() -> None:
    # The fix the nightly benchmark measured: loading an sklearn model no longer imports torch (5-7 s a step).
    hidden = _trusted_types("from mlcycle.training.skops_io import import_skops_io; import_skops_io()")
    plain = _trusted_types("import skops.io")
    assert hidden["torch"] is False
    assert hidden["estimators"] == plain["estimators"] and hidden["internal"] == plain["internal"]
    assert any(name.endswith("HistGradientBoostingClassifier") for name in hidden["estimators"])  # type: ignore[attr-defined]


def test_table_and_comparison_from_saved_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    essential = {"seconds": 2.0, "cpu_seconds": 1.0, "what": "pipeline fit (HGB) on the train split"}
    train = bench.StepRun("training", "train", ["mlcycle", "train"], 5.0, 4.0, 600.0, essential=essential)
    freshness = bench.StepRun("monitoring", "freshness", ["mlcycle", "freshness"], 3.0, 1.5, 200.0)
    assert train.ratio == 2.5 and train.cpu_ratio == 4.0 and freshness.ratio is None
    rows = bench.table_rows([train, freshness])
    assert rows[0][:5] == ["training", "train", "5.0", "2.0", "2.50x"] and "4.00x" in rows[0]
    assert rows[1][3:5] == ["—", "—"] and rows[1][-1] == "only fixed work"

    saved = tmp_path / "night.json"
    saved.write_text(json.dumps({"partial": True, "steps": [dataclasses.asdict(train), dataclasses.asdict(freshness)]}))
    assert bench.main(["--render", str(saved), "--markdown", str(tmp_path / "t.md")]) == 0
    assert "| training | train | 5.0 | 2.0 | 2.50x |" in (tmp_path / "t.md").read_text()
    assert bench.main(["--compare", str(saved), str(saved)]) == 0
    assert "| training | train | 5.0 | 5.0 | 4.0 | 4.0 | 600 | 600 |" in capsys.readouterr().out
    with pytest.raises(ValueError, match="the runs differ"):
        bench.comparison([train], [freshness])


def test_a_step_past_the_memory_cap_is_killed_and_says_so(tmp_path: Path) -> None:
    """The watchdog (`--memory-cap-gib`): a child that grows past the cap is killed, never left to the OOM killer."""
    import json
    import sys

    from mlcycle_dev.benchmarks.nightly import run_child

    grow = "import time\nblocks = []\nwhile True:\n    blocks.append(bytearray(20 * 2**20))\n    time.sleep(0.05)"
    code, _, _, peak, last = run_child([sys.executable, "-c", grow], {}, tmp_path / "child.log", memory_cap_mib=200)
    assert code == -9 and json.loads(last) == {"status": "memory", "reason": "exceeded 0.2 GiB (killed)"}
    assert peak >= 200
    code, _, _, _, last = run_child(
        [sys.executable, "-c", "print('done')"], {}, tmp_path / "ok.log", memory_cap_mib=200
    )
    assert code == 0 and last == "done"
