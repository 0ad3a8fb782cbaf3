"""Shadow canaries and measured staleness on YarnIt, step by step (issue 18 items 3 and 4).

One registry history, built once by chained module fixtures (each records what it saw, so the tests may run in
any order): v1 (trained through 09-08) is promoted by hand; v2, a prior-only model, passes a gate decision and
enters a shadow canary, trails v1 on the first labelled shadow day and is refused; v3 (trained through 09-10)
enters a canary and is promoted after K = 2 labelled shadow days. The two champions, v1 and v3, then give the
weekly staleness curve. Gate decisions are written as `evaluate` commits them: the gate is not under test here,
and a canary exists for exactly the candidate whose offline verdict does not hold on live traffic.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlcycle.cli import main as cli_main
from mlcycle.config import USECASES_ENV
from mlcycle.exitcodes import ExitCode
from mlcycle.monitoring import staleness
from support.cli import CaptureStdout, ok_result, step
from support.usecases import lenient_usecases

FIRST, V1_WINDOW, V3_WINDOW = dt.date(2026, 9, 1), dt.date(2026, 9, 8), dt.date(2026, 9, 10)
SHADOW_1, SHADOW_2, SUNDAY = dt.date(2026, 9, 11), dt.date(2026, 9, 12), dt.date(2026, 9, 13)
ROWS = 900
MODEL = "yarnit_model"


def _edit(usecases: Path, **changes: Any) -> None:
    config = usecases / "yarnit" / "usecase.yaml"
    data = yaml.safe_load(config.read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data.setdefault(section, {})[field] = value
        else:
            data[section] = value
    config.write_text(yaml.safe_dump(data, sort_keys=False))


def _gate_promotes(candidate: str, champion: str) -> str:
    """A gate decision record that promotes `candidate` over `champion`, committed where `evaluate` commits it."""
    from mlcycle.settings import storage_root
    from mlcycle.storage.layout import DECISION_FILE, Dataset
    from mlcycle.storage.partitions import Storage

    storage = Storage(storage_root())
    uri = storage.partition_uri("yarnit", Dataset.EVALUATION, V3_WINDOW, sub=f"v{candidate}")
    record = {"candidate_version": candidate, "champion_version": champion, "decision": "promote", "reasons": ["ok"]}
    with storage.writer(uri, {"step": "evaluate", "decision": "promote"}) as staging:
        (staging / DECISION_FILE).write_text(json.dumps(record))
    return uri


def _registry() -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """(aliases, tags per version) of yarnit_model now."""
    from mlflow import MlflowClient

    client = MlflowClient()
    aliases = {alias: str(v) for alias, v in client.get_registered_model(MODEL).aliases.items()}
    versions = client.search_model_versions(f"name='{MODEL}'")
    return aliases, {str(v.version): dict(client.get_model_version(MODEL, v.version).tags) for v in versions}


@pytest.fixture(scope="module")
def usecases(module_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A yarnit copy with `promotion: shadow_canary` (K = 2 days, tolerance 0.05) measuring staleness on Sundays."""
    folder = lenient_usecases(tmp_path_factory.mktemp("canary"))
    _edit(folder, promotion="shadow_canary", canary={"labelled_days": 2, "tolerance": 0.05})
    _edit(folder, staleness={"weekday": "sun", "labelled_days": 2, "min_champions": 2})
    patch = pytest.MonkeyPatch()
    patch.setenv(USECASES_ENV, str(folder))
    yield folder
    patch.undo()


@pytest.fixture(scope="module")
def data(usecases: Path, capture_stdout: CaptureStdout) -> None:
    """13 YarnIt days: 09-01..09-10 validated for training, 09-11..09-13 for serving (labels arrive a day later)."""
    argv = ["generate", "--usecase", "yarnit", "--start", str(FIRST), "--end", str(SUNDAY), "--rows", str(ROWS)]
    assert cli_main(argv) == 0
    with capture_stdout() as out:
        for name in ("ingest", "validate"):
            ok_result(step(out, name, V3_WINDOW, "--lookback", "10"))
        for day in (SHADOW_1, SHADOW_2, SUNDAY):
            ok_result(step(out, "ingest", day))
            ok_result(step(out, "validate", day, "--serving"))


