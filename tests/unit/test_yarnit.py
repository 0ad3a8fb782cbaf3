"""Unit tests for the YarnIt synthetic data generator."""

from __future__ import annotations

import datetime
import re
from functools import cache

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlcycle.config import get_usecase
from mlcycle.synthetic import yarnit
from mlcycle.synthetic.yarnit import (
    SCENARIOS,
    ScenarioWindow,
    active_scenarios,
    generate_day,
    parse_scenario,
)

DAY = datetime.date(2026, 9, 16)  # a Wednesday
ONE_DAY = datetime.timedelta(days=1)

EXPECTED_DTYPES = {
    "session_id": "object",
    "event_ts": "datetime64[us, UTC]",
    "customer_id": "object",
    "country": "object",
    "language": "object",
    "device": "object",
    "traffic_source": "object",
    "product_category": "object",
    "fibre": "object",
    "yarn_weight": "object",
    "price": "float64",
    "discount_pct": "float64",
    "pages_viewed": "int64",
    "session_duration_s": "float64",
    "customer_tenure_days": "int64",
    "previous_purchases": "int64",
    "days_since_last_purchase": "float64",
    "purchased": "int64",
}

ALLOWED_VALUES = {
    "country": {"US", "GB", "DE", "FR", "NL", "CA", "AU", "IE"},
    "language": {"en", "de", "fr", "nl"},
    "device": {"desktop", "mobile", "tablet"},
    "traffic_source": {"search", "social", "email", "direct", "ads"},
    "product_category": {"yarn", "needles", "hooks", "patterns", "kits", "notions"},
    "fibre": {"wool", "merino", "alpaca", "cotton", "linen", "bamboo", "acrylic", "silk", "blend"},
    "yarn_weight": {"lace", "fingering", "sport", "dk", "worsted", "bulky"},
}

SUMMER_FIBRES = ["cotton", "linen", "bamboo"]
WINTER_FIBRES = ["wool", "merino", "alpaca"]


def window(name: str, start: datetime.date = DAY, end: datetime.date | None = None) -> ScenarioWindow:
    return ScenarioWindow(name=name, start=start, end=start if end is None else end)


def days_from(start: datetime.date, count: int) -> list[datetime.date]:
    return [start + i * ONE_DAY for i in range(count)]


@cache
def _cached_day(day: datetime.date, scenario_names: tuple[str, ...]) -> pd.DataFrame:
    return generate_day(day, scenarios=[window(name, day) for name in scenario_names])


def day_frame(day: datetime.date = DAY, *scenario_names: str) -> pd.DataFrame:
    """A generated day (cached across tests; copied so no test can disturb another)."""
    return _cached_day(day, scenario_names).copy()


def pooled(start: datetime.date, count: int, *scenario_names: str) -> pd.DataFrame:
    return pd.concat([day_frame(d, *scenario_names) for d in days_from(start, count)], ignore_index=True)


def share(frame: pd.DataFrame, column: str, values: list[str]) -> float:
    return float(frame[column].isin(values).mean())


# --- determinism ----------------------------------------------------------------------------------


def test_same_inputs_give_identical_frames() -> None:
    scenarios = [window("covariate_shift"), window("null_spike")]
    pd.testing.assert_frame_equal(generate_day(DAY), generate_day(DAY))
    pd.testing.assert_frame_equal(
        generate_day(DAY, seed=11, scenarios=scenarios, base_rows=500),
        generate_day(DAY, seed=11, scenarios=list(scenarios), base_rows=500),
    )


def test_different_day_or_seed_gives_different_data() -> None:
    base = generate_day(DAY, base_rows=500)
    other_seed = generate_day(DAY, seed=8, base_rows=500)
    next_day = generate_day(DAY + ONE_DAY, base_rows=500)
    for other in (other_seed, next_day):
        assert not base.equals(other)
        # Not just a different length or a few rows: the draws themselves are different.
        n = min(len(base), len(other))
        for column in ("customer_id", "traffic_source", "price", "session_duration_s"):
            same = base[column].to_numpy()[:n] == other[column].to_numpy()[:n]
            assert same.mean() < 0.6, column


