"""Each lifecycle step through its CLI, on a small YarnIt dataset: outputs, idempotency, exit codes."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlcycle.evaluation.compute import regressions
from mlcycle.exitcodes import ExitCode
from support.cli import CaptureStdout, ok_result, run, step
from support.cli import usecase_root as root

FIRST, LAST = dt.date(2026, 9, 1), dt.date(2026, 9, 8)
ROWS = 900


def _generate(capsys: Any, *extra: str) -> tuple[int, dict[str, Any]]:
    window = ("--start", str(FIRST), "--end", str(LAST), "--rows", str(ROWS))
    return run(capsys, "generate", "--usecase", "yarnit", *window, *extra)


def _versions() -> set[str]:
    from mlflow.tracking import MlflowClient

    return {str(v.version) for v in MlflowClient().search_model_versions("name='yarnit_model'")}


def _champion() -> str:
    from mlflow.tracking import MlflowClient

    return str(MlflowClient().get_model_version_by_alias("yarnit_model", "champion").version)


# Each test gets the state it needs from these fixtures, never from an earlier test: the module's stores are
# shared (training is the costly part), and a test that changes the registry leaves @champion where it found it.
@pytest.fixture(scope="module")
def env(module_env: dict[str, str], capture_stdout: CaptureStdout) -> dict[str, str]:
    """Eight landed, ingested and validated YarnIt days, FIRST..LAST."""
    with capture_stdout() as out:
        ok_result(_generate(out))
        for name in ("ingest", "validate"):
            ok_result(step(out, name, LAST, "--lookback", "8"))
    return module_env


@pytest.fixture(scope="module")
def champion(env: dict[str, str], capture_stdout: CaptureStdout) -> dict[str, dict[str, Any]]:
    """Version 1 trained on LAST's features, gated and promoted to @champion: each step's result."""
    with capture_stdout() as out:
        results = {"features": ok_result(step(out, "features", LAST)), "train": ok_result(step(out, "train", LAST))}
        version = results["train"]["metrics"]["model_version"]
        results["evaluate"] = ok_result(step(out, "evaluate", LAST, "--model-version", version))
        results["promote"] = ok_result(
            step(out, "promote", LAST, "--decision", results["evaluate"]["outputs"]["decision"])
        )
    return results


@pytest.fixture(scope="module")
def candidate(champion: dict[str, dict[str, Any]], capture_stdout: CaptureStdout) -> str:
    """A second version, trained on the same inputs with the cache off, never promoted by any test."""
    with capture_stdout() as out:
        trained = ok_result(step(out, "train", LAST, "--cache", "off"))
    assert not trained["metrics"]["cache_hit"]
    return str(trained["metrics"]["model_version"])


def test_help_explains_every_step() -> None:
    out = subprocess.run([str(Path(sys.executable).parent / "mlcycle"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ("ingest", "validate", "features", "train", "evaluate", "promote", "score", "monitor"):
        assert name in out.stdout
    assert "65 rejected" in out.stdout and "99 nothing to do" in out.stdout


def test_generate_and_ingest(mlcycle_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, result = _generate(capsys)
    assert code == 0 and len(result["metrics"]["rows"]) == 8
    code, result = step(capsys, "ingest", LAST, "--lookback", "8")
    assert code == 0 and len(result["metrics"]["written"]) == 8
    assert len(result["metrics"]["digest"]) == 64
    code, again = step(capsys, "ingest", LAST, "--lookback", "8")
    assert code == 0 and len(again["metrics"]["unchanged"]) == 8, "re-running ingest changes nothing"


def test_ingest_without_landing_data_is_an_error(
    mlcycle_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = step(capsys, "ingest", dt.date(2027, 1, 1))
    assert code == ExitCode.ERROR and "no landing partition" in result["reason"]


def test_validate_window(mlcycle_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    ok_result(_generate(capsys))
    ok_result(step(capsys, "ingest", LAST, "--lookback", "8"))
    code, result = step(capsys, "validate", LAST, "--lookback", "8")
    assert code == 0 and len(result["metrics"]["passed"]) == 8
    assert result["metrics"]["summary"]["success"] is True
    code, again = step(capsys, "validate", LAST)
    assert code == 0 and again["metrics"]["unchanged"] == [LAST.isoformat()]


def test_validate_rejects_and_quarantines_then_recovers(
    mlcycle_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    env, bad_day = mlcycle_env, dt.date(2026, 9, 9)
    landing = root(env) / "landing"
    run(capsys, "generate", "--usecase", "yarnit", "--start", str(bad_day), "--end", str(bad_day), "--rows", str(ROWS),
        "--scenario", f"schema_break:{bad_day}")  # fmt: skip
    assert step(capsys, "ingest", bad_day)[0] == 0
    code, result = step(capsys, "validate", bad_day)
    assert code == ExitCode.REJECTED
    assert "quarantine" in result["quarantine"]
    reason = json.loads((root(env) / "quarantine" / f"ds={bad_day}" / "reason.json").read_text())
    assert any("price" in line for line in reason["failed"]), reason["failed"]
    assert not (root(env) / "validated" / f"ds={bad_day}").exists()
    # The fix lands (good data for the day), the step re-runs and succeeds; quarantine is cleared.
    run(capsys, "generate", "--usecase", "yarnit", "--start", str(bad_day), "--end", str(bad_day), "--rows", str(ROWS))
    assert landing.joinpath(f"ds={bad_day}", "data.parquet").exists()
    assert step(capsys, "ingest", bad_day)[0] == 0
    assert step(capsys, "validate", bad_day)[0] == 0
    assert not (root(env) / "quarantine" / f"ds={bad_day}").exists()


def test_features_needs_enough_partitions(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, result = step(capsys, "features", FIRST + dt.timedelta(days=2))
    assert code == ExitCode.NOTHING_TO_DO and "need split.min_partitions=5" in result["reason"]


def test_features_split_by_time(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, result = step(capsys, "features", LAST)
    assert code == 0
    folder = Path(result["outputs"]["features"])
    train, test = pd.read_parquet(folder / "train.parquet"), pd.read_parquet(folder / "test.parquet")
    assert train["event_ts"].max() < test["event_ts"].min()
    assert set(train["session_id"]).isdisjoint(test["session_id"])
    assert "customer_id" not in train.columns, "metadata columns never reach features"


def test_train_evaluate_promote(champion: dict[str, dict[str, Any]]) -> None:
    from mlflow.tracking import MlflowClient

    trained, evaluated, promoted = champion["train"], champion["evaluate"], champion["promote"]
    assert trained["metrics"]["model_version"] == "1" and trained["metrics"]["cache_hit"] is False
    assert trained["metrics"]["test_roc_auc"] > 0.6
    assert evaluated["metrics"]["decision"] == "promote", evaluated["metrics"]
    assert promoted["metrics"]["champion_version"] == "1"
    client = MlflowClient()
    version = client.get_model_version_by_alias("yarnit_model", "champion")
    assert str(version.version) == "1"
    assert version.tags["mlcycle.gate.decision"] == "promote"
    assert version.tags["mlcycle.features_uri"].endswith(f"features/ds={LAST}")
    run_ = client.get_run(version.tags["mlcycle.run_id"])
    assert run_.data.tags["mlcycle.partition"] == LAST.isoformat()
    assert {i.dataset.name for i in run_.inputs.dataset_inputs} == {"yarnit-train", "yarnit-valid", "yarnit-test"}
    plots = {a.path for a in client.list_artifacts(run_.info.run_id, "plots")}
    assert {"plots/roc.png", "plots/pr.png", "plots/calibration.png", "plots/confusion_matrix.png"} <= plots
    card = client.download_artifacts(run_.info.run_id, "model_card.md")
    assert "Gate decision" in Path(card).read_text() and "**promote**" in Path(card).read_text()
    assert run_.data.metrics["test_roc_auc"] > 0.6 and "test_brier" in run_.data.metrics


def _record(evaluated: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((Path(evaluated["outputs"]["decision"]) / "decision.json").read_text())
    return record


def _run_metrics(version: str) -> dict[str, float]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    run_id = client.get_model_version("yarnit_model", version).tags["mlcycle.run_id"]
    return dict(client.get_run(run_id).data.metrics)


def test_evaluate_records_the_simple_model_feature_value_and_compute(champion: dict[str, dict[str, Any]]) -> None:
    from mlflow.tracking import MlflowClient

    from mlcycle.config import get_usecase

    record = _record(champion["evaluate"])
    simple = record["evidence"]["simple_model"]
    assert simple["family"] == "sklearn_logreg" and 0.6 < simple["metrics"]["roc_auc"] < 1, simple
    assert record["evidence"]["baseline"]["roc_auc"] == 0.5, "the constant prior stays as the floor"
    assert record["checks"]["simple_model"] is True and record["checks"]["baseline"] is True
    assert champion["evaluate"]["metrics"]["simple_model"]["roc_auc"] == round(simple["metrics"]["roc_auc"], 5)
    features = {c.name for c in get_usecase("yarnit").features}
    assert set(record["feature_value"]["importance"]) == features
    assert sum(record["feature_value"]["predict_work_share"].values()) == pytest.approx(1.0)
    figures = record["compute"]["candidate"]
    assert all(figures[name] > 0 for name in ("fit_seconds", "train_peak_memory_mb", "latency_p95_ms")), figures
    assert figures["throughput_rows_s"] > 0 and record["compute"]["champion"] is None, "no champion to compare with"
    # What the training DAG's compute-regression alert reads: nothing to compare with, so no regression.
    assert champion["evaluate"]["metrics"]["compute"] == {"mode": "soft", "factor": 2.0, "regressions": []}

    metrics = _run_metrics("1")
    assert metrics["baseline.simple_model.roc_auc"] == pytest.approx(simple["metrics"]["roc_auc"])
    assert metrics["baseline.prior.roc_auc"] == 0.5
    assert metrics["importance.pages_viewed"] == pytest.approx(record["feature_value"]["importance"]["pages_viewed"])
    assert {"predict_work_share.price", "train_peak_memory_mb", "latency_p95_ms", "throughput_rows_s"} <= set(metrics)
    client = MlflowClient()
    run_id = client.get_model_version("yarnit_model", "1").tags["mlcycle.run_id"]
    assert "evaluation/feature_value.json" in {a.path for a in client.list_artifacts(run_id, "evaluation")}
    card = Path(client.download_artifacts(run_id, "model_card.md")).read_text()
    assert "simple model `sklearn_logreg`" in card and "## Feature value and cost" in card
    assert "## Computing performance" in card


def test_a_candidate_that_does_not_beat_the_simple_model_is_rejected(
    champion: dict[str, dict[str, Any]],
    candidate: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import shutil

    import yaml

    from mlcycle.config import DEFAULT_USECASES_DIR

    # The same use case, but the candidate must beat logistic regression by 0.05 (it trails it on YarnIt), and a
    # feature without value for 2 trainings (this candidate's and the version registered just before it, read from
    # the registry) is a warning.
    shutil.copytree(DEFAULT_USECASES_DIR / "yarnit", tmp_path / "yarnit")
    config = tmp_path / "yarnit" / "usecase.yaml"
    data = yaml.safe_load(config.read_text())
    data["thresholds"]["gate"].update(baseline_model_hurdle=0.05, unimportant_feature_trainings=2)
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("MLCYCLE_USECASES_DIR", str(tmp_path))
    # The tests of this module share one registry, in any order: another may have registered a version between
    # version 1 and the candidate without evaluating it. The streak needs that version's importances.
    previous = str(int(candidate) - 1)
    if not any(key.startswith("importance.") for key in _run_metrics(previous)):
        ok_result(step(capsys, "evaluate", LAST, "--model-version", previous))

    evaluated = ok_result(step(capsys, "evaluate", LAST, "--model-version", candidate))
    record = _record(evaluated)
    simple = record["evidence"]["simple_model"]["metrics"]["roc_auc"]
    assert record["decision"] == "reject" and record["checks"]["simple_model"] is False
    assert (
        f"roc_auc={record['candidate']:.4f} does not beat the simple model sklearn_logreg {simple:.4f} by the hurdle 0.05"
        in record["reasons"]
    )
    assert record["evidence"]["candidate"]["metrics"]["roc_auc"] == record["candidate"], "both metrics in the record"
    # The champion's computing performance, measured beside the candidate's; the result carries the comparison the
    # training DAG's compute-regression alert reads, the same as the record's.
    assert all(value > 0 for value in record["compute"]["champion"].values()), record["compute"]
    figures = record["compute"]
    expected = [r.model_dump() for r in regressions(figures["candidate"], figures["champion"], figures["factor"])]
    assert evaluated["metrics"]["compute"]["regressions"] == figures["regressions"] == expected
    earlier = {
        k.removeprefix("importance."): v for k, v in _run_metrics(previous).items() if k.startswith("importance.")
    }
    importance = record["feature_value"]["importance"]
    expected = {name for name, value in importance.items() if value <= 0 and earlier[name] <= 0}
    assert expected, f"YarnIt has features without effect; none measured <= 0 twice: {importance} / {earlier}"
    assert set(record["feature_value"]["unimportant"]) == expected
    assert len([w for w in record["warnings"] if "permutation importance <= 0" in w]) == len(expected)
    assert _champion() == "1"


def test_stale_decision_loses_the_compare_and_set(
    champion: dict[str, dict[str, Any]], candidate: str, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluated = ok_result(
        step(capsys, "evaluate", LAST, "--model-version", candidate)
    )  # evaluated while v1 is champion
    decision_file = Path(evaluated["outputs"]["decision"]) / "decision.json"
    record = json.loads(decision_file.read_text())
    assert record["candidate_version"] == candidate and record["champion_version"] == "1"
    # Someone else moved the champion in between: the decision is stale and must not win.
    record.update(decision="promote", champion_version=None)
    decision_file.write_text(json.dumps(record))
    code, result = step(capsys, "promote", LAST, "--decision", evaluated["outputs"]["decision"])
    assert code == ExitCode.REJECTED and "champion changed since evaluation" in result["reason"]
    assert _champion() == "1"


def test_rejected_candidate_leaves_the_champion(
    champion: dict[str, dict[str, Any]], candidate: str, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluated = ok_result(step(capsys, "evaluate", LAST, "--model-version", candidate))
    decision_file = Path(evaluated["outputs"]["decision"]) / "decision.json"
    record = json.loads(decision_file.read_text())
    record.update(decision="reject", reasons=["roc_auc=0.70 does not beat champion 0.80 by 0.0"])
    decision_file.write_text(json.dumps(record))
    code, result = step(capsys, "promote", LAST, "--decision", evaluated["outputs"]["decision"])
    assert code == ExitCode.NOTHING_TO_DO and "gate decided 'reject'" in result["reason"]
    assert _champion() == "1"


def test_same_inputs_twice_is_a_cache_hit(
    champion: dict[str, dict[str, Any]], candidate: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _versions()
    newest = str(max(int(v) for v in before))  # every version of this module is trained on LAST's inputs
    again = ok_result(step(capsys, "train", LAST))
    assert again["metrics"]["cache_hit"] is True
    assert again["metrics"]["model_version"] == newest, "the newest identical run is reused"
    assert _versions() == before
    forced = ok_result(step(capsys, "train", LAST, "--cache", "off"))
    assert forced["metrics"]["cache_hit"] is False and forced["metrics"]["model_version"] == str(int(newest) + 1)
    # Same data, config and seed: the retrained model measures the same.
    for metric in ("valid_roc_auc", "test_roc_auc", "test_log_loss"):
        assert forced["metrics"][metric] == pytest.approx(again["metrics"][metric], abs=1e-6)


def test_report_lists_every_version(
    champion: dict[str, dict[str, Any]], candidate: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = run(capsys, "report", "--usecase", "yarnit")
    assert code == 0
    versions = {row["version"]: row for row in result["metrics"]["versions"]}
    assert set(versions) == _versions() and {"1", candidate} <= set(versions)
    assert versions["1"]["champion_periods"] and versions["1"]["champion_periods"][-1][1] is None
    assert versions[candidate]["champion_periods"] == [], "never promoted, never champion"


def test_manual_promote_and_rollback(champion: dict[str, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow.tracking import MlflowClient

    # Its own version: the candidate fixture's must stay a version that was never champion.
    reviewed = ok_result(step(capsys, "train", LAST, "--cache", "off"))["metrics"]["model_version"]
    code, _ = step(capsys, "promote", LAST, "--action", "promote", "--model-version", reviewed, "--approver", "ana",
                   "--reason", "reviewed")  # fmt: skip
    assert code == 0
    client = MlflowClient()
    promoted = client.get_model_version_by_alias("yarnit_model", "champion")
    assert str(promoted.version) == reviewed and promoted.tags["mlcycle.previous_champion"] == "1"
    assert promoted.tags["mlcycle.approver"] == "ana"
    code, result = step(capsys, "promote", LAST, "--action", "rollback", "--approver", "ana", "--reason", "bad")
    assert code == 0 and result["metrics"]["champion_version"] == "1"
    assert _champion() == "1"
    periods = json.loads(client.get_model_version("yarnit_model", reviewed).tags["mlcycle.champion_periods"])
    assert len(periods) == 1 and periods[0][1] is not None, "the reviewed version's reign is closed by the rollback"


def test_score_uses_the_champion_version(
    env: dict[str, str], champion: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = step(capsys, "score", LAST)
    assert code == 0 and result["metrics"]["model_version"] == "1"
    predictions = pd.read_parquet(result["outputs"]["predictions"])
    validated = pd.read_parquet(root(env) / "validated" / f"ds={LAST}" / "data.parquet")
    assert len(predictions) == len(validated) and predictions["prediction_id"].is_unique
    assert set(predictions["model_version"]) == {"1"} and set(predictions["model_role"]) == {"champion"}
    assert predictions["score"].between(0, 1).all()
    assert step(capsys, "score", LAST)[1]["metrics"] == result["metrics"], "re-scoring is idempotent"


def test_monitor_writes_the_drift_report(champion: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, result = step(capsys, "monitor", LAST)
    assert code == 0
    assert result["metrics"]["dataset_drift"] is False, "a normal day does not drift from the training data"
    report = Path(result["outputs"]["report"])
    assert "<html" in report.read_text()[:5000].lower()
    summary = json.loads((report.parent / "summary.json").read_text())
    assert {c["stattest"] for c in summary["columns"]} == {"ks", "chisquare"}


def test_score_without_champion_is_nothing_to_do(
    mlcycle_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = step(capsys, "score", LAST)
    assert code == ExitCode.NOTHING_TO_DO and "no @champion" in result["reason"]