def _train(out: Any, window: dt.date) -> str:
    ok_result(step(out, "features", window))
    return str(ok_result(step(out, "train", window, "--cache", "off"))["metrics"]["model_version"])


def _score(out: Any) -> None:
    for day in (SHADOW_1, SHADOW_2):
        ok_result(step(out, "score", day))


@pytest.fixture(scope="module")
def refused(data: None, usecases: Path, capture_stdout: CaptureStdout) -> dict[str, Any]:
    """v1 champion (by hand); v2, a prior-only model, approved by the gate, shadow-scored, monitored, canaried."""
    with capture_stdout() as out:
        v1 = _train(out, V1_WINDOW)
        ok_result(step(out, "promote", V1_WINDOW, f"--model-version={v1}", "--approver=t", "--reason=first champion"))
        _edit(usecases, model__family="dummy")
        v2 = _train(out, V3_WINDOW)
        entered = step(out, "promote", V3_WINDOW, "--decision", _gate_promotes(v2, v1))
        after_gate = _registry()
        _score(out)
        monitor = ok_result(step(out, "monitor", SHADOW_2))
        verdict = step(out, "canary", SHADOW_2)
        again = step(out, "canary", SUNDAY)
    return {"versions": (v1, v2), "entered": entered, "after_gate": after_gate, "monitor": monitor,
            "verdict": verdict, "again": again, "after": _registry()}  # fmt: skip


@pytest.fixture(scope="module")
def promoted(refused: dict[str, Any], usecases: Path, capture_stdout: CaptureStdout) -> dict[str, Any]:
    """v3, a real model trained through 09-10, approved by the gate; canaried on 09-12 (one day) and 09-13 (two)."""
    with capture_stdout() as out:
        _edit(usecases, model__family="sklearn_hgb")
        v3 = _train(out, V3_WINDOW)
        decision = _gate_promotes(v3, refused["versions"][0])
        code, entered = step(out, "promote", V3_WINDOW, "--decision", decision)
        assert (code, entered.get("canary")) == (ExitCode.NOTHING_TO_DO, "pending"), entered
        _score(out)
        waiting = ok_result(step(out, "canary", SHADOW_2))
        done = ok_result(step(out, "canary", SUNDAY))
    return {"version": v3, "decision": decision, "waiting": waiting, "done": done, "after": _registry()}


@pytest.fixture(scope="module")
def curve(promoted: dict[str, Any], capture_stdout: CaptureStdout) -> dict[str, Any]:
    with capture_stdout() as out:
        weekday = step(out, "staleness", SHADOW_2)
        measured = ok_result(step(out, "staleness", SUNDAY))
    return {"weekday": weekday, "measured": measured}


def test_a_gate_promotion_only_enters_the_canary(refused: dict[str, Any]) -> None:
    v1, v2 = refused["versions"]
    code, result = refused["entered"]
    assert (code, result["status"], result["canary"]) == (ExitCode.NOTHING_TO_DO, "skipped", "pending"), result
    aliases, tags = refused["after_gate"]
    assert aliases == {"champion": v1, "challenger": v2}
    assert tags[v2]["mlcycle.canary"] == "pending" and "2 labelled shadow days" in tags[v2]["mlcycle.canary.reason"]