def test_scenario_outside_its_window_changes_nothing() -> None:
    scenarios = [ScenarioWindow("covariate_shift", DAY + ONE_DAY, DAY + 3 * ONE_DAY)]
    pd.testing.assert_frame_equal(generate_day(DAY, scenarios=scenarios), day_frame())
    assert not generate_day(DAY + 3 * ONE_DAY, scenarios=scenarios).equals(day_frame(DAY + 3 * ONE_DAY))


# --- schema and per-row rules ---------------------------------------------------------------------


def test_columns_and_dtypes_are_exact() -> None:
    frame = day_frame()
    assert list(frame.columns) == list(EXPECTED_DTYPES)
    assert {col: str(dtype) for col, dtype in frame.dtypes.items()} == EXPECTED_DTYPES
    assert frame.index.equals(pd.RangeIndex(len(frame)))
    assert not frame.drop(columns="days_since_last_purchase").isna().any().any()


def test_categorical_values_are_from_the_allowed_sets() -> None:
    frame = day_frame()
    for column, allowed in ALLOWED_VALUES.items():
        assert set(frame[column].unique()) == allowed, column
        assert all(type(value) is str for value in frame[column]), column


def test_language_follows_country() -> None:
    frame = pooled(DAY, 3)
    by_country = frame.groupby("country")["language"].agg(lambda s: s.value_counts(normalize=True).to_dict())
    assert by_country["DE"].get("de", 0) > 0.8
    assert by_country["FR"].get("fr", 0) > 0.8
    assert by_country["NL"].get("nl", 0) > 0.6
    for country in ("US", "GB", "IE", "AU"):
        assert by_country[country] == {"en": 1.0}


def test_session_ids_are_unique_sequential_and_well_formed() -> None:
    frame = day_frame()
    assert frame["session_id"].is_unique
    assert frame["session_id"].str.fullmatch(r"20260916-\d{6}").all()
    expected = [f"20260916-{i:06d}" for i in range(1, len(frame) + 1)]
    assert frame["session_id"].tolist() == expected
    assert frame["customer_id"].str.fullmatch(r"C\d{7}").all()


def test_event_ts_is_inside_the_day_and_sorted() -> None:
    frame = day_frame()
    start = pd.Timestamp(DAY, tz="UTC")
    assert frame["event_ts"].min() >= start
    assert frame["event_ts"].max() < start + pd.Timedelta(days=1)
    assert frame["event_ts"].is_monotonic_increasing
    # Diurnal: the evening is busier than the early morning.
    hours = frame["event_ts"].dt.hour
    assert hours.between(18, 22).sum() > 2 * hours.between(5, 9).sum()


def test_numeric_ranges() -> None:
    frame = pooled(DAY, 3)
    assert (frame["price"] > 0).all()
    assert frame["price"].between(1.5, 180).all()
    assert 5 < frame["price"].median() < 30
    assert frame["discount_pct"].between(0, 0.5).all()
    assert (frame["discount_pct"] == 0).mean() > 0.6
    assert (frame["discount_pct"] > 0).any()
    assert (frame["pages_viewed"] >= 1).all()
    assert (frame["session_duration_s"] >= 0).all()
    assert (frame["customer_tenure_days"] >= 0).all()
    assert (frame["previous_purchases"] >= 0).all()
    assert set(frame["purchased"].unique()) == {0, 1}


def test_price_depends_on_category_and_fibre() -> None:
    frame = pooled(DAY, 3)
    by_category = frame.groupby("product_category")["price"].median()
    assert by_category["kits"] > 2 * by_category["yarn"] > 2 * by_category["notions"]
    yarn = frame[frame["product_category"] == "yarn"]
    by_fibre = yarn.groupby("fibre")["price"].median()
    assert by_fibre["silk"] > 1.5 * by_fibre["acrylic"]


