"""The data contract: its YAML model and loader, and its compilation to a real GX 1.x suite.

The frames here are built with numpy (not mlcycle.synthetic) so that these tests pin the contract,
not the generator. Each validation runs a real Great Expectations suite in an ephemeral context.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcycle.contracts.compile import GX_SEVERITY, build_suite
from mlcycle.contracts.gx_runner import validate_frame
from mlcycle.contracts.results import META_KEY, ContractResult, FailedExpectation
from mlcycle.schema import ContractError, DataContract, load_contract, parse_contract

REPO = pathlib.Path(__file__).resolve().parents[2]
CONTRACT_PATH = REPO / "include" / "usecases" / "yarnit" / "contract.yaml"
DAY = datetime.date(2025, 3, 1)

COUNTRIES = ["US", "GB", "DE", "FR", "NL", "CA", "AU", "IE"]
LANGUAGES = ["en", "de", "fr", "nl"]
DEVICES = ["desktop", "mobile", "tablet"]
SOURCES = ["search", "social", "email", "direct", "ads"]
CATEGORIES = ["yarn", "needles", "hooks", "patterns", "kits", "notions"]
FIBRES = ["wool", "merino", "alpaca", "cotton", "linen", "bamboo", "acrylic", "silk", "blend"]
WEIGHTS = ["lace", "fingering", "sport", "dk", "worsted", "bulky"]


def make_frame(n: int = 600, day: datetime.date = DAY, seed: int = 7) -> pd.DataFrame:
    """A plausible YarnIt day: one browsing session per row, all contract rules satisfied."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(day, tz="UTC")
    previous = np.where(rng.random(n) < 0.4, 0, rng.poisson(3, n) + 1).astype("int64")
    tenure = rng.integers(0, 3_000, n).astype("int64")
    # Nobody bought before they signed up (the contract's compare rule).
    days_since = np.where(previous == 0, np.nan, np.floor(rng.uniform(0, 1, n) * tenure))
    return pd.DataFrame(
        {
            "session_id": [f"{day:%Y%m%d}-{i:06d}" for i in range(n)],
            "event_ts": (start + pd.to_timedelta(np.sort(rng.integers(0, 86_400, n)), unit="s")).as_unit("us"),
            "customer_id": [f"C{c:07d}" for c in rng.integers(0, 10_000_000, n)],
            "country": rng.choice(COUNTRIES, n),
            "language": rng.choice(LANGUAGES, n),
            "device": rng.choice(DEVICES, n),
            "traffic_source": rng.choice(SOURCES, n),
            "product_category": rng.choice(CATEGORIES, n),
            "fibre": rng.choice(FIBRES, n),
            "yarn_weight": rng.choice(WEIGHTS, n),
            "price": rng.lognormal(3.0, 0.7, n).clip(1.0, 900.0).round(2),
            "discount_pct": rng.choice([0.0, 0.1, 0.2, 0.3], n),
            "pages_viewed": (rng.poisson(6, n) + 1).astype("int64"),
            "session_duration_s": rng.exponential(300.0, n).round(1),
            "customer_tenure_days": tenure,
            "previous_purchases": previous,
            "days_since_last_purchase": days_since,
            "purchased": (rng.random(n) < 0.12).astype("int64"),
        }
    )


@pytest.fixture(scope="module")
def contract() -> DataContract:
    return load_contract(CONTRACT_PATH)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


def failed(result: ContractResult) -> set[tuple[str, str | None, str]]:
    """(rule, column, severity) of every failure."""
    return {(f.rule, f.column, f.severity) for f in result.failures}


def only(result: ContractResult, rule: str, column: str | None = None) -> FailedExpectation:
    matches = [f for f in result.failures if f.rule == rule and f.column == column]
    assert len(matches) == 1, result.messages()
    return matches[0]


# ------------------------------------------------------------------------------------------ model


