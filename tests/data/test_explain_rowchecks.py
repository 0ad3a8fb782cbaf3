"""`mlcycle explain`'s per-row contract checks judge each row as Great Expectations judges it in a partition.

explain evaluates the contract's per-row rules itself (GX costs ~11 s to import); here both judge the same
mutated YarnIt day: for every per-row rule, the rows explain finds failing are as many as the unexpected rows
GX counts (none where GX passed). Dataset-level rules are left to GX and named as such by explain.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pandas as pd
import pytest

from mlcycle.config import get_usecase
from mlcycle.contracts.gx_runner import validate_frame
from mlcycle.explain.command import python_row
from mlcycle.explain.rowchecks import DATASET_RULES, dataset_checks, row_checks
from mlcycle.synthetic.yarnit import generate_day

DAY = dt.date(2026, 9, 10)


def _mutated() -> pd.DataFrame:
    df = generate_day(DAY, base_rows=600).reset_index(drop=True)
    df.loc[[0, 1, 2], "price"] = [-1.0, 0.0, 5000.0]  # range (0.0 < min 0.01)
    df.loc[[3, 4], "country"] = "XX"  # allowed
    df.loc[[5], "customer_id"] = "customer-5"  # regex
    df.loc[[6, 7], "event_ts"] = pd.Timestamp(DAY + dt.timedelta(days=1), tz="UTC")  # first instant of the next day
    returning = df.index[df["days_since_last_purchase"].notna()][10:13]
    df.loc[returning, "days_since_last_purchase"] = df.loc[returning, "customer_tenure_days"] + 1.0  # compare
    df.loc[[20, 21, 22], "language"] = None  # not_null (no nulls allowed)
    df.loc[[23], "session_duration_s"] = 90000.0  # range, soft column
    df.loc[[24], "purchased"] = 2  # allowed, on the label
    return df


@pytest.mark.parametrize("serving", [False, True])
def test_every_per_row_rule_fails_on_exactly_the_rows_gx_counts(serving: bool) -> None:
    contract = get_usecase("yarnit").data_contract
    df = _mutated()
    gx = validate_frame(df, contract, partition=DAY, serving=serving)
    counted = {(f.rule, f.column): f.unexpected_count for f in gx.failures if f.unexpected_count is not None}
    mine: Counter[tuple[str, str]] = Counter()
    judged: set[tuple[str, str]] = set()
    for index in range(len(df)):
        for check in row_checks(contract, python_row(df.iloc[[index]]), DAY, serving=serving):
            judged.add((check.rule, check.column))
            if check.outcome == "failed":
                mine[(check.rule, check.column)] += 1
    # The not_null rule of a column that may hold some nulls is the partition's to judge (a fraction).
    per_row = {key for key in judged if not (key[0] == "not_null" and contract.columns[key[1]].null_fraction_allowed)}
    assert {key: counted.get(key, 0) for key in per_row} == {key: mine[key] for key in per_row}
    expected_failures = {
        ("range", "price"): 3,
        ("allowed", "country"): 2,
        ("regex", "customer_id"): 1,
        ("timestamp_in_partition", "event_ts"): 2,
        ("compare", "customer_tenure_days"): 3,
        ("not_null", "language"): 3,
        ("range", "session_duration_s"): 1,
    }
    if not serving:
        expected_failures[("allowed", "purchased")] = 1
    assert dict(mine) == expected_failures, "each mutation must be seen, or this test proves nothing"
    if serving:
        assert not any(column == "purchased" for _, column in judged), "no rule on the label when serving"
    # What one row cannot tell is named, and judged by GX alone.
    assert not {rule for rule, _ in judged} & set(DATASET_RULES) - {"columns"}
    assert {c["rule"] for c in dataset_checks(contract, serving=serving)} >= {"key_unique", "mean", "row_count"}