def test_days_since_last_purchase_is_null_exactly_for_first_time_buyers() -> None:
    frame = pooled(DAY, 3)
    never_bought = frame["previous_purchases"] == 0
    assert never_bought.any() and (~never_bought).any()
    assert (frame["days_since_last_purchase"].isna() == never_bought).all()
    assert (frame.loc[~never_bought, "days_since_last_purchase"] >= 0).all()
    # Nobody can have bought before they signed up.
    assert (frame["days_since_last_purchase"].dropna() <= frame.loc[~never_bought, "customer_tenure_days"]).all()


def test_returning_customers_have_consistent_histories_across_days() -> None:
    today, tomorrow = day_frame(), day_frame(DAY + ONE_DAY)
    both = today.drop_duplicates("customer_id").merge(
        tomorrow.drop_duplicates("customer_id"), on="customer_id", suffixes=("_1", "_2")
    )
    assert len(both) >= 5
    assert (both["country_1"] == both["country_2"]).all()
    assert (both["language_1"] == both["language_2"]).all()
    assert (both["customer_tenure_days_2"] == both["customer_tenure_days_1"] + 1).all()
    assert (both["previous_purchases_2"] >= both["previous_purchases_1"]).all()


# --- volume and seasonality -----------------------------------------------------------------------


def test_row_count_tracks_base_rows() -> None:
    assert 0.7 * 3000 < len(day_frame()) < 1.6 * 3000
    assert 0.7 * 400 < len(generate_day(DAY, base_rows=400)) < 1.6 * 400


def test_weekends_have_more_sessions() -> None:
    counts = pd.Series({d: len(day_frame(d)) for d in days_from(datetime.date(2026, 9, 7), 28)})
    weekend = counts[[d.weekday() >= 5 for d in counts.index]]
    weekday = counts[[d.weekday() < 5 for d in counts.index]]
    assert weekend.mean() > 1.15 * weekday.mean()


def test_winter_has_more_sessions_and_a_warmer_mix() -> None:
    january = pooled(datetime.date(2026, 1, 12), 7)
    july = pooled(datetime.date(2026, 7, 13), 7)
    assert len(january) > 1.2 * len(july)
    assert share(january, "fibre", WINTER_FIBRES) > share(july, "fibre", WINTER_FIBRES) + 0.1
    assert share(july, "fibre", SUMMER_FIBRES) > share(january, "fibre", SUMMER_FIBRES) + 0.1
    assert share(january, "yarn_weight", ["worsted", "bulky"]) > share(july, "yarn_weight", ["worsted", "bulky"])
    assert share(july, "yarn_weight", ["lace", "fingering"]) > share(january, "yarn_weight", ["lace", "fingering"])


# --- the label ------------------------------------------------------------------------------------


def test_positive_rate_is_in_range() -> None:
    frame = pooled(DAY, 7)
    assert 0.08 <= frame["purchased"].mean() <= 0.15
    for d in days_from(DAY, 7):
        assert 0.06 <= day_frame(d)["purchased"].mean() <= 0.18


def test_label_depends_on_the_features() -> None:
    frame = pooled(DAY, 7)
    rate = frame.groupby(frame["discount_pct"] > 0)["purchased"].mean()
    assert rate[True] > rate[False] + 0.03
    rate = frame.groupby(frame["previous_purchases"] > 3)["purchased"].mean()
    assert rate[True] > rate[False] + 0.03
    rate = frame.groupby("device")["purchased"].mean()
    assert rate["desktop"] > rate["mobile"] + 0.03
    rate = frame.groupby(frame["pages_viewed"] >= 8)["purchased"].mean()
    assert rate[True] > 1.5 * rate[False]


def test_labels_are_drawn_from_the_label_function() -> None:
    days = days_from(DAY, 7)
    frame = pooled(DAY, 7)
    p = np.concatenate([yarnit._purchase_probability(day_frame(d), d, concept_shift=False) for d in days])
    # About 20k rows: the standard error of a rate near 0.12 is about 0.002.
    assert abs(frame["purchased"].mean() - p.mean()) < 0.008
    for device in ("desktop", "mobile"):
        rows = (frame["device"] == device).to_numpy()
        assert abs(frame.loc[rows, "purchased"].mean() - p[rows].mean()) < 0.012, device


