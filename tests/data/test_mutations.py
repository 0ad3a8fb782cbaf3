"""The validation gate against bad input: one mutation of a valid YarnIt partition per class of data fault.

Every case lands a file for the same day, runs the real CLI in-process (`ingest`, then `validate`) in an
isolated MLCYCLE_HOME and checks:

- the exit code (65 REJECTED for hard failures; 0 for soft ones, with the warning recorded);
- the exact set of failed expectations (rule, column, severity). Rules that could not run because
  their column is missing are consequences of the `columns` failure and are left out of that set;
- the quarantine record: the refused bytes, reason.json (failures with expected, observed and sample
  rows), validation.json and report.html, committed whole (no staging folders left behind);
- that validated/ and the model registry (versions, @champion) are exactly as before.

Three clean days before the mutated day are validated first: the volume rule's trailing mean. Each case
cleans its own day afterwards, so the cases do not depend on each other's order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlcycle.cli import main as cli_main
from mlcycle.exitcodes import ExitCode
from mlcycle.storage.layout import VERSIONS_FOLDER
from mlcycle.synthetic.yarnit import generate_day
from support.cli import step
from support.cli import usecase_root as root

DAY = dt.date(2026, 9, 10)  # the day every mutation lands on
HISTORY = [DAY - dt.timedelta(days=i) for i in (3, 2, 1)]
ROWS = 2000  # base rows per generated day (about 1900 on DAY)
MODEL = "yarnit_model"

Failure = tuple[str, str | None, str]  # (rule, column, severity)
Landing = tuple[str, bytes]  # (file name in landing/, its bytes)


# ------------------------------------------------------------------------------------ the world


@pytest.fixture(scope="module")
def env(module_env: dict[str, str]) -> dict[str, str]:
    return module_env


def land(env: dict[str, str], day: dt.date, landing: Landing) -> None:
    """Drop a file into landing/ds=day, as the data source would (replacing what was there)."""
    folder = root(env) / "landing" / f"ds={day}"
    remove_partition(folder)
    folder.mkdir(parents=True)
    name, payload = landing
    (folder / name).write_bytes(payload)
    (folder / "_SUCCESS").write_text("{}")


def parquet(df: pd.DataFrame) -> Landing:
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    return "data.parquet", buffer.getvalue()


def csv(df: pd.DataFrame, *, sep: str = ",", encoding: str = "utf-8") -> Landing:
    return "data.csv", df.to_csv(index=False, sep=sep).encode(encoding)


def remove_partition(folder: Path) -> None:
    """Remove a partition whole, as a person cleaning up would: its link (or folder) and its versions."""
    if folder.is_symlink():
        folder.unlink()
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(folder.parent / VERSIONS_FOLDER / folder.name, ignore_errors=True)


def tree(folder: Path) -> dict[str, str]:
    """Every file a reader sees under ``folder`` (through the partition links), with its sha256."""
    found = {}
    for parent, folders, files in os.walk(folder, followlinks=True):
        folders[:] = [f for f in folders if f != VERSIONS_FOLDER]
        for name in files:
            path = Path(parent) / name
            found[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return dict(sorted(found.items()))


def registry_state() -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(versions with their run ids, aliases) of the registered model."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    versions = sorted((str(v.version), str(v.run_id)) for v in client.search_model_versions(f"name='{MODEL}'"))
    return versions, dict(client.get_registered_model(MODEL).aliases)


@pytest.fixture(scope="module")
def world(env: dict[str, str]) -> dict[str, Any]:
    """Three clean validated days before DAY, and a @champion in the registry (a tiny dummy model)."""
    import mlflow
    from mlflow.tracking import MlflowClient
    from sklearn.dummy import DummyClassifier

    for day in HISTORY:
        land(env, day, parquet(generate_day(day, base_rows=ROWS)))
    assert cli_main(["ingest", "--usecase", "yarnit", "--partition", str(HISTORY[-1]), "--lookback", "3"]) == 0
    assert cli_main(["validate", "--usecase", "yarnit", "--partition", str(HISTORY[-1]), "--lookback", "3"]) == 0

    model = DummyClassifier(strategy="prior").fit(np.array([[0.0], [1.0]]), np.array([0, 1]))
    mlflow.set_experiment("mutation-suite-registry")
    with mlflow.start_run():
        mlflow.sklearn.log_model(model, name="model", registered_model_name=MODEL, pip_requirements=[])
    MlflowClient().set_registered_model_alias(MODEL, "champion", "1")
    return {"registry": registry_state()}


@pytest.fixture
def clean_day(env: dict[str, str], world: dict[str, Any]) -> Iterator[pd.DataFrame]:
    """A valid YarnIt partition of DAY; afterwards every trace of DAY is removed (cases are independent)."""
    yield generate_day(DAY, base_rows=ROWS)
    for dataset in ("landing", "raw", "validated", "quarantine"):
        remove_partition(root(env) / dataset / f"ds={DAY}")


# -------------------------------------------------------------------------------- the mutations


def _set(df: pd.DataFrame, column: str, rows: list[int] | slice, value: Any) -> pd.DataFrame:
    df.loc[df.index[rows], column] = value
    return df


def _truncated(df: pd.DataFrame) -> Landing:
    name, payload = parquet(df)
    return name, payload[: len(payload) // 2]


def _corrupt(df: pd.DataFrame) -> Landing:
    name, payload = parquet(df)
    rng = np.random.default_rng(3)
    middle = bytes(rng.integers(0, 256, len(payload) - 8, dtype=np.uint8))
    return name, payload[:4] + middle + payload[-4:]  # magic bytes intact, content garbage


def _latin1(df: pd.DataFrame) -> Landing:
    # An export in latin-1 of a name with an accent: the bytes are not UTF-8.
    return csv(df.assign(fibre=df["fibre"].replace({"merino": "mérino"})), encoding="latin-1")


def _pii(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(email=[f"knitter{i}@example.org" for i in range(len(df))])


def _compare(df: pd.DataFrame) -> pd.DataFrame:
    returning = df.index[df["days_since_last_purchase"].notna()][:4]
    df.loc[returning, "days_since_last_purchase"] = df.loc[returning, "customer_tenure_days"] + 30.0
    return df


@dataclass(frozen=True)
class Case:
    make: Callable[[pd.DataFrame], Landing]
    failed: frozenset[Failure]
    code: int = ExitCode.REJECTED


def case(make: Callable[[pd.DataFrame], Landing], *failed: Failure, code: int = ExitCode.REJECTED) -> Case:
    return Case(make, frozenset(failed), code)


def frame(mutate: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[pd.DataFrame], Landing]:
    return lambda df: parquet(mutate(df))


HARD, SOFT = "hard", "soft"

CASES: dict[str, Case] = {
    # --- schema
    "renamed column": case(frame(lambda df: df.rename(columns={"price": "unit_price"})), ("columns", None, HARD)),
    "dropped column": case(frame(lambda df: df.drop(columns=["device"])), ("columns", None, HARD)),
    "extra column": case(frame(lambda df: df.assign(coupon_code="AUTUMN")), ("columns", None, HARD)),
    "dtype int -> string": case(
        frame(lambda df: df.assign(pages_viewed=df["pages_viewed"].astype(str))),
        ("type", "pages_viewed", HARD), ("range", "pages_viewed", HARD),
    ),
    "dtype float -> int": case(
        frame(lambda df: df.assign(price=df["price"].round().astype("int64"))), ("type", "price", HARD)
    ),
    "timestamps lose their time zone": case(
        frame(lambda df: df.assign(event_ts=df["event_ts"].dt.tz_localize(None))),
        ("type", "event_ts", HARD), ("timestamp_in_partition", "event_ts", HARD),
    ),
    "forbidden PII column present": case(frame(_pii), ("columns", None, HARD), ("forbidden_columns", None, HARD)),
    "label column missing": case(frame(lambda df: df.drop(columns=["purchased"])), ("columns", None, HARD)),
    # --- nulls
    "all-null column": case(frame(lambda df: df.assign(discount_pct=np.nan)), ("not_null", "discount_pct", HARD)),
    "null spike": case(frame(lambda df: _set(df, "country", slice(0, 150), None)), ("not_null", "country", HARD)),
    # --- values
    "negative price": case(frame(lambda df: _set(df, "price", [3, 10, 11], -4.5)), ("range", "price", HARD)),
    "out-of-range value": case(frame(lambda df: _set(df, "discount_pct", [7], 0.9)), ("range", "discount_pct", HARD)),
    "unknown category code (GB -> UK)": case(
        frame(lambda df: df.assign(country=df["country"].replace({"GB": "UK"}))), ("allowed", "country", HARD)
    ),
    "case change (US -> us)": case(
        frame(lambda df: df.assign(country=df["country"].replace({"US": "us"}))), ("allowed", "country", HARD)
    ),
    "id format break": case(
        frame(lambda df: df.assign(session_id=df["session_id"].str.replace("-", "_"))), ("regex", "session_id", HARD)
    ),
    "exploding cardinality": case(
        frame(lambda df: df.assign(fibre=df["fibre"] + "-" + df.index.astype(str))),
        ("allowed", "fibre", HARD), ("distinct", "fibre", HARD),
    ),
    "cross-column rule broken (last purchase before sign-up)": case(frame(_compare), ("compare", "customer_tenure_days", HARD)),
    "currency unit change (EUR -> cents)": case(
        frame(lambda df: df.assign(price=(df["price"] * 100).round(2))), ("range", "price", HARD), ("mean", "price", SOFT)
    ),
    # --- time
    "sentinel dates (1900-01-01)": case(
        frame(lambda df: _set(df, "event_ts", [0, 1], pd.Timestamp("1900-01-01", tz="UTC"))),
        ("timestamp_in_partition", "event_ts", HARD),
    ),
    "timestamps shifted by one day": case(
        frame(lambda df: df.assign(event_ts=df["event_ts"] + pd.Timedelta(days=1))),
        ("timestamp_in_partition", "event_ts", HARD),
    ),
    # --- keys and volume
    "duplicated rows": case(
        frame(lambda df: pd.concat([df, df.iloc[100:110]], ignore_index=True)), ("key_unique", "session_id", HARD)
    ),
    "duplicated keys": case(
        frame(lambda df: _set(df, "session_id", [5, 6], df["session_id"].iloc[4])), ("key_unique", "session_id", HARD)
    ),
    "empty partition": case(
        frame(lambda df: df.head(0)),
        ("row_count", None, HARD), ("volume", None, SOFT), ("label_positive_rate", "purchased", HARD),
        ("mean", "price", SOFT), ("median", "session_duration_s", SOFT),
    ),
    "row-count collapse": case(frame(lambda df: df.head(120)), ("row_count", None, HARD), ("volume", None, SOFT)),
    # --- labels
    "label all negative": case(frame(lambda df: df.assign(purchased=0)), ("label_positive_rate", "purchased", HARD)),
    # --- unreadable input
    "truncated parquet": case(_truncated, ("readable", None, HARD)),
    "corrupt parquet": case(_corrupt, ("readable", None, HARD)),
    "CSV with the wrong delimiter": case(lambda df: csv(df, sep=";"), ("columns", None, HARD)),
    "CSV in latin-1": case(_latin1, ("readable", None, HARD)),
    "CSV in UTF-16": case(lambda df: csv(df, encoding="utf-16"), ("readable", None, HARD)),
    "non-ASCII code in a UTF-8 CSV": case(
        lambda df: csv(df.assign(fibre=df["fibre"].replace({"merino": "mérino"}))), ("allowed", "fibre", HARD)
    ),
    "CSV with text in a number column": case(
        lambda df: csv(_set(df.astype({"pages_viewed": object}), "pages_viewed", [2], "n/a")),
        ("type", "pages_viewed", HARD), ("range", "pages_viewed", HARD),
    ),
    # --- soft: recorded, the run goes on
    "unit change (seconds -> minutes, soft)": case(
        frame(lambda df: df.assign(session_duration_s=(df["session_duration_s"] / 60).round(2))),
        ("median", "session_duration_s", SOFT), code=ExitCode.OK,
    ),
    "volume dip (soft)": case(
        frame(lambda df: df.iloc[::3].reset_index(drop=True)), ("volume", None, SOFT), code=ExitCode.OK
    ),
    "clean CSV (control)": case(lambda df: csv(df), code=ExitCode.OK),
    "clean Parquet (control)": case(parquet, code=ExitCode.OK),
}  # fmt: skip


def evaluated(failures: list[dict[str, Any]]) -> set[Failure]:
    """(rule, column, severity) of the failures that were evaluated (not skipped for a missing column)."""
    return {
        (f["rule"], f["column"], f["severity"])
        for f in failures
        if not str(f["observed"]).startswith("not evaluated: column")
    }


def leftovers(env: dict[str, str]) -> list[str]:
    """Half-written state: a version folder without its manifest, a link not switched, an earlier layout's temp."""
    found = [p.name for p in root(env).rglob("*") if p.name.startswith((".staging-", ".old-", ".link-"))]
    for versions in root(env).rglob(VERSIONS_FOLDER):
        found += [str(v) for v in versions.glob("*/*") if not (v / "_SUCCESS").is_file()]
    return found