def test_monitoring_compares_the_shadow_with_the_champion_on_the_same_rows(refused: dict[str, Any]) -> None:
    v1, v2 = refused["versions"]
    shadow = refused["monitor"]["metrics"]["shadow"]
    assert (shadow["status"], shadow["partition"]) == ("computed", str(SHADOW_1)), shadow
    assert (shadow["champion_version"], shadow["challenger_version"]) == (v1, v2)
    assert shadow["challenger"] == pytest.approx(0.5)  # a prior-only model ranks nothing
    assert shadow["trail"] == pytest.approx(shadow["champion"] - 0.5, abs=1e-6) and shadow["trail"] > 0.1
    stored = json.loads((Path(refused["monitor"]["outputs"]["monitoring"]) / "shadow.json").read_text())
    assert stored == shadow
    # Offline test metric vs online (labelled live) metric, per version, from the metrics on the training runs.
    table = {row["version"]: row for row in refused["monitor"]["metrics"]["offline_online"]["versions"]}
    assert set(table) == {v1, v2} and table[v2]["online"] == pytest.approx(0.5)
    assert table[v1]["online"] == pytest.approx(shadow["champion"]) and table[v1]["online_days"] == 1


def test_canary_refuses_a_trailing_challenger(refused: dict[str, Any]) -> None:
    v1, v2 = refused["versions"]
    code, result = refused["verdict"]
    assert (code, result["status"]) == (ExitCode.REJECTED, "rejected"), result
    assert f"v{v2} stays @challenger" in result["reason"] and f"trails champion v{v1} on {SHADOW_1}" in result["reason"]
    aliases, tags = refused["after"]
    assert aliases == {"champion": v1, "challenger": v2}
    assert tags[v2]["mlcycle.canary"] == "refused" and "mlcycle.promoted_by" not in tags[v2]
    assert [day["partition"] for day in json.loads(tags[v2]["mlcycle.canary.evidence"])] == [str(SHADOW_1)]
    code, result = refused["again"]  # a refusal is final: later runs skip it
    assert (code, result["status"]) == (ExitCode.NOTHING_TO_DO, "skipped") and "refused" in result["reason"]


def test_canary_promotes_after_k_good_labelled_days(refused: dict[str, Any], promoted: dict[str, Any]) -> None:
    v1, v3 = refused["versions"][0], promoted["version"]
    waiting = promoted["waiting"]["metrics"]
    assert waiting["decision"] == "pending" and [d["partition"] for d in waiting["days"]] == [str(SHADOW_1)]
    done = promoted["done"]["metrics"]
    assert done["decision"] == "promote" and [d["partition"] for d in done["days"]] == [str(SHADOW_1), str(SHADOW_2)]
    assert all(d["trail"] <= 0.05 for d in done["days"])
    aliases, tags = promoted["after"]
    assert aliases == {"champion": v3}, "the promoted version drops @challenger"
    record = tags[v3]
    assert (record["mlcycle.promoted_by"], record["mlcycle.canary"], record["mlcycle.previous_champion"]) == (
        "canary", "passed", v1
    )  # fmt: skip
    assert record["mlcycle.decision_uri"] == promoted["decision"]
    assert json.loads(record["mlcycle.canary.evidence"]) == [
        {k: d[k] for k in ("partition", "rows", "champion", "challenger", "trail")} for d in done["days"]
    ]


def test_staleness_curve_from_two_champions(
    refused: dict[str, Any], promoted: dict[str, Any], curve: dict[str, Any]
) -> None:
    v1, v3 = refused["versions"][0], promoted["version"]
    code, result = curve["weekday"]
    assert (code, result["status"]) == (ExitCode.NOTHING_TO_DO, "skipped") and "on the partition of a sun" in result[
        "reason"
    ]
    measured = curve["measured"]["metrics"]
    assert measured["champions"] == [v1, v3]  # v2 never held @champion
    points = {(p["version"], p["partition"]): p for p in measured["points"]}
    ages = {key: p["age_days"] for key, p in points.items()}
    assert ages == {(v1, str(SHADOW_1)): 3, (v1, str(SHADOW_2)): 4, (v3, str(SHADOW_1)): 1, (v3, str(SHADOW_2)): 2}
    # Re-scored by the staleness step, each champion's metric equals what it scored live on those days (served
    # by v1, shadow-scored by v3: the canary's evidence).
    for day in promoted["done"]["metrics"]["days"]:
        assert points[(v1, day["partition"])]["value"] == pytest.approx(day["champion"], abs=2e-6)
        assert points[(v3, day["partition"])]["value"] == pytest.approx(day["challenger"], abs=2e-6)
    expected = staleness.decay_budget(
        [staleness.Point(**p) for p in measured["points"]], metric="roc_auc", drop=0.05, min_champions=2
    )
    assert measured["budget"]["source"] == expected.source and measured["budget"]["days"] == expected.days
    stored = json.loads(Path(curve["measured"]["outputs"]["curve"]).read_text())
    assert stored["points"] == measured["points"]
    assert stored["unscored"] == measured["unscored"] == []  # both champions' signatures are in the data