def test_weekends_convert_slightly_more() -> None:
    frame = day_frame(datetime.date(2026, 9, 19))  # a Saturday
    saturday = yarnit._purchase_probability(frame, datetime.date(2026, 9, 19), concept_shift=False)
    as_friday = yarnit._purchase_probability(frame, datetime.date(2026, 9, 18), concept_shift=False)
    assert (saturday > as_friday).all()


# --- scenarios ------------------------------------------------------------------------------------


def test_covariate_shift_moves_the_inputs_strongly() -> None:
    normal, shifted = day_frame(), day_frame(DAY, "covariate_shift")
    assert share(shifted, "fibre", SUMMER_FIBRES) > share(normal, "fibre", SUMMER_FIBRES) + 0.3
    assert (
        share(shifted, "yarn_weight", ["lace", "fingering"]) > share(normal, "yarn_weight", ["lace", "fingering"]) + 0.2
    )
    assert share(shifted, "device", ["mobile"]) > share(normal, "device", ["mobile"]) + 0.1
    assert shifted["price"].median() < 0.9 * normal["price"].median()
    assert shifted["session_duration_s"].median() < 0.8 * normal["session_duration_s"].median()

    # What a drift monitor would see against a two-week reference.
    reference = pooled(DAY - 14 * ONE_DAY, 14)
    for column in ("price", "session_duration_s"):
        assert stats.ks_2samp(reference[column], shifted[column]).pvalue < 1e-6, column
        assert stats.ks_2samp(reference[column], normal[column]).pvalue > 1e-3, column
    for column in ("fibre", "yarn_weight", "device"):
        table = pd.crosstab(
            np.r_[np.zeros(len(reference)), np.ones(len(shifted))],
            pd.concat([reference[column], shifted[column]], ignore_index=True),
        )
        assert stats.chi2_contingency(table).pvalue < 1e-6, column


def test_covariate_shift_leaves_unrelated_columns_alone() -> None:
    normal, shifted = day_frame(), day_frame(DAY, "covariate_shift")
    unrelated = [
        "session_id",
        "event_ts",
        "customer_id",
        "country",
        "language",
        "traffic_source",
        "product_category",
        "discount_pct",
        "customer_tenure_days",
        "previous_purchases",
        "days_since_last_purchase",
    ]
    pd.testing.assert_frame_equal(normal[unrelated], shifted[unrelated])


def test_covariate_shift_keeps_p_label_given_features() -> None:
    # Pool several shifted days so calibration is measured to within about a percentage point.
    frames = {d: day_frame(d, "covariate_shift") for d in days_from(DAY, 4)}
    for concept_shift, should_fit in ((False, True), (True, False)):
        p = np.concatenate([yarnit._purchase_probability(f, d, concept_shift=concept_shift) for d, f in frames.items()])
        y = pd.concat(frames.values(), ignore_index=True)["purchased"].to_numpy()
        mobile = pd.concat(frames.values(), ignore_index=True)["device"].eq("mobile").to_numpy()
        gap = abs(y[mobile].mean() - p[mobile].mean())
        assert bool(gap < 0.015) is should_fit, (concept_shift, gap)


def test_concept_shift_keeps_features_and_changes_the_label() -> None:
    days = days_from(DAY, 4)
    normal = pooled(DAY, 4)
    shifted = pooled(DAY, 4, "concept_shift")
    pd.testing.assert_frame_equal(normal.drop(columns="purchased"), shifted.drop(columns="purchased"))

    mobile = normal["device"] == "mobile"
    assert shifted.loc[mobile, "purchased"].mean() > normal.loc[mobile, "purchased"].mean() + 0.04
    discounted = normal["discount_pct"] >= 0.2
    assert shifted.loc[discounted, "purchased"].mean() < normal.loc[discounted, "purchased"].mean() - 0.1
    # Overall the positive rate stays put, so only a look at P(label | features) gives it away.
    assert abs(shifted["purchased"].mean() - normal["purchased"].mean()) < 0.03
    # The old label function no longer fits.
    p_old = np.concatenate([yarnit._purchase_probability(day_frame(d), d, concept_shift=False) for d in days])
    assert abs(shifted.loc[mobile, "purchased"].mean() - p_old[mobile.to_numpy()].mean()) > 0.04


