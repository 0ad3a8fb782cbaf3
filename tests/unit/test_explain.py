"""`mlcycle explain` on real served predictions, and scoring with each version's own signature (issue 18, items 6, 8a, 8b).

One registry, two champions trained on 09-06 under two different `usecase.yaml`s:

- v1, logistic regression, trained before `discount_pct` was a feature; it scores 09-07 after the feature was added;
- v3, gradient-boosted trees on every feature; it scores 09-08 after `days_since_last_purchase` was removed from the
  features (the old code fed the YAML's columns and could not score it at all);
- v2, v1 with a NaN coefficient (a corrupted model): never @champion but in `test_non_finite_scores_are_never_committed`.

The steps run in-process through the CLI, on YarnIt days of ~800 rows.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcycle.cli import main as cli_main
from mlcycle.config import USECASES_ENV, get_usecase
from mlcycle.exitcodes import ExitCode
from support.cli import CaptureStdout, ok_result, run, step
from support.cli import usecase_root as root
from support.usecases import lenient_usecases

FIRST, TRAINED = dt.date(2026, 9, 1), dt.date(2026, 9, 6)
DAY1, DAY2, DAY3 = dt.date(2026, 9, 7), dt.date(2026, 9, 8), dt.date(2026, 9, 9)
ROWS = 800
ADDED, REMOVED = "discount_pct", "days_since_last_purchase"
MODEL = "yarnit_model"


def _edit(
    config: Path, *, family: str | None = None, params: dict[str, Any] | None = None, metadata: list[str]
) -> None:
    """Set usecase.yaml's model family/params, and make `metadata` (+ customer_id) the only non-feature columns."""
    data = yaml.safe_load(config.read_text())
    everything = [*data["roles"]["features"], *data["roles"]["metadata"]]
    data["roles"]["metadata"] = ["customer_id", *metadata]
    data["roles"]["features"] = [c for c in dict.fromkeys(everything) if c not in data["roles"]["metadata"]]
    if family is not None:
        data["model"]["family"] = family
        data["model"]["params"] = params or {}
    config.write_text(yaml.safe_dump(data, sort_keys=False))


def _train_and_promote(out: Any) -> str:
    ok_result(step(out, "features", TRAINED))
    version = str(ok_result(step(out, "train", TRAINED))["metrics"]["model_version"])
    promote = ["--action", "promote", "--model-version", version, "--approver", "test", "--reason", "test champion"]
    ok_result(step(out, "promote", TRAINED, *promote))
    return version


def _register_with_nan_coefficient(version: str) -> str:
    """A copy of logistic-regression `version` with one coefficient NaN, logged and registered as `train` does."""
    import mlflow

    from mlcycle.registry import integrity
    from mlcycle.steps.models import load_model
    from mlcycle.steps.train import log_model

    usecase = get_usecase("yarnit")
    broken = copy.deepcopy(load_model(usecase, version).get_raw_model())
    names = list(broken[:-1].get_feature_names_out())
    broken[-1].coef_[0, names.index("country_US")] = np.nan  # rows with country US (or all, if dense) score NaN
    features = pd.read_parquet(Path(_storage()) / "yarnit" / "features" / f"ds={TRAINED}" / "train.parquet")
    mlflow.set_experiment("explain-broken-model")
    with mlflow.start_run():
        info = log_model(usecase, broken, features)
    registered = mlflow.register_model(
        info.model_uri, MODEL, tags={integrity.DIGESTS_TAG: integrity.record_logged_model(info.model_uri)}
    )
    return str(registered.version)


def _storage() -> str:
    return os.environ["MLCYCLE_STORAGE_ROOT"]