def test_yarnit_contract_loads(contract: DataContract) -> None:
    assert contract.version == 1
    assert len(contract.columns) == 18
    assert contract.key == ["session_id"]
    assert contract.timestamp == "event_ts"
    assert contract.target == "purchased"
    assert contract.columns["event_ts"].type == "timestamp"
    assert contract.columns["days_since_last_purchase"].nullable
    assert contract.column_names(serving=True) == [c for c in contract.columns if c != "purchased"]
    # Defaults and overrides.
    assert contract.severity_of("type", "price") == "hard"
    assert contract.severity_of("range", "price") == "hard"
    assert contract.severity_of("range", "session_duration_s") == "soft"  # column severity
    assert contract.severity_of("type", "session_duration_s") == "hard"  # schema stays hard
    assert contract.severity_of("not_null", "days_since_last_purchase") == "soft"  # rules: override
    assert contract.severity_of("range", "days_since_last_purchase") == "hard"
    assert contract.severity_of("row_count") == "hard"
    assert contract.severity_of("label_positive_rate") == "hard"
    # Statistics are drift-like (soft), cardinality and cross-column rules hard, volume dips soft.
    assert contract.severity_of("median", "session_duration_s") == "soft"
    assert contract.severity_of("mean", "price") == "soft"
    assert contract.severity_of("distinct", "fibre") == "hard"
    assert contract.severity_of("compare", "customer_tenure_days") == "hard"
    assert contract.severity_of("volume") == "soft"
    assert contract.severity_of("forbidden_columns") == "hard"
    assert "email" in contract.forbidden_columns
    assert [r.text for r in contract.compare] == ["customer_tenure_days >= days_since_last_purchase"]


def write(tmp_path: pathlib.Path, data: Any) -> pathlib.Path:
    path = tmp_path / "contract.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def yarnit_data() -> dict[str, Any]:
    data = yaml.safe_load(CONTRACT_PATH.read_text())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: d["columns"]["price"].update(minimum=0),
            "contract.yaml: columns.price.minimum: Extra inputs are not permitted",
        ),
        (
            lambda d: d["columns"]["price"].update(min="cheap"),
            "contract.yaml: columns.price.min: Input should be a valid number",
        ),
        (lambda d: d.update(colums={}), "contract.yaml: colums: Extra inputs are not permitted"),
        (
            lambda d: d["columns"]["country"].update(type="text"),
            "contract.yaml: columns.country.type: Input should be 'string', 'float', 'int' or 'timestamp'",
        ),
        (
            lambda d: d["columns"]["price"].update(severity="fatal"),
            "contract.yaml: columns.price.severity: Input should be 'hard' or 'soft'",
        ),
        (
            lambda d: d["table"]["row_count"].update(min=-1),
            "contract.yaml: table.row_count.min: Input should be greater than or equal to 0",
        ),
        (
            lambda d: d["rules"].append({"expectation": "rowcount", "severity": "soft"}),
            "contract.yaml: rules[1].expectation: Input should be",
        ),
        (
            lambda d: d["rules"].append({"expectation": "range", "column": "country", "severity": "soft"}),
            "rules[1]: column 'country' has no range rule",
        ),
        (lambda d: d.update(key=["session"]), "key column 'session' is not among the columns"),
        (lambda d: d.update(target="price_eur"), "target column 'price_eur' is not among the columns"),
        (
            lambda d: d["columns"]["price"].update(min=10, max=1),
            "contract.yaml: columns.price: min (10) is greater than max (1)",
        ),
        (
            lambda d: d["columns"]["country"].update(regex="^[A-Z"),
            "contract.yaml: columns.country: regex '^[A-Z' does not compile",
        ),
        (
            lambda d: d["columns"]["pages_viewed"].update(nullable=True),
            "an int column cannot hold nulls",
        ),
        (
            lambda d: d["columns"]["country"]["allowed"].append(False),  # what YAML makes of a bare NO
            "contract.yaml: columns.country: allowed[8] = False is not a string",
        ),
        (lambda d: d.update(version=2), "contract.yaml: version: Input should be 1"),
        (
            lambda d: d["columns"]["country"].update(mean={"min": 1}),
            "contract.yaml: columns.country: mean/median apply to int and float columns, not to string",
        ),
        (
            lambda d: d["columns"]["price"].update(median={"min": 5, "max": 1}),
            "contract.yaml: columns.price.median: min (5) is greater than max (1)",
        ),
        (
            lambda d: d["columns"]["event_ts"].update(distinct={"max": 3}),
            "distinct applies to string and int columns, not to timestamp",
        ),
        (
            lambda d: d["forbidden_columns"].append("Country"),
            "forbidden_columns[12]: 'Country' is also a contract column",
        ),
        (
            lambda d: d["compare"].append({"left": "price", "op": ">=", "right": "cost"}),
            "compare[1]: column 'cost' is not among the columns",
        ),
        (
            lambda d: d["compare"].append({"left": "price", "op": ">=", "right": "country"}),
            "compare[1]: price >= country compares number with string",
        ),
        (
            lambda d: d["compare"].append({"left": "price", "op": "=>", "right": "discount_pct"}),
            "contract.yaml: compare[1].op: Input should be '>=', '>', '<=' or '<'",
        ),
        (
            lambda d: d["table"]["volume"].update(min_history=9),
            "contract.yaml: table.volume: min_history (9) is greater than history (7)",
        ),
        (
            lambda d: d["rules"].append({"expectation": "compare", "column": "price", "severity": "soft"}),
            "rules[1]: compare overrides name the left column of a compare rule",
        ),
        (
            lambda d: d["rules"].append({"expectation": "median", "column": "price", "severity": "hard"}),
            "rules[1]: column 'price' has no median rule",
        ),
    ],
)
def test_bad_contract_names_file_and_field(
    tmp_path: pathlib.Path, edit: Callable[[dict[str, Any]], None], expected: str
) -> None:
    data = yarnit_data()
    edit(data)
    with pytest.raises(ContractError) as info:
        load_contract(write(tmp_path, data))
    assert expected in str(info.value)


