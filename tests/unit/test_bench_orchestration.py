"""The orchestration benchmark's arithmetic over task-instance rows (mlcycle_dev.benchmarks.orchestration).

The rows are shaped as Airflow 3.3's REST API returns them (`GET .../taskInstances`: `scheduled_when`,
`queued_when`, `start_date`, `end_date`, `duration`) and the XComs as the steps push them (`mlcycle.cli`'s JSON
result with its own `seconds`); the driver that starts the stack is exercised by `make bench-orchestration`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from mlcycle_dev.benchmarks import orchestration as bench

T0 = "2026-12-05T10:00:00Z"


def _at(seconds: float) -> str:
    return f"2026-12-05T10:{int(seconds) // 60:02d}:{seconds % 60:06.3f}Z"


def _row(task_id: str, scheduled: float, queued: float, start: float, end: float) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "state": "success",
        "try_number": 1,
        "scheduled_when": _at(scheduled),
        "queued_when": _at(queued),
        "start_date": _at(start),
        "end_date": _at(end),
        "duration": end - start,
        "pool": "default_pool",  # the API's other fields are ignored
    }


def _step(name: str, seconds: float) -> dict[str, Any]:
    return {"step": name, "usecase": "yarnit", "partition": "2026-08-15", "status": "ok", "seconds": seconds}


def _scoring_run() -> bench.RunTiming:
    # A sensor (no step result), then three steps in a row; the run lasts 0 -> 40 s.
    tasks = [
        bench.TaskTiming.from_row(_row("wait_for_data", 0.5, 1.0, 2.0, 3.0), None),
        bench.TaskTiming.from_row(_row("ingest", 3.5, 4.0, 6.0, 14.0), _step("ingest", 2.0)),
        bench.TaskTiming.from_row(_row("validate", 14.5, 15.0, 16.0, 26.0), _step("validate", 4.0)),
        bench.TaskTiming.from_row(_row("score", 26.5, 27.5, 28.0, 40.0), _step("score", 6.0)),
    ]
    return bench.RunTiming("yarnit_scoring", "backfill__1", "backfill", "2026-08-15", "success", T0, _at(40), tasks)


def test_a_run_s_wall_is_divided_by_its_step_tasks_walls_and_by_the_steps_own_seconds() -> None:
    run = _scoring_run()
    assert run.family == "scoring"
    assert [t.task_id for t in run.steps] == ["ingest", "validate", "score"]  # the sensor is not a step
    assert run.wall == 40.0
    assert run.steps_wall == pytest.approx(8 + 10 + 12)
    assert run.steps_body == pytest.approx(12.0)
    assert run.ratio_to_tasks == pytest.approx(40 / 30)
    assert run.ratio_to_bodies == pytest.approx(40 / 12)
    ingest = run.steps[0]
    assert ingest.launch_seconds == pytest.approx(6.0)
    assert ingest.scheduled_to_queued == pytest.approx(0.5)
    assert ingest.queued_to_running == pytest.approx(2.0)
    assert ingest.xcom_bytes == len(json.dumps(_step("ingest", 2.0), separators=(",", ":")))


def test_the_scheduler_s_reaction_is_measured_from_the_last_end_before_each_task_was_scheduled() -> None:
    run = _scoring_run()
    # Run start (0) -> the sensor scheduled at 0.5; each step scheduled 0.5 s after its upstream ended.
    assert run.ready_to_scheduled() == pytest.approx([0.5, 0.5, 0.5, 0.5])
    assert bench.latency_table([run])["scoring"]["ready_to_scheduled"] == {
        "n": 4,
        "median": 0.5,
        "p95": 0.5,
        "max": 0.5,
    }


def test_a_task_log_gives_when_execute_began_when_the_result_came_and_the_dag_parse() -> None:
    result = json.dumps(_step("ingest", 2.0))
    events = [
        {"event": "::group::Log message source details"},  # no timestamp: the API's own header
        {"timestamp": _at(6.1), "event": "Worker startup parse complete", "dag_file_parse_ms": 862},
        {"timestamp": _at(7.0), "event": "running: mlcycle ingest --usecase yarnit --partition 2026-08-15"},
        {"timestamp": _at(8.0), "event": "{not json but looks like it: status}"},
        {"timestamp": _at(12.5), "event": result},
        {"timestamp": _at(12.6), "event": "Pushing xcom"},
    ]
    marks = bench.log_marks(events)
    assert marks == {"execute_at": _at(7.0), "result_at": _at(12.5), "dag_parse_ms": 862.0}
    task = bench.TaskTiming.from_row(_row("ingest", 3.5, 4.0, 6.0, 14.0), json.loads(result), events)
    assert task.before_execute == pytest.approx(1.0)
    assert task.step_process == pytest.approx(5.5)
    assert task.cli_start == pytest.approx(3.5)  # the process's 5.5 s less the step's own 2 s
    assert task.after_result == pytest.approx(1.5)
    # Without a log: the phases are unknown, not zero.
    bare = bench.TaskTiming.from_row(_row("ingest", 3.5, 4.0, 6.0, 14.0), json.loads(result))
    assert bare.before_execute is None and bare.cli_start is None and bare.after_result is None


def test_a_run_without_an_end_or_without_steps_has_no_ratio() -> None:
    unfinished = dataclasses.replace(_scoring_run(), end_date=None)
    assert unfinished.wall is None and unfinished.ratio_to_tasks is None and unfinished.ratio_to_bodies is None
    no_steps = dataclasses.replace(_scoring_run(), tasks=_scoring_run().tasks[:1])
    assert no_steps.steps_wall == 0 and no_steps.ratio_to_tasks is None


def test_a_result_without_the_step_keys_is_not_a_step() -> None:
    branch = bench.TaskTiming.from_row(_row("decide", 0, 1, 2, 3), {"retrain": False})
    assert not branch.is_step and branch.launch_seconds is None and branch.xcom_bytes == len('{"retrain":false}')


def test_percentiles_are_nearest_rank_and_summaries_skip_missing_values() -> None:
    values = [float(v) for v in range(1, 21)]  # 1..20
    assert bench.percentile(values, 0.95) == 19.0
    assert bench.percentile(values, 0.5) == 10.0
    assert bench.percentile([7.0], 0.95) == 7.0
    with pytest.raises(ValueError, match="no values"):
        bench.percentile([], 0.5)
    assert bench.summary([3.0, None, 1.0, 2.0]) == {"n": 3, "median": 2.0, "p95": 3.0, "max": 3.0}
    assert bench.summary([None]) is None


def test_tables_group_by_family_and_the_fixed_share_is_launch_over_task_walls() -> None:
    scoring = _scoring_run()
    later = dataclasses.replace(scoring, run_id="backfill__2", end_date=_at(50))
    monitoring = bench.RunTiming(
        "yarnit_monitoring",
        "asset__1",
        "asset_triggered",
        "2026-08-15",
        "success",
        T0,
        _at(20),
        [bench.TaskTiming.from_row(_row("monitor", 0, 2, 5, 20), _step("monitor", 10.0))],
    )
    runs = [scoring, later, monitoring]
    table = bench.run_table(runs)
    assert set(table) == {"scoring", "monitoring"}
    assert table["scoring"]["runs"] == 2 and table["scoring"]["wall"] == {
        "n": 2,
        "median": 45.0,
        "p95": 50.0,
        "max": 50.0,
    }
    latency = bench.latency_table(runs)
    assert latency["monitoring"]["queued_to_running"] == {"n": 1, "median": 3.0, "p95": 3.0, "max": 3.0}
    assert latency["all"]["queued_to_running"]["n"] == 9  # type: ignore[index]
    steps = bench.step_table(runs)
    score_xcom = len(json.dumps(_step("score", 6.0), separators=(",", ":")))
    assert steps["scoring.score"] == {
        "n": 2,
        "wall": 12.0,
        "body": 6.0,
        "launch": 6.0,
        "before_execute": None,
        "dag_parse": None,
        "cli_start": None,
        "after_result": None,
        "xcom_bytes": score_xcom,
    }
    share = bench.fixed_share(runs)
    assert share["tasks"] == 7
    assert share["task_wall_seconds"] == pytest.approx(30 + 30 + 15)
    assert share["launch_seconds"] == pytest.approx((30 - 12) * 2 + 5)
    assert share["launch_share"] == pytest.approx(41 / 75)


def test_saved_runs_render_to_the_tables(tmp_path: Any) -> None:
    saved = {
        "facts": {
            "command": "python -m mlcycle_dev.benchmarks.orchestration --days 1",
            "date": "2026-12-05 12:00 UTC",
            "cpu": "test CPU",
            "cores": 2,
            "load_min": 1.0,
            "load_max": 2.0,
            "day_rows": 3000,
            "airflow_settings": {},
            "backfill": {"days": 1, "wall_seconds": 40.0, "fixed": bench.fixed_share([_scoring_run()])},
        },
        "runs": [dataclasses.asdict(_scoring_run())],
    }
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(saved))
    out = tmp_path / "out.md"
    assert bench.main(["--render", str(path), "--markdown", str(out)]) == 0
    text = out.read_text()
    assert "| scoring | 1 | 40.0 / 40.0 / 40.0 | 1.33 / 1.33 / 1.33 | 3.33 / 3.33 / 3.33 |" in text
    assert "| scoring.ingest | 1 | 8.0 | 2.0 | 6.0 | - | - | - | - |" in text
    assert "| scoring | 0.50 / 0.50 / 0.50 | 0.50 / 1.00 / 1.00 | 1.00 / 2.00 / 2.00 |" in text
    assert "Backfill of 1 days (scoring + monitoring): **40 s wall**; 3 step tasks, 30 s of task walls" in text
    assert "18 s (60%) launch cost" in text


def test_airflow_settings_must_be_airflow_configuration_keys() -> None:
    assert bench._settings(["AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME=0.1"]) == {
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1"
    }
    with pytest.raises(SystemExit, match="AIRFLOW__SECTION__KEY=VALUE"):
        bench._settings(["PARALLELISM=3"])


def test_only_a_step_s_json_result_line_counts_as_its_result() -> None:
    assert bench.is_result(json.dumps(_step("ingest", 1.0)))
    assert not bench.is_result('{"status" is mentioned but this is not JSON')
    assert not bench.is_result('["status"]')
    assert not bench.is_result('{"step": "ingest"}')


def test_the_mlcycle_command_exits_with_the_code_of_its_result(tmp_path: Any) -> None:
    """`mlcycle.cli.entrypoint` (the console script since the exit-cost fix) returns what `main` decided."""
    import os
    import subprocess
    import sys

    from mlcycle.exitcodes import STATUS_BY_CODE
    from mlcycle.settings import embedded_environment

    # An empty store: the day has not landed, which the step reports in its result and its exit code.
    env = {**os.environ, **embedded_environment(tmp_path)}
    argv = [sys.executable, "-m", "mlcycle.cli", "ingest", "--usecase", "yarnit", "--partition", "2026-08-01"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["step"] == "ingest" and done.returncode != 0
    assert STATUS_BY_CODE[done.returncode] == result["status"], (done.returncode, result)


def test_a_collected_backfill_spans_its_first_start_to_its_last_end() -> None:
    first = _scoring_run()  # 0 -> 40 s
    second = dataclasses.replace(first, run_id="backfill__2", start_date=_at(30), end_date=_at(95))
    assert bench._span([second, first]) == 95.0
    assert bench._span([]) == 0.0