def test_there_are_enough_classes() -> None:
    rejected = [n for n, c in CASES.items() if c.code == ExitCode.REJECTED]
    assert len(rejected) >= 25 and len(CASES) >= 30


@pytest.mark.parametrize("name", list(CASES))
def test_mutation(
    name: str, env: dict[str, str], world: dict[str, Any], clean_day: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = CASES[name]
    landing = spec.make(clean_day.copy())
    validated_before = tree(root(env) / "validated")
    assert registry_state() == world["registry"]

    land(env, DAY, landing)
    code, ingested = step(capsys, "ingest", DAY)
    assert code == ExitCode.OK, ingested
    file_name, payload = landing
    assert ingested["metrics"]["format"] == file_name.split(".")[-1]
    raw = root(env) / "raw" / f"ds={DAY}"
    assert (raw / file_name).read_bytes() == payload, "raw keeps the bytes that arrived"

    code, result = step(capsys, "validate", DAY)
    assert code == spec.code, result
    assert registry_state() == world["registry"], "a validation never touches the registry"
    assert not leftovers(env), "nothing half-written"
    assert (raw / file_name).read_bytes() == payload, "raw is never changed"
    quarantine = root(env) / "quarantine" / f"ds={DAY}"
    validated = root(env) / "validated" / f"ds={DAY}"

    if spec.code == ExitCode.REJECTED:
        assert result["status"] == "rejected" and result["profile"] == "training"
        assert tree(root(env) / "validated") == validated_before, "validated/ is unchanged"
        assert not validated.exists()
        manifest = json.loads((quarantine / "_SUCCESS").read_text())
        assert manifest["raw_digest"] == hashlib.sha256(payload).hexdigest()
        assert manifest["profile"] == "training"
        assert {file_name, "reason.json", "validation.json", "report.html"} <= set(manifest["files"])
        reason = json.loads((quarantine / "reason.json").read_text())
        if name == "forbidden PII column present":  # kept without it: tests/data/test_quarantine_pii.py
            assert reason["dropped_columns"] == ["email"]
        else:
            assert (quarantine / file_name).read_bytes() == payload, "the refused bytes are kept with the reason"
        assert reason["partition"] == DAY.isoformat() and reason["profile"] == "training"
        assert evaluated(reason["failures"]) == spec.failed, reason["failed"]
        for failure in reason["failures"]:
            assert failure["expected"] and failure["observed"], failure
            if failure["unexpected_count"]:
                assert 0 < len(failure["rows"]) <= 5, "a sample of the offending rows"
        # The one-line reason (task log, alert) names rule, column, expected and observed.
        first = next(f for f in reason["failures"] if f["severity"] == HARD)
        for part in (first["rule"], first["expected"], first["observed"], first["column"] or "table"):
            assert part in result["reason"], (part, result["reason"])
        # The XCom summary: counts and the failed expectations.
        assert result["summary"]["hard_failures"] == len(reason["failed"])
        assert evaluated(result["summary"]["failed"]) <= spec.failed
        report = (quarantine / "report.html").read_text()
        assert "REJECTED" in report and html.escape(first["expected"]) in report
    else:
        assert result["status"] == "success"
        assert not quarantine.exists()
        manifest = json.loads((validated / "_SUCCESS").read_text())
        assert manifest["profile"] == "training" and manifest["raw_digest"] == hashlib.sha256(payload).hexdigest()
        assert evaluated(manifest["summary"]["failed"]) == spec.failed, "warnings are recorded in the manifest"
        assert evaluated(result["metrics"]["summary"]["failed"]) == spec.failed, "... and in the result"
        assert all(severity == SOFT for _, _, severity in spec.failed)
        after = {k: v for k, v in tree(root(env) / "validated").items() if not k.startswith(f"ds={DAY}/")}
        assert after == validated_before, "the other validated partitions are untouched"
        table = pd.read_parquet(validated / "data.parquet")
        assert len(table) == manifest["rows"] > 0
        assert isinstance(table["event_ts"].dtype, pd.DatetimeTZDtype), "validated/ holds typed Parquet"
        if name.startswith("clean"):
            assert manifest["summary"]["failed"] == []
            pd.testing.assert_frame_equal(table, clean_day, check_dtype=False)


# ----------------------------------------------------------------- profiles, recovery, tracking


def manifest_of(env: dict[str, str], dataset: str, day: dt.date) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((root(env) / dataset / f"ds={day}" / "_SUCCESS").read_text())
    return loaded


def test_label_outage_is_scored_but_not_trained_on(
    env: dict[str, str], world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from mlcycle.synthetic.yarnit import ScenarioWindow

    outage, clean, late = DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2), DAY + dt.timedelta(days=3)
    scenario = ScenarioWindow("label_outage", outage, outage)
    for day in (outage, clean, late):
        land(env, day, parquet(generate_day(day, base_rows=ROWS, scenarios=[scenario])))
    assert step(capsys, "ingest", late, "--lookback", "3")[0] == ExitCode.OK

    # The scoring DAG's gate: the serving profile has no label rules, so the day can be scored.
    code, served = step(capsys, "validate", outage, "--serving")
    assert code == ExitCode.OK and served["metrics"]["profile"] == "serving", served
    assert manifest_of(env, "validated", outage)["profile"] == "serving"
    serving_partition = tree(root(env) / "validated" / f"ds={outage}")

    # The training DAG's gate re-validates with the whole contract and refuses the labels.
    code, trained = step(capsys, "validate", outage)
    assert code == ExitCode.REJECTED and trained["profile"] == "training"
    assert "label_positive_rate" in trained["reason"] and "positive rate 0" in trained["reason"]
    reason = json.loads((root(env) / "quarantine" / f"ds={outage}" / "reason.json").read_text())
    assert reason["profile"] == "training"
    assert evaluated(reason["failures"]) == {("label_positive_rate", "purchased", HARD)}
    assert tree(root(env) / "validated" / f"ds={outage}") == serving_partition, "scoring that day stays valid"

    # Scoring again changes nothing and keeps the training quarantine record.
    code, again = step(capsys, "validate", outage, "--serving")
    assert code == ExitCode.OK and again["metrics"]["unchanged"] == [outage.isoformat()]
    assert (root(env) / "quarantine" / f"ds={outage}" / "reason.json").exists()

    # A day validated only as serving is re-validated by the training DAG (and passes).
    assert step(capsys, "validate", clean, "--serving")[0] == ExitCode.OK
    assert manifest_of(env, "validated", clean)["profile"] == "serving"
    code, window = step(capsys, "validate", late, "--lookback", "3")
    assert code == ExitCode.OK
    assert window["metrics"]["passed"] == [clean.isoformat(), late.isoformat()]
    assert window["metrics"]["failed"] == [outage.isoformat()], "an older day's failure is recorded, not raised"
    assert manifest_of(env, "validated", clean)["profile"] == "training"
    assert manifest_of(env, "validated", late)["profile"] == "training"

    # features uses only days validated as training: HISTORY + clean + late, not the outage day.
    code, features = step(capsys, "features", late)
    assert code == ExitCode.OK, features
    assert features["metrics"]["serving_only_days"] == [outage.isoformat()]
    built = manifest_of(env, "features", late)
    used = {d for split in built["days"].values() for d in split}
    assert used == {d.isoformat() for d in [*HISTORY, clean, late]}
    assert registry_state() == world["registry"]


def test_training_failure_first_then_serving_keeps_the_record(
    env: dict[str, str], world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    day = DAY + dt.timedelta(days=6)
    land(env, day, parquet(generate_day(day, base_rows=ROWS).assign(purchased=0)))
    assert step(capsys, "ingest", day)[0] == ExitCode.OK
    assert step(capsys, "validate", day)[0] == ExitCode.REJECTED
    code, served = step(capsys, "validate", day, "--serving")
    assert code == ExitCode.OK and served["metrics"]["passed"] == [day.isoformat()]
    assert manifest_of(env, "validated", day)["profile"] == "serving"
    assert manifest_of(env, "quarantine", day)["profile"] == "training", "the training verdict still stands"


def test_rejected_day_recovers_after_a_fix_and_is_tracked(
    env: dict[str, str], world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow.tracking import MlflowClient

    from mlcycle.synthetic.yarnit import ScenarioWindow

    day = DAY + dt.timedelta(days=4)
    others = tree(root(env) / "validated")
    broken = generate_day(day, base_rows=ROWS, scenarios=[ScenarioWindow("schema_break", day, day)])
    land(env, day, parquet(broken))
    assert step(capsys, "ingest", day)[0] == ExitCode.OK
    # The scoring DAG's gate stops a schema break as well.
    code, served = step(capsys, "validate", day, "--serving")
    assert code == ExitCode.REJECTED and served["profile"] == "serving"
    assert manifest_of(env, "quarantine", day)["profile"] == "serving"
    code, rejected = step(capsys, "validate", day)
    assert code == ExitCode.REJECTED
    assert "missing: ['device', 'price']; unexpected: ['unit_price']" in rejected["reason"]
    artifacts = {a.path for a in MlflowClient().list_artifacts(rejected["mlflow_run_id"], f"validation/{day}")}
    assert artifacts == {f"validation/{day}/{n}" for n in ("reason.json", "report.html", "validation.json")}

    # The source fixes the data; the day is ingested and validated again and proceeds.
    land(env, day, parquet(generate_day(day, base_rows=ROWS)))
    code, ingested = step(capsys, "ingest", day)
    assert code == ExitCode.OK and ingested["metrics"]["written"] == [day.isoformat()]
    code, fixed = step(capsys, "validate", day)
    assert code == ExitCode.OK and fixed["metrics"]["passed"] == [day.isoformat()]
    assert not (root(env) / "quarantine" / f"ds={day}").exists(), "a fixed partition leaves quarantine"
    assert manifest_of(env, "validated", day)["profile"] == "training"
    after = {k: v for k, v in tree(root(env) / "validated").items() if not k.startswith(f"ds={day}/")}
    assert after == others, "nothing that was valid before is touched"
    artifacts = {a.path for a in MlflowClient().list_artifacts(fixed["metrics"]["mlflow_run_id"], f"validation/{day}")}
    assert artifacts == {f"validation/{day}/{n}" for n in ("report.html", "validation.json")}
    assert registry_state() == world["registry"]