@pytest.fixture(scope="module")
def world(
    module_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, capture_stdout: CaptureStdout
) -> Iterator[dict[str, Any]]:
    folder = lenient_usecases(tmp_path_factory.mktemp("explain-usecases"))
    mp = pytest.MonkeyPatch()
    mp.setenv(USECASES_ENV, str(folder))
    config = folder / "yarnit" / "usecase.yaml"
    hgb = yaml.safe_load(config.read_text())["model"]
    generate = ["generate", "--usecase", "yarnit", "--start", str(FIRST), "--end", str(DAY3), "--rows", str(ROWS)]
    try:
        assert cli_main(generate) == 0
        with capture_stdout() as out:
            _edit(config, family="sklearn_logreg", metadata=[ADDED])
            ok_result(step(out, "ingest", TRAINED, "--lookback", "6"))
            ok_result(step(out, "validate", TRAINED, "--lookback", "6"))
            logreg = _train_and_promote(out)
            broken = _register_with_nan_coefficient(logreg)
            _edit(config, metadata=[])  # ADDED becomes a feature after v1 was trained
            for day in (DAY1, DAY2, DAY3):
                ok_result(step(out, "ingest", day))
                ok_result(step(out, "validate", day, "--serving"))
            ok_result(step(out, "score", DAY1))
            _edit(config, family=hgb["family"], params=hgb["params"], metadata=[])
            trees = _train_and_promote(out)
            _edit(config, metadata=[REMOVED])  # REMOVED is no longer a feature after v3 was trained
            ok_result(step(out, "score", DAY2))
        yield {"env": {**module_env, USECASES_ENV: str(folder)}, "logreg": logreg, "broken": broken, "trees": trees}
    finally:
        mp.undo()


def _served(day: dt.date, role: str = "champion") -> pd.DataFrame:
    folder = Path(_storage()) / "yarnit" / "predictions" / f"ds={day}" / f"role={role}"
    return pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("part-*.parquet"))], ignore_index=True)


def _validated(day: dt.date) -> pd.DataFrame:
    return pd.read_parquet(Path(_storage()) / "yarnit" / "validated" / f"ds={day}" / "data.parquet")


