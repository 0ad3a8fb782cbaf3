"""Data that arrives again, or arrives broken: a landing marker that is not a manifest, a day re-delivered after it
was validated. Each is refused with a reason naming what is wrong, and never trained on."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mlcycle.exitcodes import ExitCode
from mlcycle.storage.layout import DATA_FILE, SUCCESS, Dataset
from mlcycle.storage.partitions import Storage
from mlcycle.synthetic.yarnit import generate_day
from support.cli import step
from support.cli import usecase_root as root
from support.storage_checks import commit_validated_day

LAST = dt.date(2026, 9, 8)
DAYS = [LAST - dt.timedelta(days=n) for n in range(5, -1, -1)]  # six days: more than split.min_partitions


@pytest.fixture
def env(mlcycle_env: dict[str, str]) -> dict[str, str]:
    return mlcycle_env


@pytest.mark.parametrize("marker", ["not json", "[]", ""], ids=["text", "list", "empty"])
def test_a_landing_marker_that_is_not_a_json_object_is_rejected_naming_the_file(
    env: dict[str, str], marker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    landing = root(env) / "landing" / f"ds={LAST}"
    landing.mkdir(parents=True)
    generate_day(LAST, base_rows=50).to_parquet(landing / DATA_FILE, index=False)
    (landing / SUCCESS).write_text(marker)
    code, result = step(capsys, "ingest", LAST)
    assert code == ExitCode.REJECTED, result
    assert str(landing / SUCCESS) in result["reason"] and "JSON object" in result["reason"], result["reason"]
    assert not (root(env) / "raw" / f"ds={LAST}").exists()


def test_features_refuses_validated_data_of_an_older_delivery(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    storage = Storage(env["MLCYCLE_STORAGE_ROOT"])
    for day in DAYS:
        commit_validated_day(storage, day, raw_digest=f"sha-{day}", validated_from=f"sha-{day}")
    code, result = step(capsys, "features", LAST)
    assert code == ExitCode.OK, result

    redelivered = DAYS[2]  # raw holds a new delivery that validate has not passed (yet)
    commit_validated_day(storage, redelivered, raw_digest="sha-new", validated_from=f"sha-{redelivered}")
    code, result = step(capsys, "features", LAST)
    assert code == ExitCode.REJECTED, result
    for part in (str(redelivered), f"sha-{redelivered}", "sha-new", "mlcycle validate"):
        assert part in result["reason"], (part, result["reason"])
    assert Path(storage.partition_uri("yarnit", Dataset.FEATURES, LAST)).exists(), "the earlier features stay"
