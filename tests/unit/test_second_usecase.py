"""A second, different tabular dataset becomes a use case by adding a folder: no code change.

A telecom churn table (other columns, other target, other contract) gets its four DAGs and runs
ingest -> validate -> features -> train -> evaluate -> promote through the same CLI.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcycle.cli import main as cli_main
from mlcycle.config import discover_usecases
from mlcycle.orchestration.dags import build_dags
from mlcycle.settings import embedded_environment

USECASE = """
name: churn
description: Monthly churn of telecom customers (a second, unrelated tabular dataset).
owner: data-science
contract: contract.yaml
roles:
  features: [plan, tenure_months, monthly_charges, support_calls]
slices: [plan]
split: {window_days: 6, valid_days: 1, test_days: 1, min_partitions: 4}
model: {family: FAMILY}
thresholds: {gate: {min_metric: 0.6}}
"""

CONTRACT = """
version: 1
key: [customer_id]
timestamp: snapshot_ts
target: churned
columns:
  customer_id: {type: string, regex: '^K\\d{6}$'}
  snapshot_ts: {type: timestamp}
  plan: {type: string, allowed: [basic, plus, pro]}
  tenure_months: {type: int, min: 0, max: 600}
  monthly_charges: {type: float, min: 0, max: 500}
  support_calls: {type: int, min: 0}
  churned: {type: int, allowed: [0, 1]}
table:
  row_count: {min: 100}
"""


def churn_day(day: dt.date, rows: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(day.toordinal())
    tenure = rng.integers(0, 72, rows)
    calls = rng.poisson(1.5, rows)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    charges = np.round(rng.normal(60, 20, rows).clip(5, 300), 2)
    logit = -1.0 - 0.04 * tenure + 0.5 * calls + 0.01 * (charges - 60)
    start = pd.Timestamp(day, tz="UTC")
    return pd.DataFrame(
        {
            "customer_id": [f"K{day.toordinal() % 1000:03d}{i:03d}" for i in range(rows)],
            "snapshot_ts": start + pd.to_timedelta(rng.integers(0, 86_399, rows), unit="s"),
            "plan": plan,
            "tenure_months": tenure.astype("int64"),
            "monthly_charges": charges,
            "support_calls": calls.astype("int64"),
            "churned": (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64"),
        }
    )


@pytest.mark.parametrize(
    "family",
    ["sklearn_logreg", "{family: torch_mlp, params: {hidden_sizes: '16', epochs: 15, lr: 0.01, batch_size: 128}}"],
)
def test_churn_folder_is_a_working_usecase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, family: str
) -> None:
    folder = tmp_path / "usecases" / "churn"
    folder.mkdir(parents=True)
    usecase_yaml = USECASE.replace(
        "model: {family: FAMILY}", f"model: {family if family.startswith('{') else '{family: ' + family + '}'}"
    )
    (folder / "usecase.yaml").write_text(usecase_yaml)
    (folder / "contract.yaml").write_text(CONTRACT)
    for key, value in embedded_environment(tmp_path / "home").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLCYCLE_USECASES_DIR", str(tmp_path / "usecases"))

    [usecase] = discover_usecases()
    assert sorted(build_dags(usecase)) == ["churn_monitoring", "churn_promotion", "churn_scoring", "churn_training"]

    root = Path(embedded_environment(tmp_path / "home")["MLCYCLE_STORAGE_ROOT"])
    days = [dt.date(2026, 5, 1) + dt.timedelta(days=i) for i in range(6)]
    for day in days:  # the "data source" drops files into landing/, as a real feed would
        landing = root / "churn" / "landing" / f"ds={day}"
        landing.mkdir(parents=True)
        churn_day(day).to_parquet(landing / "data.parquet", index=False)
        (landing / "_SUCCESS").write_text("{}")

    def step(*argv: str) -> dict:
        code = cli_main([argv[0], "--usecase", "churn", "--partition", str(days[-1]), *argv[1:]])
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert code == 0, result
        return result

    step("ingest", "--lookback", "6")
    assert len(step("validate", "--lookback", "6")["metrics"]["passed"]) == 6
    assert step("features")["metrics"]["rows"] == {"train": 2400, "valid": 600, "test": 600}
    trained = step("train")
    assert trained["metrics"]["test_roc_auc"] > 0.6
    if "torch" in family:  # the torch pipeline round-trips through MLflow as a pyfunc, with its curves
        from mlflow.tracking import MlflowClient

        run = MlflowClient().get_run(trained["metrics"]["run_id"])
        assert run.data.params["torch.device"] == "cpu"
        assert len(MlflowClient().get_metric_history(run.info.run_id, "epoch_train_loss")) >= 1
    decision = step("evaluate", "--model-version", trained["metrics"]["model_version"])
    assert step("promote", "--decision", decision["outputs"]["decision"])["metrics"]["champion_version"] == "1"
