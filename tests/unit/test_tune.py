"""The tune step (issue 18, item 1): a seeded search on the valid split, reused within `every`, read by train.

One small tuned copy of yarnit (3 trials of a random search, `support.usecases.TUNED_SEARCH`), seven landed days.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlcycle.config import DEFAULT_USECASES_DIR, UseCase, UseCaseConfigError, load_usecase
from mlcycle.exitcodes import ExitCode
from mlcycle.storage.layout import BEST_PARAMS_FILE, Dataset, split_file
from support.cli import CaptureStdout, ok_result, run, step
from support.usecases import TUNED_SEARCH, tuned_usecase

NAME = "tuned"
FIRST, LAST = dt.date(2026, 9, 1), dt.date(2026, 9, 7)
EARLIER = LAST - dt.timedelta(days=1)
#: The day whose test labels one test withdraws: its own features and tuning partitions, read by no other test.
POISONED = LAST - dt.timedelta(days=2)
ROWS = 750


def _usecase() -> UseCase:
    from mlcycle.config import get_usecase

    return get_usecase(NAME)


def _context(usecase: UseCase, day: dt.date) -> Any:
    from mlcycle.settings import storage_root
    from mlcycle.steps.base import StepContext
    from mlcycle.storage.partitions import Storage

    return StepContext(usecase=usecase, partition=day, storage=Storage(storage_root()))


def _splits(day: dt.date) -> dict[str, pd.DataFrame]:
    ctx = _context(_usecase(), day)
    with ctx.storage.local_copy(ctx.uri(Dataset.FEATURES)) as folder:
        return {s: pd.read_parquet(folder / split_file(s)) for s in ("train", "valid", "test")}


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Every fit on one OpenMP thread: on a shared 2-core machine the default (one thread per core, spinning)
    makes a gradient boosting fit of these few rows 20-40 times slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def env(
    module_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, capture_stdout: CaptureStdout
) -> Iterator[dict[str, str]]:
    """The tuned use case (and yarnit, untuned) with FIRST..LAST landed, validated, and features of the last 3 days."""
    usecases = tmp_path_factory.mktemp("usecases")
    tuned_usecase(usecases, NAME)
    shutil.copytree(DEFAULT_USECASES_DIR / "yarnit", usecases / "yarnit")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLCYCLE_USECASES_DIR", str(usecases))
    window = ("--start", str(FIRST), "--end", str(LAST), "--rows", str(ROWS))
    with capture_stdout() as out:
        ok_result(run(out, "generate", "--usecase", NAME, *window))
        for name in ("ingest", "validate"):
            ok_result(step(out, name, LAST, "--lookback", "7", usecase=NAME))
        for day in (POISONED, EARLIER, LAST):
            ok_result(step(out, "features", day, usecase=NAME))
    yield module_env
    mp.undo()


@pytest.fixture(scope="module")
def searched(env: dict[str, str], capture_stdout: CaptureStdout) -> dict[str, Any]:
    """`mlcycle tune` on EARLIER: a search (`--reuse off`: whichever test ran before, EARLIER's search is new)."""
    with capture_stdout() as out:
        return ok_result(step(out, "tune", EARLIER, "--reuse", "off", usecase=NAME))


def test_the_search_is_reproducible(searched: dict[str, Any]) -> None:
    """The step's search on EARLIER, run again with the same seed: the same candidates, scores and best."""
    from mlflow.tracking import MlflowClient

    from mlcycle.training.search import run_search, sample_candidates

    usecase, splits = _usecase(), _splits(EARLIER)
    again = run_search(usecase, splits["train"], splits["valid"])
    assert again.best.params == searched["metrics"]["params"] and len(again.trials) == TUNED_SEARCH["trials"]
    assert again.best.valid_score == searched["metrics"]["best_valid_score"]
    logged = MlflowClient().search_runs(
        [MlflowClient().get_run(searched["metrics"]["search_run_id"]).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{searched['metrics']['search_run_id']}'",
    )
    by_number = {int(run.data.tags["mlcycle.tune.trial"]): run.data.metrics["valid_roc_auc"] for run in logged}
    assert by_number == pytest.approx({t.number: t.valid_score for t in again.trials})
    assert again.best.valid_score == max(t.valid_score for t in again.trials)  # roc_auc: higher is better
    search = usecase.model.search
    assert search is not None
    reseeded = sample_candidates(search.model_copy(update={"seed": search.seed + 1}))
    assert reseeded != sample_candidates(search), "another seed draws other candidates"
    for candidate in sample_candidates(search.model_copy(update={"trials": 50})):
        assert 10 <= int(candidate["max_iter"]) <= 30 and 0.03 <= float(candidate["learning_rate"]) <= 0.3
        assert candidate["max_leaf_nodes"] in (7, 15, 31)


def _searching(usecase: UseCase, **changes: Any) -> UseCase:
    """The use case with its search changed, over a cheap space (a few boosting iterations: budget tests)."""
    from mlcycle.config import Search

    cheap = {"params": {"max_iter": {"type": "int", "low": 3, "high": 8}}}
    changed = Search.model_validate({**TUNED_SEARCH, **cheap, **changes})
    return usecase.model_copy(update={"model": usecase.model.model_copy(update={"search": changed})})


def test_the_search_respects_its_budget_in_trials_and_time(env: dict[str, str]) -> None:
    from mlcycle.training.search import run_search

    usecase, splits = _usecase(), _splits(LAST)
    halving = _searching(usecase, strategy="successive_halving", trials=4, halving_factor=2)
    outcome = run_search(halving, splits["train"], splits["valid"])
    # Round 0: the 4 candidates on half the train rows; round 1: the best 2 on every row.
    rows = len(splits["train"])
    assert [(t.round, t.train_rows) for t in outcome.trials] == [(0, rows // 2)] * 4 + [(1, rows)] * 2
    assert outcome.stopped_by == "trials" and outcome.best.round == 1
    survivors = sorted(outcome.trials[:4], key=lambda t: -t.valid_score)[:2]
    assert {t.candidate for t in outcome.trials[4:]} == {t.candidate for t in survivors}

    # A clock that moves 100 s per look, against a 150 s budget: the second fit starts at 100 s, the third
    # would start at 200 s.
    ticks = itertools.count(0, 100)
    timed = _searching(usecase, trials=10, max_time="150s")
    stopped = run_search(timed, splits["train"], splits["valid"], clock=lambda: float(next(ticks)))
    assert len(stopped.trials) == 2 and stopped.stopped_by == "time"


def test_the_search_scores_on_valid_and_never_reads_test(env: dict[str, str], capsys: Any) -> None:
    """With the test split's labels withdrawn (any metric on them raises), tune still searches; the best trial's
    score is the valid metric, recomputed here."""
    from mlcycle.training.metrics import classification_metrics
    from mlcycle.training.model_io import feature_frame
    from mlcycle.training.search import with_params
    from mlcycle.training.trainers import build_model

    usecase = _usecase()
    ctx = _context(usecase, POISONED)
    uri, splits = ctx.uri(Dataset.FEATURES), _splits(POISONED)
    manifest = ctx.storage.manifest(uri)
    assert manifest is not None
    kept = {k: v for k, v in manifest.items() if k not in ("uri", "files", "committed_at")}
    with ctx.storage.writer(uri, kept) as staging:
        for name, table in splits.items():
            unlabelled = table.assign(**{usecase.target.name: float("nan")}) if name == "test" else table
            unlabelled.to_parquet(staging / split_file(name), index=False)
    metrics = ok_result(step(capsys, "tune", POISONED, "--reuse", "off", usecase=NAME))["metrics"]
    assert metrics["reused"] is False and metrics["trials"] == 3 and metrics["metric"] == "roc_auc"
    model = build_model(with_params(usecase, metrics["params"]))
    target = usecase.target.name
    model.fit(feature_frame(usecase, splits["train"]), splits["train"][target])
    valid = model.predict_proba(feature_frame(usecase, splits["valid"]))[:, 1]
    expected = classification_metrics(splits["valid"][target].to_numpy(), valid, usecase.model.decision_threshold)
    assert metrics["best_valid_score"] == pytest.approx(expected["roc_auc"], abs=1e-12)


def test_each_fit_is_a_nested_run_of_the_search(searched: dict[str, Any]) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    search_run = client.get_run(searched["metrics"]["search_run_id"])
    trials = client.search_runs(
        [search_run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{search_run.info.run_id}'"
    )
    assert len(trials) == TUNED_SEARCH["trials"]
    for trial in trials:
        assert {"valid_roc_auc", "fit_seconds"} <= set(trial.data.metrics)
        assert {"model.max_iter", "model.learning_rate", "model.max_leaf_nodes"} <= set(trial.data.params)
    parent = client.get_run(search_run.data.tags["mlflow.parentRunId"])  # the DAG run's parent run
    assert parent.data.tags["mlcycle.role"] == "parent" and search_run.data.tags["mlcycle.role"] == "search"
    best = max(trials, key=lambda t: t.data.metrics["valid_roc_auc"])
    assert searched["metrics"]["best_valid_score"] == pytest.approx(best.data.metrics["valid_roc_auc"])
    document = json.loads((Path(searched["outputs"]["best_params"]) / BEST_PARAMS_FILE).read_text())
    assert document["params"] == searched["metrics"]["params"] and document["searched_on"] == str(EARLIER)


def test_a_search_younger_than_every_is_reused(searched: dict[str, Any], capsys: Any) -> None:
    from mlcycle.steps.tune import reusable, search_fingerprint

    reused = ok_result(step(capsys, "tune", LAST, usecase=NAME))
    metrics = reused["metrics"]
    assert metrics["reused"] is True and metrics["stopped_by"] == "reused" and metrics["trials"] == 0
    assert metrics["search_run_id"] == searched["metrics"]["search_run_id"] and metrics["searched_on"] == str(EARLIER)
    assert metrics["params"] == searched["metrics"]["params"]
    # The same search, one day older than a 1-day `every`: searched again.
    usecase = _usecase()
    search = usecase.model.search
    assert search is not None
    daily = search.model_copy(update={"every": dt.timedelta(days=1)})
    assert reusable(_context(usecase, LAST), daily, search_fingerprint(usecase, search)) is None
    # Another search space is never reused.
    assert reusable(_context(usecase, LAST), search, "another") is None


def test_train_fits_the_tuned_params_and_records_the_search(searched: dict[str, Any], capsys: Any) -> None:
    from mlflow.tracking import MlflowClient

    from mlcycle.steps.train import cache_key
    from mlcycle.training.search import with_params

    ok_result(step(capsys, "tune", LAST, usecase=NAME))
    trained = ok_result(step(capsys, "train", LAST, usecase=NAME))
    tuned = searched["metrics"]["params"]
    client = MlflowClient()
    run = client.get_run(trained["metrics"]["run_id"])
    assert {f"model.{k}": str(v) for k, v in tuned.items()}.items() <= run.data.params.items()
    version = client.get_model_version(f"{NAME}_model", trained["metrics"]["model_version"])
    search_run_id = searched["metrics"]["search_run_id"]
    assert version.tags["mlcycle.tuned_from"] == search_run_id == run.data.tags["mlcycle.tuned_from"]
    usecase = _usecase()
    manifest = _context(usecase, LAST).storage.manifest(_context(usecase, LAST).uri(Dataset.FEATURES))
    assert manifest is not None
    assert version.tags["mlcycle.cache_key"] == cache_key(with_params(usecase, tuned), manifest)
    assert cache_key(usecase, manifest) != cache_key(with_params(usecase, tuned), manifest)


def test_train_refuses_to_run_untuned_when_a_search_is_configured(env: dict[str, str]) -> None:
    from mlcycle.steps.tune import tuned_params

    with pytest.raises(FileNotFoundError, match=r"no tuned parameters at .*tuning/ds=2026-09-03: .*run the tune step"):
        tuned_params(_context(_usecase(), dt.date(2026, 9, 3)))


def test_tune_without_a_search_has_nothing_to_do(env: dict[str, str], capsys: Any) -> None:
    code, result = step(capsys, "tune", LAST, usecase="yarnit")
    assert code == ExitCode.NOTHING_TO_DO and "no model.search" in result["reason"]


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"params": {"max_iter": {"type": "int", "low": 60, "high": 20}}}, "low 60 must be below high 20"),
        ({"params": {"learning_rate": {"type": "float", "low": 0, "high": 1, "log": True}}}, "needs low > 0"),
        ({"params": {"max_iter": {"type": "choice", "values": []}}}, "at least 1 item"),
        ({"params": {"max_iter": {"type": "int", "low": 1, "high": 2}}, "every": "36h"}, "not a whole number of days"),
        ({"params": {}}, "at least 1 item"),
    ],
)
def test_a_malformed_search_names_the_field(tmp_path: Path, search: dict[str, Any], message: str) -> None:
    config = tuned_usecase(tmp_path, "broken", search)
    with pytest.raises(UseCaseConfigError, match=r"model\.search") as caught:
        load_usecase(config)
    assert message in str(caught.value)


def test_a_search_over_an_unknown_parameter_is_refused(env: dict[str, str]) -> None:
    from mlcycle.training.search import run_search

    usecase, splits = _usecase(), _splits(LAST)
    search = usecase.model.search
    assert search is not None
    odd = search.model_copy(update={"params": {"leaves": search.params["max_iter"]}})
    bad = usecase.model_copy(update={"model": usecase.model.model_copy(update={"search": odd})})
    with pytest.raises(ValueError, match=r"\['leaves'\] are not parameters of the sklearn_hgb estimator"):
        run_search(bad, splits["train"], splits["valid"])


def test_the_training_dag_tunes_only_when_a_search_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlcycle.config import get_usecase
    from mlcycle.orchestration.dags import training_dag

    monkeypatch.setenv("MLCYCLE_EXECUTION_MODE", "local")
    plain = training_dag(get_usecase("yarnit"))
    assert "tune" not in plain.task_ids and plain.get_task("train").upstream_task_ids == {"features"}
    tuned = training_dag(load_usecase(tuned_usecase(tmp_path, NAME)))
    assert tuned.get_task("tune").upstream_task_ids == {"features"}
    assert tuned.get_task("train").upstream_task_ids == {"tune"}
    assert tuned.get_task("tune").execution_timeout == dt.timedelta(minutes=30)  # 2 x max_time 10m + 10m


def test_the_tune_task_links_its_search_run(searched: dict[str, Any]) -> None:
    from mlcycle.orchestration.links import run_url

    assert run_url(searched, "http://mlflow") == f"http://mlflow/#/runs/{searched['metrics']['search_run_id']}"
