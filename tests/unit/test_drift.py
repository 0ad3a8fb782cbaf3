"""Tests for mlcycle.monitoring.drift (Evidently 0.7 data drift).

Evidently is slow to import and each report takes a fraction of a second, so the frames and the
reports shared by several tests are module-scoped fixtures.
"""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import pandas as pd
import pytest

from mlcycle.monitoring.drift import ColumnDrift, DriftSummary, run_drift_report, save_report
from mlcycle.monitoring.reference_profile import (
    DEFAULT_SAMPLE_ROWS,
    build_reference_profile,
    load_reference_profile,
)
from mlcycle.monitoring.report_text import stable_ids

NUMERIC = ["num_a", "num_b", "num_c"]
CATEGORICAL = ["cat_a", "cat_b", "cat_c"]
N_REFERENCE = 20_000
N_CURRENT = 3_000
# The columns the "shifted" frame moves; the other three keep their distribution.
SHIFTED = ["num_a", "num_b", "cat_a"]

_CAT_LEVELS = ["red", "green", "blue", "grey"]
_CAT_P = [0.4, 0.3, 0.2, 0.1]


def make_frame(n: int, seed: int, *, shift: bool = False) -> pd.DataFrame:
    """3 numeric + 3 categorical columns (one integer-coded) plus an id column the check must ignore."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            # Location shift of half a standard deviation.
            "num_a": rng.normal(0.5 if shift else 0.0, 1.0, n),
            # Same mean, doubled spread.
            "num_b": rng.normal(10.0, 4.0 if shift else 2.0, n),
            "num_c": rng.exponential(3.0, n),
            # Category frequencies reversed.
            "cat_a": rng.choice(_CAT_LEVELS, n, p=_CAT_P[::-1] if shift else _CAT_P),
            "cat_b": rng.choice(["x", "y"], n, p=[0.7, 0.3]),
            "cat_c": rng.integers(0, 5, n),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return make_frame(N_REFERENCE, seed=1)


@pytest.fixture(scope="module")
def same(reference: pd.DataFrame) -> tuple[DriftSummary, object]:
    """Report for a current frame drawn from the reference distribution with another seed."""
    return run_drift_report(reference, make_frame(N_CURRENT, seed=2), numeric=NUMERIC, categorical=CATEGORICAL)


@pytest.fixture(scope="module")
def shifted_current() -> pd.DataFrame:
    return make_frame(N_CURRENT, seed=3, shift=True)


@pytest.fixture(scope="module")
def shifted(reference: pd.DataFrame, shifted_current: pd.DataFrame) -> tuple[DriftSummary, object]:
    """Report for a current frame with SHIFTED moved strongly."""
    return run_drift_report(reference, shifted_current, numeric=NUMERIC, categorical=CATEGORICAL)


def test_same_distribution_has_no_dataset_drift(same: tuple[DriftSummary, object]) -> None:
    summary, _ = same
    assert [c.column for c in summary.columns] == NUMERIC + CATEGORICAL
    assert not summary.dataset_drift
    # Six tests at p < 0.05: at most one false alarm is tolerated (the seeds make this deterministic).
    assert len(summary.drifted_columns) <= 1
    assert summary.drift_share < summary.drift_share_threshold
    assert (summary.n_reference, summary.n_current) == (N_REFERENCE, N_CURRENT)


def test_strong_shift_flags_exactly_the_shifted_columns(shifted: tuple[DriftSummary, object]) -> None:
    summary, _ = shifted
    assert summary.dataset_drift
    assert sorted(summary.drifted_columns) == sorted(SHIFTED)
    assert summary.drift_share == pytest.approx(3 / 6)
    assert summary.drift_share_threshold == pytest.approx(0.3)


def test_default_methods_are_ks_and_chisquare_above_1000_rows(
    shifted: tuple[DriftSummary, object], reference: pd.DataFrame, shifted_current: pd.DataFrame
) -> None:
    summary, _ = shifted
    kinds = {c.column: c.kind for c in summary.columns}
    assert kinds == {**dict.fromkeys(NUMERIC, "numeric"), **dict.fromkeys(CATEGORICAL, "categorical")}
    assert {c.column: c.stattest for c in summary.columns} == {
        **dict.fromkeys(NUMERIC, "ks"),
        **dict.fromkeys(CATEGORICAL, "chisquare"),
    }
    # p-value semantics: Evidently's verdict must agree with "p below threshold".
    for c in summary.columns:
        assert c.threshold == pytest.approx(0.05)
        assert 0.0 <= c.score <= 1.0
        assert c.drifted == (c.score < c.threshold), c

    # The override only proves something if Evidently would have chosen otherwise for this data size:
    # left alone, it switches to distance methods above 1000 rows.
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    cols = NUMERIC + CATEGORICAL
    default = Report([DataDriftPreset(columns=cols)]).run(
        current_data=Dataset.from_pandas(shifted_current[cols], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[cols], data_definition=definition),
    )
    default_methods = {
        m["config"]["column"]: m["config"]["method"]
        for m in default.dict()["metrics"]
        if m["config"]["type"].endswith("ValueDrift")
    }
    assert default_methods["num_a"] not in ("ks", None)
    assert default_methods["cat_a"] not in ("chisquare", None)


def test_configured_methods_and_threshold_are_honoured(reference: pd.DataFrame, shifted_current: pd.DataFrame) -> None:
    summary, _ = run_drift_report(
        reference,
        shifted_current,
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        numeric_method="wasserstein",
        categorical_method="psi",
        threshold=0.1,
    )
    assert {c.column: c.stattest for c in summary.columns} == {
        **dict.fromkeys(NUMERIC, "wasserstein"),
        **dict.fromkeys(CATEGORICAL, "psi"),
    }
    for c in summary.columns:
        assert c.threshold == pytest.approx(0.1)
        # Distance semantics now: drift when at or above the threshold.
        assert c.drifted == (c.score >= c.threshold), c
    assert sorted(summary.drifted_columns) == sorted(SHIFTED)


def test_drift_share_threshold_decides_dataset_drift(reference: pd.DataFrame, shifted_current: pd.DataFrame) -> None:
    summary, _ = run_drift_report(
        reference, shifted_current, numeric=NUMERIC, categorical=CATEGORICAL, drift_share_threshold=0.6
    )
    # Same three drifted columns as with the default, but 3/6 < 0.6.
    assert sorted(summary.drifted_columns) == sorted(SHIFTED)
    assert not summary.dataset_drift


def test_nulls_do_not_crash_and_an_all_null_column_counts_as_drifted(reference: pd.DataFrame) -> None:
    current = make_frame(N_CURRENT, seed=4).astype({"cat_b": object})
    current.loc[::7, "num_a"] = np.nan
    current.loc[::5, "cat_b"] = None
    current.loc[3, "num_c"] = np.inf
    current["num_b"] = np.nan  # a feed that broke completely
    ref = reference.copy()
    ref.loc[::11, "num_a"] = np.nan

    summary, _ = run_drift_report(ref, current, numeric=NUMERIC, categorical=CATEGORICAL)

    by_column = {c.column: c for c in summary.columns}
    assert by_column["num_b"].drifted
    assert math.isnan(by_column["num_b"].score)
    # Partial nulls are dropped, not treated as a shift.
    assert not by_column["num_a"].drifted
    assert not by_column["cat_b"].drifted
    assert not math.isnan(by_column["num_a"].score)
    # NaN must not leak into the JSON summary.
    as_json = json.loads(json.dumps(summary.to_dict(), allow_nan=False))
    assert {c["column"]: c["score"] for c in as_json["columns"]}["num_b"] is None


def test_all_columns_empty_raises(reference: pd.DataFrame) -> None:
    current = make_frame(100, seed=5)
    current[NUMERIC + CATEGORICAL] = None
    with pytest.raises(ValueError, match="no column has non-null values"):
        run_drift_report(reference, current, numeric=NUMERIC, categorical=CATEGORICAL)


def test_missing_columns_raise_naming_them(reference: pd.DataFrame) -> None:
    current = make_frame(100, seed=6).drop(columns=["num_c", "cat_b"])
    with pytest.raises(ValueError, match="current") as excinfo:
        run_drift_report(reference, current, numeric=NUMERIC, categorical=CATEGORICAL)
    assert "num_c" in str(excinfo.value)
    assert "cat_b" in str(excinfo.value)
    assert "num_a" not in str(excinfo.value)

    with pytest.raises(ValueError, match=r"reference: \['extra'\]"):
        run_drift_report(reference, current.assign(extra=1), numeric=["num_a"], categorical=["extra"])


@pytest.mark.parametrize(
    ("numeric", "categorical", "match"),
    [
        ([], [], "no columns"),
        (["num_a"], ["num_a"], "more than once"),
    ],
)
def test_bad_column_lists_raise(
    reference: pd.DataFrame, numeric: list[str], categorical: list[str], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        run_drift_report(reference, reference.head(100), numeric=numeric, categorical=categorical)


def test_unknown_method_raises(reference: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="not_a_test"):
        run_drift_report(reference, reference.head(100), numeric=NUMERIC, categorical=[], numeric_method="not_a_test")


def test_summary_to_dict_is_compact_json(shifted: tuple[DriftSummary, object]) -> None:
    summary, _ = shifted
    as_dict = json.loads(json.dumps(summary.to_dict(), allow_nan=False))
    assert as_dict["dataset_drift"] is True
    assert sorted(as_dict["drifted_columns"]) == sorted(SHIFTED)
    assert as_dict["n_reference"] == N_REFERENCE
    assert as_dict["n_current"] == N_CURRENT
    assert len(as_dict["columns"]) == 6
    assert set(as_dict["columns"][0]) == {"column", "kind", "stattest", "score", "threshold", "drifted"}


def test_drifted_columns_property() -> None:
    cols = [
        ColumnDrift("a", "numeric", "ks", 0.01, 0.05, True),
        ColumnDrift("b", "numeric", "ks", 0.50, 0.05, False),
        ColumnDrift("c", "categorical", "chisquare", 0.0, 0.05, True),
    ]
    summary = DriftSummary(cols, 2 / 3, 0.3, True, 10, 5)
    assert summary.drifted_columns == ["a", "c"]


def test_save_report_writes_html_and_json(shifted: tuple[DriftSummary, object], tmp_path: pathlib.Path) -> None:
    summary, snapshot = shifted
    paths = save_report(snapshot, summary, tmp_path / "nested" / "2024-01-01")

    assert set(paths) == {"html", "json", "summary"}
    assert {p.name for p in paths.values()} == {"report.html", "report.json", "summary.json"}
    html = paths["html"].read_text(encoding="utf-8")
    assert len(html) > 1000
    assert "<html" in html.lower()

    report = json.loads(paths["json"].read_text(encoding="utf-8"))
    value_drift = [m for m in report["metrics"] if m["config"]["type"].endswith("ValueDrift")]
    assert {m["config"]["column"] for m in value_drift} == set(NUMERIC + CATEGORICAL)

    assert json.loads(paths["summary"].read_text(encoding="utf-8")) == summary.to_dict()


# ---------------------------------------------------------------- sampling, reference profiles, overrides
#
# A reference above DEFAULT_SAMPLE_ROWS is sketched to 10,000 values per column, and a current frame
# is sampled to at most 10,000 rows and a tenth of the reference (see the module docstring).

N_BIG_REFERENCE = 60_000
N_BIG_CURRENT = 30_000


@pytest.fixture(scope="module")
def big_reference() -> pd.DataFrame:
    return make_frame(N_BIG_REFERENCE, seed=11)


@pytest.fixture(scope="module")
def big_same(big_reference: pd.DataFrame) -> tuple[DriftSummary, object]:
    return run_drift_report(big_reference, make_frame(N_BIG_CURRENT, seed=12), numeric=NUMERIC, categorical=CATEGORICAL)


def test_sampled_same_distribution_flags_nothing(big_same: tuple[DriftSummary, object]) -> None:
    summary, _ = big_same
    assert summary.drifted_columns == []
    assert not summary.dataset_drift
    # The full sizes are reported, and what the tests saw: the 10k sketch, and 60k / 10 current rows.
    assert (summary.n_reference, summary.n_current) == (N_BIG_REFERENCE, N_BIG_CURRENT)
    assert (summary.n_reference_tested, summary.n_current_tested) == (DEFAULT_SAMPLE_ROWS, N_BIG_REFERENCE // 10)
    assert summary.to_dict()["n_current_tested"] == N_BIG_REFERENCE // 10


def test_sampled_clear_shifts_are_named(big_reference: pd.DataFrame) -> None:
    summary, _ = run_drift_report(
        big_reference, make_frame(N_BIG_CURRENT, seed=13, shift=True), numeric=NUMERIC, categorical=CATEGORICAL
    )
    assert sorted(summary.drifted_columns) == sorted(SHIFTED)
    assert summary.n_current_tested < N_BIG_CURRENT  # the verdict came from a sample


def test_same_input_same_verdict(big_reference: pd.DataFrame, big_same: tuple[DriftSummary, object]) -> None:
    """Idempotent reruns: the sketch is a pure function of the reference, the sample is seeded."""
    again, _ = run_drift_report(
        big_reference, make_frame(N_BIG_CURRENT, seed=12), numeric=NUMERIC, categorical=CATEGORICAL
    )
    assert again.to_dict() == big_same[0].to_dict()
    # The seed is what fixes the rows: another one draws others (other p-values, same row count).
    other, _ = run_drift_report(
        big_reference, make_frame(N_BIG_CURRENT, seed=12), numeric=NUMERIC, categorical=CATEGORICAL, seed=1
    )
    assert other.n_current_tested == big_same[0].n_current_tested
    assert [c.score for c in other.columns] != [c.score for c in big_same[0].columns]


def test_full_data_ks_flags_a_negligible_shift_the_sampled_test_ignores() -> None:
    """Why the sample: on 200k rows a 0.02 SD shift is 'significant'; on 10k it is not, and 0.15 SD is."""
    rng = np.random.default_rng(21)
    n = 200_000
    reference = pd.DataFrame({"tiny": rng.normal(0, 1, n), "real": rng.normal(0, 1, n)})
    current = pd.DataFrame({"tiny": rng.normal(0.02, 1, n), "real": rng.normal(0.15, 1, n)})

    full, _ = run_drift_report(reference, current, numeric=["tiny", "real"], categorical=[], sample_rows=None)
    sampled, _ = run_drift_report(reference, current, numeric=["tiny", "real"], categorical=[])

    assert full.drifted_columns == ["tiny", "real"]
    assert (full.n_reference_tested, full.n_current_tested) == (n, n)
    assert sampled.drifted_columns == ["real"]
    assert sampled.n_current_tested == DEFAULT_SAMPLE_ROWS


def test_per_column_method_override_is_honoured(reference: pd.DataFrame, shifted_current: pd.DataFrame) -> None:
    summary, snapshot = run_drift_report(
        reference,
        shifted_current,
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        methods={"num_a": "wasserstein", "cat_b": "psi", "not_checked": "ks"},  # the last is ignored
        column_thresholds={"num_a": 0.1, "cat_b": 0.2},
    )
    by_column = {c.column: c for c in summary.columns}
    assert {c: (by_column[c].stattest, by_column[c].threshold) for c in ("num_a", "cat_b")} == {
        "num_a": ("wasserstein", 0.1),
        "cat_b": ("psi", 0.2),
    }
    # The others keep the per-type defaults and the global threshold.
    assert {c: by_column[c].stattest for c in ("num_b", "num_c", "cat_a", "cat_c")} == {
        "num_b": "ks",
        "num_c": "ks",
        "cat_a": "chisquare",
        "cat_c": "chisquare",
    }
    assert by_column["num_b"].threshold == pytest.approx(0.05)
    # Distance semantics for the overridden columns: 0.5 SD is far above 0.1; cat_b did not move.
    assert by_column["num_a"].drifted and by_column["num_a"].score >= 0.1
    assert not by_column["cat_b"].drifted and by_column["cat_b"].score < 0.2
    assert sorted(summary.drifted_columns) == sorted(SHIFTED)
    # Evidently ran the overridden method (the report is the product, not only our summary).
    methods = {
        m["config"]["column"]: m["config"]["method"]
        for m in snapshot.dict()["metrics"]
        if m["config"]["type"].endswith("ValueDrift")
    }
    assert methods["num_a"] == "wasserstein" and methods["cat_b"] == "psi" and methods["num_b"] == "ks"


def test_reference_profile_round_trip(
    big_reference: pd.DataFrame, big_same: tuple[DriftSummary, object], tmp_path: pathlib.Path
) -> None:
    profile = build_reference_profile(big_reference, numeric=NUMERIC, categorical=CATEGORICAL)
    path = profile.save(tmp_path / "champion-7")
    loaded = load_reference_profile(path.parent)

    assert loaded.n_rows == N_BIG_REFERENCE
    assert loaded.kinds == {**dict.fromkeys(NUMERIC, "numeric"), **dict.fromkeys(CATEGORICAL, "categorical")}
    pd.testing.assert_frame_equal(loaded.frame, profile.frame)
    assert path.stat().st_size < 1_000_000  # a small artifact, whatever the reference's size

    # The daily check against the saved profile is the check against the full reference.
    from_profile, _ = run_drift_report(
        loaded, make_frame(N_BIG_CURRENT, seed=12), numeric=NUMERIC, categorical=CATEGORICAL
    )
    assert from_profile.to_dict() == big_same[0].to_dict()


def test_reference_profile_keeps_the_reference_distribution(big_reference: pd.DataFrame) -> None:
    ref = big_reference.copy()
    ref.loc[:2, "cat_b"] = "rare"  # 3 rows in 60k: less than one slot in 10k, still kept
    profile = build_reference_profile(ref, numeric=NUMERIC, categorical=CATEGORICAL)
    sketch = profile.frame

    assert len(sketch) == DEFAULT_SAMPLE_ROWS
    # Numeric: the quantiles, actual observations; integer columns stay integers.
    assert np.isin(sketch["num_a"], ref["num_a"]).all()
    assert sketch["num_a"].is_monotonic_increasing
    assert abs(sketch["num_b"].median() - ref["num_b"].median()) < 0.01
    assert sketch["cat_c"].dtype == ref["cat_c"].dtype
    # Categorical: the full reference's proportions to within one slot, every level present.
    full = ref["cat_a"].value_counts(normalize=True)
    sketched = sketch["cat_a"].value_counts(normalize=True)
    assert (sketched.reindex(full.index) - full).abs().max() <= 1 / DEFAULT_SAMPLE_ROWS
    assert (sketch["cat_b"] == "rare").sum() == 1

    # Small references are used as they are.
    small = build_reference_profile(ref.head(500), numeric=NUMERIC, categorical=CATEGORICAL)
    pd.testing.assert_frame_equal(small.frame, ref.head(500)[NUMERIC + CATEGORICAL])


def test_reference_profile_misuse_raises(big_reference: pd.DataFrame, tmp_path: pathlib.Path) -> None:
    profile = build_reference_profile(big_reference, numeric=["num_a"], categorical=["cat_a"])
    with pytest.raises(ValueError, match="another kind"):
        run_drift_report(profile, big_reference.head(100), numeric=[], categorical=["num_a"])
    with pytest.raises(ValueError, match="num_b"):
        run_drift_report(profile, big_reference.head(100), numeric=["num_a", "num_b"], categorical=[])
    ids = big_reference.assign(session=[f"s{i}" for i in range(len(big_reference))])
    with pytest.raises(ValueError, match="identifier"):
        build_reference_profile(ids, numeric=[], categorical=["session"])
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "reference_profile.parquet")
    with pytest.raises(ValueError, match="not a drift reference profile"):
        load_reference_profile(tmp_path)


def test_yarnit_config_carries_the_sample_size() -> None:
    from mlcycle.config import DriftThresholds, get_usecase

    drift = get_usecase("yarnit").thresholds.drift
    assert drift.sample_rows == DEFAULT_SAMPLE_ROWS
    assert (drift.methods, drift.column_thresholds) == ({}, {})
    with pytest.raises(ValueError, match="must not be negative"):
        DriftThresholds(column_thresholds={"price": -0.1})


def test_the_same_data_and_day_save_the_same_bytes(
    reference: pd.DataFrame, shifted_current: pd.DataFrame, tmp_path: pathlib.Path
) -> None:
    """A partition's manifest records each file's sha256: two runs of one day (a retry, a pod and the local
    launcher) must write identical reports. Evidently alone would not: its HTML has random widget ids."""
    for run in ("first", "second"):
        summary, snapshot = run_drift_report(reference, shifted_current, numeric=NUMERIC, categorical=CATEGORICAL)
        save_report(snapshot, summary, tmp_path / run)
    names = sorted(p.name for p in (tmp_path / "first").iterdir())
    assert names == ["report.html", "report.json", "summary.json"]
    for name in names:
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes(), name


def test_stable_ids_renumber_uuids_in_order_and_keep_references() -> None:
    a, b = "0190a2b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b", "0190a2b4-1c2d-7e3f-8a9b-0c1d2e3f4a5c"
    text = f'{{"id": "{b}", "parent": "{a}", "child_of": "{b}"}}'
    first, second = "00000000-0000-7000-8000-000000000001", "00000000-0000-7000-8000-000000000002"
    assert stable_ids(text) == f'{{"id": "{first}", "parent": "{second}", "child_of": "{first}"}}'
