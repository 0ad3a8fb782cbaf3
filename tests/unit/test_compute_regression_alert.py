"""The `compute-regression` alert (ML Test Score, Monitoring 6): the training DAG's evaluate task tells people when
evaluate's result reports a candidate whose computing performance regressed beyond the factor, once per
evaluation, with every figure; an evaluation without a regression sends nothing."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest

from mlcycle.config import get_usecase
from mlcycle.evaluation import compute
from mlcycle.orchestration.alerts import ComputeRegressionAlert
from mlcycle.orchestration.dags import training_dag
from mlcycle.specs.names import Runbook, Step
from mlcycle.specs.results import EvaluateResult
from support.alerting import recording_endpoint

PARTITION = "2026-09-14"
CHAMPION = {"fit_seconds": 10.0, "train_peak_memory_mb": 500.0, "latency_p95_ms": 5.0, "throughput_rows_s": 1e5}


def _evaluate_result(candidate: dict[str, float | None], factor: float = 2.0) -> dict[str, Any]:
    """Evaluate's result for version 8 against champion version 7, its comparison made by evaluate's own function."""
    regressions = compute.regressions(candidate, dict(CHAMPION), factor)
    return EvaluateResult.of(
        Step.EVALUATE,
        "yarnit",
        PARTITION,
        outputs={"decision": f"/data/yarnit/evaluation/ds={PARTITION}/v8", "mlflow_run_id": "c0ffee"},
        metrics={
            "decision": "promote",
            "candidate_version": "8",
            "champion_version": "7",
            "compute": {"mode": "soft", "factor": factor, "regressions": [r.model_dump() for r in regressions]},
        },
    ).to_dict()


class _TI(SimpleNamespace):
    """The evaluate task instance as the callback sees it: its own result is already its XCom."""

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        assert (task_ids, key) == (Step.EVALUATE.value, "return_value"), (task_ids, key)
        return self.result


def _notify_as_airflow_does(result: dict[str, Any]) -> None:
    """Call the evaluate task's success callbacks of the real training DAG with that task's context."""
    dag = training_dag(get_usecase("yarnit"))
    callbacks = dag.get_task(Step.EVALUATE.value).on_success_callback
    alerts = [c for c in callbacks or [] if isinstance(c, ComputeRegressionAlert)]
    assert len(alerts) == 1, f"the training DAG's evaluate task must carry one ComputeRegressionAlert: {callbacks}"
    ti = _TI(task_id=Step.EVALUATE.value, dag_id=dag.dag_id, try_number=1, log_url="http://airflow/log", result=result)
    run = SimpleNamespace(dag_id=dag.dag_id, run_id=f"scheduled__{PARTITION}", conf={}, logical_date=dt.datetime.now())
    alerts[0]({"ti": ti, "dag_run": run, "dag": dag, "params": {"partition": PARTITION}})


def test_a_training_time_regression_beyond_the_factor_alerts_once_with_the_figures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with recording_endpoint() as sink:
        monkeypatch.setenv("MLCYCLE_ALERT_WEBHOOK_URL", f"{sink.url}/hook")
        monkeypatch.delenv("MLCYCLE_ALERT_FORMAT", raising=False)
        _notify_as_airflow_does(_evaluate_result({**CHAMPION, "fit_seconds": 25.0}))
    [alert] = sink.on("/hook")
    assert alert["alert"] == Runbook.COMPUTE_REGRESSION and alert["runbook"].endswith("/compute-regression.md")
    assert (alert["dag_id"], alert["task_id"], alert["partition"]) == ("yarnit_training", "evaluate", PARTITION)
    assert alert["severity"] == "warning"
    assert alert["reason"] == (
        "version 8 is worse than champion version 7 beyond the factor 2.0: fit_seconds 25 vs 10 (2.5x worse); "
        "it still goes through the gate (compute_regression: soft; the gate decided promote)"
    )
    assert alert["details"]["regressions"] == [
        {"figure": "fit_seconds", "candidate": 25.0, "champion": 10.0, "worse_by": 2.5, "factor": 2.0}
    ]
    assert (alert["details"]["candidate_version"], alert["details"]["champion_version"]) == ("8", "7")


def test_a_candidate_within_the_factor_raises_no_alert(monkeypatch: pytest.MonkeyPatch) -> None:
    # 1.9x the champion's training time, half its throughput: worse, but not beyond the factor 2.
    within = {**CHAMPION, "fit_seconds": 19.0, "throughput_rows_s": 5e4}
    assert _evaluate_result(within)["metrics"]["compute"]["regressions"] == []
    with recording_endpoint() as sink:
        monkeypatch.setenv("MLCYCLE_ALERT_WEBHOOK_URL", f"{sink.url}/hook")
        _notify_as_airflow_does(_evaluate_result(within))
        _notify_as_airflow_does(_evaluate_result(CHAMPION))
    assert sink.received == []