def test_schema_break_renames_price_and_drops_device() -> None:
    normal, broken = day_frame(), day_frame(DAY, "schema_break")
    expected = [("unit_price" if c == "price" else c) for c in EXPECTED_DTYPES if c != "device"]
    assert list(broken.columns) == expected
    assert "price" not in broken.columns and "device" not in broken.columns
    np.testing.assert_array_equal(broken["unit_price"].to_numpy(), normal["price"].to_numpy())


def test_null_spike_nulls_about_forty_percent() -> None:
    normal, spiked = day_frame(), day_frame(DAY, "null_spike")
    for column in ("price", "country", "pages_viewed"):
        assert 0.35 <= spiked[column].isna().mean() <= 0.45, column
        kept = spiked[column].notna()
        assert (spiked.loc[kept, column] == normal.loc[kept, column]).all(), column
    assert str(spiked["pages_viewed"].dtype) == "float64"
    untouched = [c for c in EXPECTED_DTYPES if c not in ("price", "country", "pages_viewed")]
    pd.testing.assert_frame_equal(spiked[untouched], normal[untouched])


def test_label_outage_sets_every_label_to_zero() -> None:
    normal, outage = day_frame(), day_frame(DAY, "label_outage")
    assert normal["purchased"].sum() > 0
    assert str(outage["purchased"].dtype) == "int64"
    assert (outage["purchased"] == 0).all()
    pd.testing.assert_frame_equal(outage.drop(columns="purchased"), normal.drop(columns="purchased"))


def test_label_leak_zeroes_days_since_last_purchase_on_every_purchase_and_nothing_else() -> None:
    normal, leaky = day_frame(), day_frame(DAY, "label_leak")
    bought = normal["purchased"] == 1
    assert bought.sum() > 0 and (~bought).sum() > 0
    assert (leaky.loc[bought, "days_since_last_purchase"] == 0).all()
    pd.testing.assert_series_equal(
        leaky.loc[~bought, "days_since_last_purchase"], normal.loc[~bought, "days_since_last_purchase"]
    )
    # Before the leak few buyers had bought that day; after it, "0 days" all but names the label.
    assert (normal.loc[bought, "days_since_last_purchase"] == 0).mean() < 0.1
    assert leaky.loc[leaky["days_since_last_purchase"] == 0, "purchased"].mean() > 0.9
    pd.testing.assert_frame_equal(
        leaky.drop(columns="days_since_last_purchase"), normal.drop(columns="days_since_last_purchase")
    )


def test_volume_drop_keeps_a_small_fraction_of_rows() -> None:
    normal, dropped = day_frame(), day_frame(DAY, "volume_drop")
    assert 0.05 * len(normal) < len(dropped) < 0.25 * len(normal)
    assert dropped["session_id"].tolist() == [f"20260916-{i:06d}" for i in range(1, len(dropped) + 1)]
    assert dropped["event_ts"].is_monotonic_increasing
    assert {col: str(dtype) for col, dtype in dropped.dtypes.items()} == EXPECTED_DTYPES


def test_volume_drop_can_leave_an_empty_but_well_typed_frame() -> None:
    empty = None
    for d in days_from(DAY, 20):
        frame = generate_day(d, base_rows=1, scenarios=[window("volume_drop", d)])
        if frame.empty:
            empty = frame
            break
    assert empty is not None
    assert {col: str(dtype) for col, dtype in empty.dtypes.items()} == EXPECTED_DTYPES


def test_scenarios_combine() -> None:
    frame = day_frame(DAY, "schema_break", "null_spike", "label_outage", "volume_drop")
    assert "unit_price" in frame.columns and "device" not in frame.columns
    assert 0.25 <= frame["unit_price"].isna().mean() <= 0.55
    assert (frame["purchased"] == 0).all()
    assert len(frame) < 0.25 * len(day_frame())


def test_every_scenario_changes_the_day() -> None:
    normal = day_frame()
    for name in SCENARIOS:
        assert not day_frame(DAY, name).equals(normal), name