def test_bad_yaml_files(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ContractError, match="cannot read"):
        load_contract(tmp_path / "missing.yaml")
    with pytest.raises(ContractError, match="must be a mapping"):
        load_contract(write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(ContractError, match="not valid YAML"):
        load_contract(write(tmp_path, "version: 1\ncolumns: {a: {type: string}\n"))
    duplicate = "version: 1\ncolumns:\n  a: {type: string}\n  a: {type: int}\n"
    with pytest.raises(ContractError, match="duplicate key 'a'"):
        load_contract(write(tmp_path, duplicate))


def test_contract_is_a_value_error() -> None:
    assert issubclass(ContractError, ValueError)
    with pytest.raises(ValueError, match=re.escape("source.yaml: columns: Field required")):
        parse_contract({"version": 1}, source="source.yaml")


# ------------------------------------------------------------------------------------------ suite


def test_build_suite_carries_rule_and_severity(contract: DataContract) -> None:
    suite = build_suite(contract, partition=DAY)
    metas = [e.meta[META_KEY] for e in suite.expectations if e.meta]
    assert len(metas) == len(suite.expectations)
    rules = {(m["rule"], m["column"]) for m in metas}
    assert ("columns", None) in rules
    assert ("timestamp_in_partition", "event_ts") in rules
    assert ("label_positive_rate", "purchased") in rules
    assert ("regex", "session_id") in rules
    for expectation in suite.expectations:
        meta = expectation.meta[META_KEY] if expectation.meta else {}
        assert expectation.severity == GX_SEVERITY[meta["severity"]]
        assert meta["expected"]
    # Without a partition there is no day to check; serving drops the label and its rules.
    assert not any(
        e.meta and e.meta[META_KEY]["rule"] == "timestamp_in_partition" for e in build_suite(contract).expectations
    )
    serving = build_suite(contract, partition=DAY, serving=True)
    assert all(e.meta and e.meta[META_KEY]["column"] != "purchased" for e in serving.expectations)
    assert json.dumps(suite.to_json_dict(), default=str)


def test_valid_frame_passes(contract: DataContract, frame: pd.DataFrame) -> None:
    result = validate_frame(frame, contract, partition=DAY)
    assert result.success, result.messages()
    assert result.failures == []
    assert result.evaluated == len(build_suite(contract, partition=DAY).expectations)
    assert result.raw["success"] is True
    json.dumps(result.raw)
    assert result.summary() == {
        "success": True,
        "evaluated": result.evaluated,
        "hard_failures": 0,
        "soft_failures": 0,
        "failed": [],
    }


def _set(df: pd.DataFrame, column: str, rows: slice | list[int], value: Any) -> pd.DataFrame:
    df.loc[df.index[rows], column] = value
    return df


Mutation = Callable[[pd.DataFrame], pd.DataFrame]

MUTATIONS: dict[str, tuple[Mutation, set[tuple[str, str | None, str]]]] = {
    "renamed column": (
        lambda df: df.rename(columns={"price": "price_eur"}),
        {("columns", None, "hard"), ("type", "price", "hard"), ("not_null", "price", "hard"),
         ("range", "price", "hard"), ("mean", "price", "soft")},
    ),
    "dropped column": (
        lambda df: df.drop(columns=["country"]),
        {("columns", None, "hard"), ("type", "country", "hard"), ("not_null", "country", "hard"),
         ("allowed", "country", "hard"), ("distinct", "country", "hard")},
    ),
    "extra column": (
        lambda df: df.assign(coupon_code="SPRING"),
        {("columns", None, "hard")},
    ),
    "int as string": (
        lambda df: df.assign(pages_viewed=df["pages_viewed"].astype(str)),
        {("type", "pages_viewed", "hard"), ("range", "pages_viewed", "hard")},
    ),
    "int as float": (
        lambda df: df.assign(customer_tenure_days=df["customer_tenure_days"].astype("float64")),
        {("type", "customer_tenure_days", "hard")},
    ),
    "float as int": (
        lambda df: df.assign(price=df["price"].round().astype("int64")),
        {("type", "price", "hard")},
    ),
    "naive timestamp": (
        lambda df: df.assign(event_ts=df["event_ts"].dt.tz_localize(None)),
        {("type", "event_ts", "hard"), ("timestamp_in_partition", "event_ts", "hard")},
    ),
    "negative price": (
        lambda df: _set(df, "price", [3, 10], [-3.5, -1.0]),
        {("range", "price", "hard")},
    ),
    "number in a string column": (
        lambda df: _set(df.astype({"country": object}), "country", [0], 44),
        {("type", "country", "hard"), ("allowed", "country", "hard")},
    ),
    "unknown country": (
        lambda df: _set(df, "country", slice(0, 5), "XX"),
        {("allowed", "country", "hard")},
    ),
    "null spike in country": (
        lambda df: _set(df, "country", slice(0, 60), None),
        {("not_null", "country", "hard")},
    ),
    "duplicate session_id": (
        lambda df: _set(df, "session_id", [1], df["session_id"].iloc[0]),
        {("key_unique", "session_id", "hard")},
    ),
    "bad session_id format": (
        lambda df: _set(df, "session_id", [0, 1], ["2025-03-01-000000", "20250301_000001"]),
        {("regex", "session_id", "hard")},
    ),
    "event_ts outside the day": (
        lambda df: _set(df, "event_ts", [0, 599], [pd.Timestamp("2025-02-28 23:59:59", tz="UTC"),
                                                   pd.Timestamp("2025-03-02 00:00:00", tz="UTC")]),
        {("timestamp_in_partition", "event_ts", "hard")},
    ),
    "label all zero": (
        lambda df: df.assign(purchased=0),
        {("label_positive_rate", "purchased", "hard")},
    ),
    "too few rows": (
        lambda df: df.head(100),
        {("row_count", None, "hard")},
    ),
    "session duration negative (soft column)": (
        lambda df: _set(df, "session_duration_s", [5], -12.0),
        {("range", "session_duration_s", "soft")},
    ),
    "first-time share spikes (soft override)": (
        lambda df: df.assign(days_since_last_purchase=np.nan),
        {("not_null", "days_since_last_purchase", "soft")},
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_mutation_fails_the_expected_rule(contract: DataContract, frame: pd.DataFrame, name: str) -> None:
    mutate, expected = MUTATIONS[name]
    result = validate_frame(mutate(frame.copy()), contract, partition=DAY)
    assert failed(result) == expected, result.messages()
    assert result.success == all(severity == "soft" for _, _, severity in expected)
    for failure in result.failures:
        assert failure.expectation.startswith("expect_")
        assert failure.expected and failure.observed
    json.dumps(result.summary())
    json.dumps(result.raw)


def test_failure_reports_read_well(contract: DataContract, frame: pd.DataFrame) -> None:
    renamed = validate_frame(frame.rename(columns={"price": "price_eur"}), contract, partition=DAY)
    columns = only(renamed, "columns")
    assert columns.expectation == "expect_table_columns_to_match_set"
    assert columns.observed == "missing: ['price']; unexpected: ['price_eur']"
    assert only(renamed, "range", "price").observed == "not evaluated: column 'price' is missing"

    negative = validate_frame(_set(frame.copy(), "price", [3, 10], [-3.5, -1.0]), contract, partition=DAY)
    price = only(negative, "range", "price")
    assert price.expectation == "expect_column_values_to_be_between"
    assert price.expected == "between 0.01 and 1000"
    assert price.observed == "2 of 600 rows (0.3 %) outside; first values: [-3.5, -1.0]"
    assert price.message() == (
        "[hard] price: range (expect_column_values_to_be_between) expected between 0.01 and 1000; "
        "observed 2 of 600 rows (0.3 %) outside; first values: [-3.5, -1.0]"
    )
    summary = negative.summary()
    assert summary["success"] is False
    assert summary["hard_failures"] == 1
    assert summary["failed"][0]["observed"] == price.observed

    as_string = validate_frame(frame.assign(pages_viewed=frame["pages_viewed"].astype(str)), contract)
    assert only(as_string, "type", "pages_viewed").observed.startswith("dtype object; 600 of 600 rows")
    mixed = validate_frame(_set(frame.astype({"country": object}), "country", [0], 44), contract)
    assert (
        only(mixed, "type", "country").observed
        == "dtype object; 1 of 600 rows (0.2 %) of another type; first values: [44]"
    )
    as_float = validate_frame(frame.assign(pages_viewed=frame["pages_viewed"] * 1.0), contract)
    assert only(as_float, "type", "pages_viewed").observed == "dtype float64"

    zero = validate_frame(frame.assign(purchased=0), contract)
    assert only(zero, "label_positive_rate", "purchased").observed == "positive rate 0"
    few = validate_frame(frame.head(100), contract)
    assert only(few, "row_count").observed == "100 rows"
    assert only(few, "row_count").expected == "between 500 and 100000 rows"


def test_rules_override_changes_severity(frame: pd.DataFrame) -> None:
    data = yarnit_data()
    data["rules"].append({"expectation": "row_count", "severity": "soft"})
    contract = parse_contract(data)
    result = validate_frame(frame.head(100), contract, partition=DAY)
    assert result.success
    assert failed(result) == {("row_count", None, "soft")}
    assert result.soft_failures and not result.hard_failures


def test_serving_subset_passes_without_target(contract: DataContract, frame: pd.DataFrame) -> None:
    serving = frame.drop(columns=["purchased"])
    result = validate_frame(serving, contract, partition=DAY, serving=True)
    assert result.success, result.messages()
    # The same batch checked as training data misses its label.
    training = validate_frame(serving, contract, partition=DAY)
    assert not training.success
    assert only(training, "columns").observed == "missing: ['purchased']"
    # A serving batch may still carry its label (labels arrive with the data here); it is not checked,
    # so a day whose labels are broken can still be scored.
    labelled = validate_frame(frame.assign(purchased=0), contract, partition=DAY, serving=True)
    assert labelled.success, labelled.messages()
    assert not validate_frame(frame.assign(purchased=0), contract, partition=DAY).success
    # Any other extra column is still a schema break.
    extra = validate_frame(serving.assign(coupon="X"), contract, partition=DAY, serving=True)
    assert only(extra, "columns").observed == "unexpected: ['coupon']"


def test_validation_is_fast(contract: DataContract) -> None:
    big = make_frame(3000)
    started = time.perf_counter()
    result = validate_frame(big, contract, partition=DAY)
    elapsed = time.perf_counter() - started
    assert result.success, result.messages()
    assert elapsed < 10.0, f"one validation of 3000 rows took {elapsed:.2f} s"


def test_compound_key_and_minimal_contract() -> None:
    contract = parse_contract(
        {
            "version": 1,
            "key": ["store", "day"],
            "columns": {"store": {"type": "string"}, "day": {"type": "int"}, "sales": {"type": "float"}},
        },
        source="mini.yaml",
    )
    df = pd.DataFrame({"store": ["a", "a", "b"], "day": [1, 2, 1], "sales": [1.0, 2.0, 3.0]})
    assert validate_frame(df, contract).success
    duplicated = validate_frame(df.assign(day=1), contract)
    assert failed(duplicated) == {("key_unique", None, "hard")}
    assert only(duplicated, "key_unique").expected == "unique key (store, day)"


# ------------------------------------------------------------------- volume, PII, cross-column


def _rules(suite: Any) -> dict[tuple[str, str | None], Any]:
    return {(e.meta[META_KEY]["rule"], e.meta[META_KEY]["column"]): e for e in suite.expectations if e.meta}


def test_volume_rule_follows_the_trailing_mean(contract: DataContract, frame: pd.DataFrame) -> None:
    # Too little history: the rule is left out rather than judged on one or two days.
    assert ("volume", None) not in _rules(build_suite(contract, history=[1000, 1000]))
    volume = _rules(build_suite(contract, history=[1000, 2000, 1000, 2000]))[("volume", None)]
    assert (volume.min_value, volume.max_value) == (750, 3000)  # mean 1500 of the last 4 -> x0.5 .. x2
    last7 = _rules(build_suite(contract, history=[10**6] + [1000] * 7))[("volume", None)]
    assert (last7.min_value, last7.max_value) == (500, 2000), "only the newest `history` partitions count"

    dip = validate_frame(frame, contract, partition=DAY, history=[2000, 2000, 2000])
    assert dip.success, "a volume dip only warns"
    volume_failure = only(dip, "volume")
    assert volume_failure.severity == "soft"
    assert volume_failure.observed == "600 rows (0.30 x the trailing mean)"
    assert volume_failure.expected.startswith("between 1000 and 4000 rows")
    assert validate_frame(frame, contract, partition=DAY, history=[600, 600, 600]).failures == []


def test_forbidden_columns_match_any_letter_case(contract: DataContract, frame: pd.DataFrame) -> None:
    result = validate_frame(frame.assign(Email="x@example.org"), contract, partition=DAY)
    assert not result.success
    assert only(result, "forbidden_columns").observed == "present: ['Email']"
    assert failed(result) == {("columns", None, "hard"), ("forbidden_columns", None, "hard")}


def test_compare_rules_and_their_operators(frame: pd.DataFrame) -> None:
    contract = parse_contract(
        {
            "version": 1,
            "columns": {"a": {"type": "float"}, "b": {"type": "float", "nullable": True}},
            "compare": [
                {"left": "a", "op": "<", "right": "b"},
                {"left": "b", "op": ">=", "right": "a", "severity": "soft"},
            ],
        }
    )
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [2.0, 2.0, np.nan, 5.0]})
    result = validate_frame(df, contract)
    # Row 1 has a == b: it breaks a < b (hard) but not b >= a; row 2 is skipped (b is null).
    assert failed(result) == {("compare", "a", "hard")}
    assert only(result, "compare", "a").observed == "1 of 4 rows (25.0 %) breaking the rule; first values: [[2.0, 2.0]]"
    assert only(result, "compare", "a").expected == "a < b on every row where both are set"
    swapped = validate_frame(df.assign(b=[0.0, 2.0, np.nan, 5.0]), contract)
    assert failed(swapped) == {("compare", "a", "hard"), ("compare", "b", "soft")}


def test_statistics_catch_a_unit_change_that_single_values_miss(contract: DataContract, frame: pd.DataFrame) -> None:
    minutes = validate_frame(frame.assign(session_duration_s=frame["session_duration_s"] / 60), contract, partition=DAY)
    assert minutes.success and failed(minutes) == {("median", "session_duration_s", "soft")}
    assert only(minutes, "median", "session_duration_s").observed.startswith("median 3.")


def test_failed_row_rules_quote_sample_rows(contract: DataContract, frame: pd.DataFrame) -> None:
    result = validate_frame(_set(frame.copy(), "price", [3, 10], [-3.5, -1.0]), contract, partition=DAY)
    price = only(result, "range", "price")
    assert price.unexpected_count == 2 and price.values == [-3.5, -1.0]
    assert [row["session_id"] for row in price.rows] == [frame["session_id"].iloc[3], frame["session_id"].iloc[10]]
    assert price.rows[0]["event_ts"].startswith(f"{DAY:%Y-%m-%d}T")
    json.dumps(price.to_dict(rows=True))
    assert "rows" not in price.to_dict(), "the compact form (XCom, manifest) leaves the rows out"
    assert validate_frame(frame.head(100), contract, sample_rows=0).failures[0].rows == []


def test_summary_limit(contract: DataContract, frame: pd.DataFrame) -> None:
    result = validate_frame(frame.drop(columns=["price", "country", "device"]), contract, partition=DAY)
    summary = result.summary(limit=3)
    assert len(summary["failed"]) == 3 and summary["more"] == len(result.failures) - 3
    assert "more" not in result.summary()


def test_the_same_data_give_the_same_stored_result(frame: pd.DataFrame, contract: DataContract) -> None:
    """validation.json is stored with the partition and digested in its manifest: two validations of the same data
    (a retry, a pod and the local launcher) must write the same bytes (GX's batch load time differed)."""
    first = validate_frame(frame, contract, partition=DAY).raw
    time.sleep(0.01)  # a later wall clock: the batch load time GX records would differ
    second = validate_frame(frame, contract, partition=DAY).raw
    assert json.dumps(first, default=str) == json.dumps(second, default=str)
