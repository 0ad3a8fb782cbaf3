"""Split strategies: time-based by default, stratified by option; both disjoint on the entity key."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from mlcycle.config import Split, get_usecase
from mlcycle.steps.features import split_of, stratified_splits
from mlcycle.synthetic.yarnit import generate_day


@pytest.fixture(scope="module")
def pooled() -> pd.DataFrame:
    days = [dt.date(2026, 9, 1) + dt.timedelta(days=i) for i in range(7)]
    return pd.concat([generate_day(d, base_rows=800) for d in days], ignore_index=True)


def test_stratified_split_is_disjoint_proportional_and_stratified(pooled: pd.DataFrame) -> None:
    base = get_usecase("yarnit")
    usecase = base.model_copy(update={"split": Split(strategy="stratified", window_days=10, valid_days=2, test_days=2)})
    splits = stratified_splits(usecase, pooled)
    keys = {name: set(table["session_id"]) for name, table in splits.items()}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["valid"] and not keys["valid"] & keys["test"]
    assert sum(len(t) for t in splits.values()) == len(pooled)
    assert len(splits["test"]) / len(pooled) == pytest.approx(0.2, abs=0.01)
    rate = pooled["purchased"].mean()
    for table in splits.values():
        assert table["purchased"].mean() == pytest.approx(rate, abs=0.01)
    again = stratified_splits(usecase, pooled.sample(frac=1.0, random_state=3))
    assert set(again["test"]["session_id"]) == keys["test"], "assignment depends on the key, not row order"


def test_time_split_puts_the_newest_days_in_test() -> None:
    usecase = get_usecase("yarnit")
    days = [dt.date(2026, 9, 1) + dt.timedelta(days=i) for i in range(8)]
    assert [split_of(d, days, usecase) for d in days] == ["train"] * 4 + ["valid"] * 2 + ["test"] * 2


def test_days_are_joined_in_time_order_with_their_types_promoted_as_pandas_did() -> None:
    import pyarrow as pa

    from mlcycle.steps.features import _concat, _in_time_order

    ts = pd.to_datetime(["2026-09-01 10:00", "2026-09-01 09:00", "2026-09-02 08:00"], utc=True)
    first = pa.Table.from_pandas(pd.DataFrame({"t": ts[:2], "n": [1, 2], "note": [None, None]}))
    second = pa.Table.from_pandas(pd.DataFrame({"t": ts[2:], "n": [float("nan")], "note": ["late"]}))
    joined = _concat([first, second])
    assert joined.schema.metadata is None, "no day's pandas index metadata"
    assert str(joined.schema.field("n").type) == "double" and str(joined.schema.field("note").type) == "string"
    ordered = _in_time_order(joined, "t").to_pandas()
    assert ordered["n"].tolist()[:2] == [2.0, 1.0] and ordered["note"].tolist()[-1] == "late"
    already = _in_time_order(ordered_table := pa.Table.from_pandas(ordered, preserve_index=False), "t")
    assert already is ordered_table, "an ordered split is written as read (no second copy)"
    ties = pa.table({"t": pa.array([2, 1, 1, 2]), "day": pa.array([1, 1, 2, 2])})
    assert _in_time_order(ties, "t").column("day").to_pylist() == [1, 2, 1, 2], "a stable sort: ties keep day order"