# --- scenario windows and parsing -----------------------------------------------------------------


def test_active_scenarios_respects_inclusive_windows() -> None:
    windows = [
        ScenarioWindow("volume_drop", DAY, DAY + 2 * ONE_DAY),
        ScenarioWindow("covariate_shift", DAY + 2 * ONE_DAY, DAY + 2 * ONE_DAY),
        ScenarioWindow("volume_drop", DAY + ONE_DAY, DAY + ONE_DAY),
    ]
    assert active_scenarios(DAY - ONE_DAY, windows) == []
    assert active_scenarios(DAY, windows) == ["volume_drop"]
    assert active_scenarios(DAY + ONE_DAY, windows) == ["volume_drop"]
    assert active_scenarios(DAY + 2 * ONE_DAY, windows) == ["covariate_shift", "volume_drop"]
    assert active_scenarios(DAY + 3 * ONE_DAY, windows) == []
    assert windows[0].active_on(DAY + 2 * ONE_DAY) and not windows[0].active_on(DAY + 3 * ONE_DAY)


def test_parse_scenario_with_and_without_end() -> None:
    assert parse_scenario("covariate_shift:2026-09-15:2026-09-21") == ScenarioWindow(
        "covariate_shift", datetime.date(2026, 9, 15), datetime.date(2026, 9, 21)
    )
    assert parse_scenario(" null_spike:2026-09-15 ") == ScenarioWindow(
        "null_spike", datetime.date(2026, 9, 15), datetime.date(2026, 9, 15)
    )
    for name in SCENARIOS:
        assert parse_scenario(f"{name}:2026-01-01").name == name


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("heatwave:2026-09-15", r"unknown scenario 'heatwave'.*covariate_shift.*volume_drop"),
        ("covariate_shift:2026-09-21:2026-09-15", r"before start"),
        ("covariate_shift:2026-13-01", r"not a YYYY-MM-DD date"),
        ("covariate_shift:20260915", r"not a YYYY-MM-DD date"),
        ("covariate_shift:2026-09-15:soon", r"not a YYYY-MM-DD date"),
        ("covariate_shift", r"expected NAME:START\[:END\]"),
        ("covariate_shift:2026-09-15:2026-09-16:2026-09-17", r"expected NAME:START\[:END\]"),
        ("covariate_shift::2026-09-16", r"expected NAME:START\[:END\]"),
        ("", r"expected NAME:START\[:END\]"),
    ],
)
def test_parse_scenario_rejects_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_scenario(spec)


def test_scenario_window_validates() -> None:
    with pytest.raises(ValueError, match=re.escape("unknown scenario 'drift'") + r".*concept_shift"):
        ScenarioWindow("drift", DAY, DAY)
    with pytest.raises(ValueError, match="before start"):
        ScenarioWindow("null_spike", DAY, DAY - ONE_DAY)
    with pytest.raises(TypeError):
        ScenarioWindow("null_spike", datetime.datetime(2026, 9, 16), DAY)


def test_generate_day_validates_its_arguments() -> None:
    with pytest.raises(TypeError, match=r"datetime\.date"):
        generate_day(datetime.datetime(2026, 9, 16, tzinfo=datetime.UTC))
    with pytest.raises(ValueError, match="base_rows"):
        generate_day(DAY, base_rows=0)
    with pytest.raises(ValueError, match="seed"):
        generate_day(DAY, seed=-1)
    with pytest.raises(ValueError, match="before YarnIt opened"):
        generate_day(datetime.date(2000, 1, 1))


def test_session_ids_past_a_million_a_day_widen_and_pass_the_contract() -> None:
    regex = str(get_usecase("yarnit").data_contract.columns["session_id"].regex)
    last = yarnit._session_ids(datetime.date(2026, 9, 16), 1_000_001)[-3:].tolist()
    assert last == ["20260916-999999", "20260916-1000000", "20260916-1000001"]
    assert all(re.fullmatch(regex, i) for i in last)
    assert not re.fullmatch(regex, "20260916-12345"), "fewer than 6 digits is still malformed"