def test_decay_budget_is_the_age_at_which_the_drop_is_lost() -> None:
    def points(*spec: tuple[str, int, float]) -> list[staleness.Point]:
        return [staleness.Point(version, "2026-09-11", age, value, 500) for version, age, value in spec]

    decaying = points(("1", 10, 0.70), ("1", 11, 0.69), ("2", 2, 0.78), ("2", 3, 0.77))  # -0.01 a day
    budget = staleness.decay_budget(decaying, metric="roc_auc", drop=0.05, min_champions=2)
    assert (budget.source, budget.days) == ("measured", 5) and budget.slope_per_day == pytest.approx(-0.01)
    loss = points(("1", 10, 0.50), ("2", 2, 0.42))  # a loss grows with age: +0.01 a day
    assert staleness.decay_budget(loss, metric="log_loss", drop=0.02, min_champions=2).days == 2
    one = staleness.decay_budget(decaying[:2], metric="roc_auc", drop=0.05, min_champions=2)
    assert (one.source, one.days) == ("fallback", None) and "1 champion(s) measured" in one.reason
    improving = staleness.decay_budget(
        points(("1", 10, 0.8), ("2", 2, 0.7)), metric="roc_auc", drop=0.05, min_champions=2
    )
    assert improving.source == "fallback" and "no decay measured" in improving.reason


def test_freshness_uses_the_measured_budget_and_falls_back_without_one(
    promoted: dict[str, Any], capture_stdout: CaptureStdout
) -> None:
    from mlcycle.settings import storage_root
    from mlcycle.storage.layout import Dataset
    from mlcycle.storage.partitions import Storage

    # No curve up to 09-11: the documented budget (max_model_age_days: 21).
    with capture_stdout() as out:
        before = ok_result(step(out, "freshness", SHADOW_1))["metrics"]
    assert (before["age_budget_source"], before["age_budget_days"], before["staleness_curve"]) == ("fallback", 21, None)
    assert "no staleness curve measured up to 2026-09-11" in before["age_budget_reason"]
    # A curve committed for 09-12 whose points lose 0.05 a day: a measured budget of 1 day (drop 0.05).
    points = [staleness.Point("1", "2026-09-11", 3, 0.70, 500), staleness.Point("3", "2026-09-11", 1, 0.80, 500)]
    budget = staleness.decay_budget(points, metric="roc_auc", drop=0.05, min_champions=2)
    assert (budget.source, budget.days) == ("measured", 1)
    storage = Storage(storage_root())
    with storage.writer(storage.partition_uri("yarnit", Dataset.STALENESS, SHADOW_2), {"step": "staleness"}) as staging:
        staleness.save_curve(staging, staleness.curve_document(str(SHADOW_2), "roc_auc", [], points, budget, []))
    with capture_stdout() as out:
        code, stale = step(out, "freshness", SHADOW_2)
    assert code == ExitCode.REJECTED, stale
    assert f"champion v{promoted['version']} is 2 days old on {SHADOW_2}" in stale["reason"]
    assert "measured budget 1 days" in stale["reason"]
    assert (stale["metrics"]["age_budget_source"], stale["metrics"]["age_budget_days"]) == ("measured", 1)