def _explain(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = cli_main(["explain", "--usecase", "yarnit", *argv])
    out = capsys.readouterr().out
    return code, json.loads([line for line in out.splitlines() if line.startswith("{")][-1]), out


# ------------------------------------------------------------------ item 8a: each version scores with its signature


@pytest.mark.parametrize(("day", "which", "absent_now"), [(DAY1, "logreg", None), (DAY2, "trees", REMOVED)])
def test_a_champion_scores_with_its_own_signature_whatever_usecase_yaml_says_now(
    world: dict[str, Any], day: dt.date, which: str, absent_now: str | None
) -> None:
    from mlcycle.steps.models import load_model
    from mlcycle.training.model_io import signature_columns

    usecase = get_usecase("yarnit")
    version = world[which]
    model = load_model(usecase, version)
    columns = signature_columns(model, version)
    now = [c.name for c in usecase.features]
    if absent_now:  # trained with a feature usecase.yaml no longer lists
        assert absent_now in columns and absent_now not in now
    else:  # trained before ADDED was a feature
        assert ADDED not in columns and ADDED in now
    served, validated = _served(day), _validated(day)
    assert set(served["model_version"]) == {version} and len(served) == len(validated)
    expected = model.get_raw_model().predict_proba(validated[columns])[:, 1]
    np.testing.assert_allclose(served["score"].to_numpy(), expected, rtol=0, atol=1e-12)


def test_a_version_needing_a_column_the_data_lacks_is_refused_by_name(world: dict[str, Any], tmp_path: Path) -> None:
    from mlcycle.specs.names import ModelRole
    from mlcycle.steps.base import Rejected
    from mlcycle.steps.models import load_model
    from mlcycle.steps.score import Scorer, check_inputs

    usecase = get_usecase("yarnit")
    data = tmp_path / "data.parquet"
    _validated(DAY2).drop(columns=["price"]).to_parquet(data)
    champion = Scorer(ModelRole.CHAMPION, world["trees"], load_model(usecase, world["trees"]))
    shadow = Scorer(ModelRole.CHALLENGER, world["logreg"], load_model(usecase, world["logreg"]))
    with pytest.raises(Rejected) as refused:
        check_inputs(usecase, data, [champion, shadow])
    assert f"{MODEL} v{world['trees']} (champion) needs column(s) ['price']" in refused.value.reason
    assert "nothing was scored" in refused.value.reason
    # A shadow that needs it is only left out: its error says why, the champion still scores.
    champion_ok = Scorer(ModelRole.CHAMPION, world["trees"], load_model(usecase, world["trees"]))
    _validated(DAY2).to_parquet(data)
    check_inputs(usecase, data, [champion_ok])
    assert champion_ok.error == ""
    _validated(DAY2).drop(columns=["price"]).to_parquet(data)
    check_inputs(usecase, data, [Scorer(ModelRole.CHAMPION, "x", None, error="refused"), shadow])
    assert shadow.error.startswith(f"{MODEL} v{world['logreg']} (challenger) needs column(s) ['price']")


def test_monitor_scores_an_older_champion_with_its_own_signature(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """A champion registered before reference scores were stored with versions (issue 16): the monitor scores its
    training split itself, fed its signature's columns (REMOVED, no longer in usecase.yaml, included)."""
    from mlflow.tracking import MlflowClient

    from mlcycle.tags import Tag

    client, version = MlflowClient(), world["trees"]
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == version
    recorded = client.get_model_version(MODEL, version).tags[Tag.REFERENCE_SCORES]
    client.delete_model_version_tag(MODEL, version, Tag.REFERENCE_SCORES)
    try:
        result = ok_result(step(capsys, "monitor", DAY2))
    finally:
        client.set_model_version_tag(MODEL, version, Tag.REFERENCE_SCORES, recorded)
    assert result["metrics"]["champion_version"] == version
    prediction = result["metrics"]["prediction_drift"]
    assert prediction["status"] == "computed" and prediction["reference"] == "computed", prediction


def test_evaluate_judges_the_champion_on_its_own_signature(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Champion v3 was trained with REMOVED, which usecase.yaml no longer lists (so today's features lack it): a new
    candidate is evaluated against it, and the champion is measured on the same test rows with its own columns."""
    from mlflow.tracking import MlflowClient
    from sklearn.metrics import roc_auc_score

    from mlcycle.steps.models import load_model
    from mlcycle.training.model_io import signature_columns

    usecase, champion = get_usecase("yarnit"), world["trees"]
    assert REMOVED not in [c.name for c in usecase.features]
    day = TRAINED - dt.timedelta(days=1)  # a features partition of its own: explain reads TRAINED's
    try:
        features = Path(ok_result(step(capsys, "features", day))["outputs"]["features"])
        candidate = str(ok_result(step(capsys, "train", day))["metrics"]["model_version"])
        evaluated = ok_result(step(capsys, "evaluate", day, "--model-version", candidate))
    finally:
        MlflowClient().delete_registered_model_alias(MODEL, "challenger")  # train made the candidate @challenger
    record = json.loads((Path(evaluated["outputs"]["decision"]) / "decision.json").read_text())
    test = pd.read_parquet(features / "test.parquet")
    assert record["champion_version"] == champion and REMOVED not in test.columns
    # By hand: the same test rows, the champion's signature columns from the validated days they came from.
    test_days = sorted(set(test["event_ts"].dt.date))
    validated = pd.concat([_validated(test_day) for test_day in test_days], ignore_index=True)
    rows = test[[usecase.key, usecase.target.name]].merge(validated.drop(columns=usecase.target.name), on=usecase.key)
    model = load_model(usecase, champion)
    columns = signature_columns(model, champion)
    assert REMOVED in columns and len(rows) == len(test)
    expected = roc_auc_score(rows[usecase.target.name], model.get_raw_model().predict_proba(rows[columns])[:, 1])
    assert record["evidence"]["champion"]["metrics"]["roc_auc"] == pytest.approx(expected, abs=1e-12)


# ------------------------------------------------------------------ item 8b: no NaN or inf is ever served


def test_non_finite_scores_are_never_committed(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow.tracking import MlflowClient

    from mlcycle.steps.models import load_model
    from mlcycle.training.model_io import model_input

    usecase, client = get_usecase("yarnit"), MlflowClient()
    broken = load_model(usecase, world["broken"])
    scores = broken.get_raw_model().predict_proba(model_input(broken, _validated(DAY3), "broken"))[:, 1]
    bad = int((~np.isfinite(scores)).sum())
    assert 0 < bad, "the corrupted version must score some rows NaN for this test to mean anything"
    predictions = root(world["env"]) / "predictions" / f"ds={DAY3}"
    client.set_registered_model_alias(MODEL, "champion", world["broken"])
    try:
        code, result = step(capsys, "score", DAY3)
        assert code == ExitCode.REJECTED, result
        assert result["reason"] == (
            f"{MODEL} v{world['broken']} (champion) returned {bad} non-finite score(s) (NaN or infinite) of "
            f"{len(scores)} rows of {_storage()}/yarnit/validated/ds={DAY3}; nothing was committed"
        )
        assert not predictions.exists()
        # As the shadow: its predictions are dropped and reported; the champion's are committed.
        client.set_registered_model_alias(MODEL, "champion", world["trees"])
        client.set_registered_model_alias(MODEL, "challenger", world["broken"])
        result = ok_result(step(capsys, "score", DAY3))
        assert f"returned {bad} non-finite score(s)" in result["metrics"]["challenger_error"]
        assert (predictions / "role=champion").exists() and not (predictions / "role=challenger").exists()
    finally:
        client.set_registered_model_alias(MODEL, "champion", world["trees"])
        client.delete_registered_model_alias(MODEL, "challenger")


# ------------------------------------------------------------------ item 6: mlcycle explain


def test_explain_a_logistic_regression_row_reproduces_its_served_score_with_linear_terms(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from mlcycle.steps.models import load_model
    from mlcycle.training.model_io import signature_columns

    served = _served(DAY1).iloc[17]
    code, result, text = _explain(capsys, "--partition", str(DAY1), "--row", "17")
    assert code == 0, result
    explanation = result["metrics"]["explanation"]
    assert explanation["prediction"]["prediction_id"] == served["prediction_id"]
    assert explanation["model"]["version"] == world["logreg"]
    score = explanation["score"]
    assert score["served"] == served["score"] and abs(score["reproduced"] - served["score"]) <= 1e-12
    assert score["equal"] is True and result["metrics"]["reproduced"] is True
    assert explanation["decision"]["served"] == explanation["decision"]["reproduced"] == served["decision"]
    # The model input is the version's signature: trained before ADDED was a feature.
    columns = signature_columns(load_model(get_usecase("yarnit"), world["logreg"]), "v1")
    given = {c["column"]: c["value"] for c in explanation["input"]}
    assert [c["column"] for c in explanation["input"]] == columns and ADDED not in given
    row = _validated(DAY1).iloc[17]
    assert all(given[c] == row[c] or (pd.isna(row[c]) and given[c] is None) for c in columns)
    # Linear terms: coef x value per transformed column, summing with the intercept to the served score's logit.
    terms = explanation["contributions"]
    assert terms["method"] == "linear terms"
    vector = {c["column"]: c["value"] for c in explanation["feature_vector"]}
    assert {t["feature"] for t in terms["terms"]} == set(vector) and len(vector) > len(columns)  # one-hot columns
    for t in terms["terms"]:
        assert t["term"] == t["coef"] * vector[t["feature"]]
    logit = terms["intercept"] + sum(t["term"] for t in terms["terms"])
    assert abs(1 / (1 + math.exp(-logit)) - served["score"]) <= 1e-12
    assert f"decision {int(served['decision'])} at threshold" in text and "equal within 1e-12" in text


def test_explain_a_tree_model_prediction_by_id(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    served = _served(DAY2).iloc[42]
    code, result, text = _explain(capsys, "--prediction-id", str(served["prediction_id"]), "--json")
    assert code == 0, result
    assert text.count("\n") == 1, "--json prints only the result line"
    explanation = result["metrics"]["explanation"]
    assert explanation["model"]["version"] == world["trees"]
    assert explanation["score"]["reproduced"] == pytest.approx(served["score"], abs=1e-12, rel=0)
    inputs = [c["column"] for c in explanation["input"]]
    assert REMOVED in inputs, "the version's signature, not today's feature list"
    # The raw row as landed: the same session, with the columns the model never sees.
    raw = explanation["raw"]
    assert raw["row"]["session_id"] == served["session_id"] and "customer_id" in raw["row"]
    assert raw["digest"] == explanation["prediction"]["scored_data"]["raw_digest"]
    contract = explanation["contract"]
    assert contract["profile"] == "serving" and contract["row_verdict"] == "passed"
    rules = {(c["rule"], c["column"]) for c in contract["row_checks"]}
    assert {
        ("range", "price"),
        ("allowed", "country"),
        ("regex", "session_id"),
        ("compare", "customer_tenure_days"),
    } <= rules
    assert ("timestamp_in_partition", "event_ts") in rules and not any(c == "purchased" for _, c in rules)
    dataset = {c["rule"] for c in contract["dataset_checks"]}
    assert {"columns", "forbidden_columns", "key_unique", "mean", "median", "distinct", "row_count"} <= dataset
    assert "label_positive_rate" not in dataset, "the serving profile has no rule on the label"
    # Baseline deltas, one per input column, seeded: the same call gives the same numbers.
    deltas = explanation["contributions"]
    assert deltas["method"] == "baseline deltas" and deltas["seed"] == 42 and deltas["reference_rows"] == 100
    assert sorted(d["feature"] for d in deltas["deltas"]) == sorted(inputs)
    assert any(abs(d["delta"]) > 0 for d in deltas["deltas"])
    _, again, _ = _explain(capsys, "--prediction-id", str(served["prediction_id"]), "--json")
    assert again["metrics"]["explanation"]["contributions"] == deltas


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--partition", str(DAY1), "--row", "100000"], "--row 100000 is past its end"),
        (["--prediction-id", f"20260907-999999:{MODEL}:1"], "is in no committed partition"),
        (["--prediction-id", "not-an-id"], "is not a prediction id"),
        (["--partition", str(FIRST), "--row", "0"], "no committed predictions partition"),
    ],
)
def test_a_question_without_an_answer_is_rejected_with_the_reason(
    world: dict[str, Any], argv: list[str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = run(capsys, "explain", "--usecase", "yarnit", *argv)
    assert code == ExitCode.REJECTED and reason in result["reason"], result


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--row", "3"],
        ["--prediction-id", "x:y:1", "--row", "3", "--partition", "2026-09-07"],
        ["--prediction-id", "x:y:1", "--role", "champion"],
        ["--partition", "2026-09-07", "--row", "-1"],
    ],
)
def test_one_prediction_per_call_is_a_usage_error_otherwise(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli_main(["explain", "--usecase", "yarnit", *argv])
    assert stopped.value.code == ExitCode.USAGE
    assert "usage" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["reason"]


def test_explain_loads_neither_great_expectations_nor_evidently(world: dict[str, Any]) -> None:
    """In a fresh interpreter (this one has loaded everything): what `mlcycle explain` imports is what it costs."""
    probe = (
        "import json, sys, time\n"
        "started = time.perf_counter()\n"
        "from mlcycle.cli import main\n"
        f"code = main(['explain', '--usecase', 'yarnit', '--partition', '{DAY1}', '--row', '3', '--json'])\n"
        "print(json.dumps({'code': code, 'seconds': time.perf_counter() - started,"
        " 'loaded': sorted({m.split('.')[0] for m in sys.modules} & {'great_expectations', 'evidently'})}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=world["env"], capture_output=True, text=True, timeout=300, check=False
    )
    probed = json.loads(out.stdout.strip().splitlines()[-1])
    assert probed["code"] == 0 and probed["loaded"] == [], out.stderr[-3000:]
    print(f"mlcycle explain in a fresh interpreter: {probed['seconds']:.1f} s")
