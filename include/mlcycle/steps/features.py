"""features: the validated partitions of the training window -> train / valid / test splits.

The split is by time (the latest days are test), so the model is always judged on data newer than
what it learned from, and the test split of a partition is frozen: every candidate and the champion
are compared on exactly the same rows.

Every day used must have been validated from the raw partition now on record (its validated manifest's
``raw_digest``): a day re-delivered since its validation is refused (REJECTED, naming the day and both digests)
until `validate` has passed the new delivery.

Only days validated with the ``training`` profile count: a day that passed only the serving profile
(e.g. scored on a day whose labels were broken) is not training data until `validate` (without
``--serving``) has passed it. Forbidden (PII) columns cannot get here: a partition that has one is
rejected by the contract, and only the model's columns are read.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlcycle.config import UseCase
from mlcycle.contracts.profiles import TRAINING, profile_of
from mlcycle.specs.names import Step
from mlcycle.specs.options import Options
from mlcycle.specs.results import FeaturesResult
from mlcycle.steps.base import NothingToDo, Rejected, StepContext
from mlcycle.storage.layout import DATA_FILE, SPLITS, SUCCESS, Dataset, split_file

log = logging.getLogger(__name__)


def model_columns(usecase: UseCase) -> list[str]:
    """Columns a features table keeps: key, timestamp, model features, slices, fairness group, target."""
    group = usecase.thresholds.gate.fairness_group
    wanted = [usecase.key, usecase.timestamp, *[c.name for c in usecase.features], *usecase.slices]
    return list(dict.fromkeys([*wanted, *([group] if group else []), usecase.target.name]))


def stratified_splits(usecase: UseCase, table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split by a stable hash of the entity key, within each label class (keys never straddle splits)."""
    key, target, split = usecase.key, usecase.target.name, usecase.split
    per_key = table.groupby(key, sort=False)[target].max()
    rank = pd.Series(pd.util.hash_pandas_object(per_key.index.to_series(), index=False).to_numpy(), index=per_key.index)
    assignment = pd.Series("train", index=per_key.index)
    test_share, valid_share = split.test_days / split.window_days, split.valid_days / split.window_days
    for _, keys in per_key.groupby(per_key):
        ordered = rank.loc[keys.index].sort_values().index
        n_test, n_valid = round(len(ordered) * test_share), round(len(ordered) * valid_share)
        assignment.loc[ordered[:n_test]] = "test"
        assignment.loc[ordered[n_test : n_test + n_valid]] = "valid"
    which = table[key].map(assignment)
    return {name: table[which == name] for name in SPLITS}


def _concat(tables: list[pa.Table]) -> pa.Table:
    """The days' tables as one, without pandas' index metadata (each day's file records its own row range).

    A column all null on one day is typed null there, and integers with a null are written as floats by pandas:
    "permissive" promotes those as `pd.concat` did; a real type conflict (text against numbers) still fails.
    """
    table = pa.concat_tables(tables, promote_options="permissive")
    return table.replace_schema_metadata(None)


def _in_time_order(table: pa.Table, column: str) -> pa.Table:
    """``table`` stably sorted by ``column`` (ties keep day order); ``table`` itself when it already is: days come
    in order, each usually sorted by its events, and sorting is a second copy of the split (1.5 of the step's
    2.5 GB at 1M rows a day)."""
    values = table.column(column)
    if values.null_count == 0 and (table.num_rows < 2 or pc.all(pc.greater_equal(values[1:], values[:-1])).as_py()):
        return table
    return table.sort_by(column)


def split_of(day: dt.date, days: list[dt.date], usecase: UseCase) -> str:
    """Which split a day falls in, counting back from the newest available day."""
    rank = len(days) - 1 - days.index(day)
    if rank < usecase.split.test_days:
        return "test"
    if rank < usecase.split.test_days + usecase.split.valid_days:
        return "valid"
    return "train"


def training_days(ctx: StepContext, window: list[dt.date]) -> tuple[list[dt.date], list[str]]:
    """(days of the window validated with the training profile, days validated only as serving)."""
    days, serving_only = [], []
    for day in window:
        manifest = ctx.storage.manifest(ctx.uri(Dataset.VALIDATED, day))
        if manifest is None:
            continue
        if profile_of(manifest) == TRAINING:
            days.append(day)
        else:
            serving_only.append(day.isoformat())
    return days, serving_only


def stale_days(ctx: StepContext, days: list[dt.date]) -> list[str]:
    """The days whose validated partition was not validated from the raw partition now on record, each with why
    (raw re-delivered after the validation, or gone)."""
    stale = []
    for day in days:
        validated = ctx.storage.manifest(ctx.uri(Dataset.VALIDATED, day)) or {}
        raw = ctx.storage.manifest(ctx.uri(Dataset.RAW, day))
        validated_from = validated.get("raw_digest")
        if raw is None:
            stale.append(f"{day}: validated from raw sha256 {validated_from}, but raw/ holds no partition")
        elif validated_from != raw.get("digest"):
            stale.append(f"{day}: validated from raw sha256 {validated_from}, raw now holds sha256 {raw.get('digest')}")
    return stale


def main(ctx: StepContext, options: Options) -> FeaturesResult:
    usecase = ctx.usecase
    window = ctx.window(usecase.split.window_days)
    days, serving_only = training_days(ctx, window)
    stale = stale_days(ctx, days)
    if stale:
        first = stale[0].split(":", 1)[0]
        raise Rejected(
            f"validated data does not match the raw data it came from ({'; '.join(stale)}); validate those days "
            f"again, e.g. mlcycle validate --usecase {usecase.name} --partition {first}",
            stale=stale,
        )
    missing = [d.isoformat() for d in window if d not in days]
    if len(days) < usecase.split.min_partitions:
        raise NothingToDo(
            f"{len(days)} partitions validated for training in the window {window[0]}..{window[-1]}, "
            f"need split.min_partitions={usecase.split.min_partitions}",
            missing=missing,
            serving_only=serving_only,
        )
    columns = model_columns(usecase)
    tables: dict[str, list[pa.Table]] = {s: [] for s in SPLITS}
    digests: dict[str, list[str]] = {s: [] for s in SPLITS}
    # The sha256 of each day's validated data file as read: which exact validated partition a model learnt from.
    validated_digests: dict[str, str] = {}
    stratified = usecase.split.strategy == "stratified"
    for day in days:
        uri = ctx.uri(Dataset.VALIDATED, day)
        with ctx.storage.local_copy(uri) as folder:
            # The manifest of the very version read (a commit meanwhile cannot pair its digests with other data).
            manifest = json.loads((folder / SUCCESS).read_text())
            # Arrow, not pandas: a window's text columns take a few bytes a value instead of a Python string's
            # ~60 (the step held 1.9 GB at 250k rows a day); the split files are written from Arrow as well.
            table = pq.read_table(folder / DATA_FILE, columns=columns)
        validated_digests[day.isoformat()] = str(manifest.get("files", {}).get(DATA_FILE, {}).get("sha256", ""))
        for split in SPLITS if stratified else (split_of(day, days, usecase),):
            digests[split].append(manifest.get("raw_digest", ""))
        tables["train" if stratified else split_of(day, days, usecase)].append(table)
    if stratified:
        pooled = stratified_splits(usecase, _concat(tables["train"]).to_pandas())
        tables = {name: [pa.Table.from_pandas(frame, preserve_index=False)] for name, frame in pooled.items()}

    target = ctx.uri(Dataset.FEATURES)
    manifest = {
        "step": "features",
        "window": [window[0].isoformat(), window[-1].isoformat()],
        "strategy": usecase.split.strategy,
        "days": {s: [d.isoformat() for d in days if stratified or split_of(d, days, usecase) == s] for s in SPLITS},
        "missing": missing,
        "serving_only": serving_only,
        "input_digests": digests,
        "validated_digests": validated_digests,
        "airflow": ctx.produced_by(),
    }
    rows = {}
    with ctx.storage.writer(target, manifest) as staging:
        for split in SPLITS:
            table = _in_time_order(_concat(tables.pop(split)), usecase.timestamp)
            pq.write_table(table, staging / split_file(split))
            rows[split] = table.num_rows
            del table
    log.info("features %s: %s rows per split, missing days %s", target, rows, missing)
    return FeaturesResult.of(
        Step.FEATURES,
        usecase.name,
        ctx.partition.isoformat(),
        outputs={"features": target},
        metrics={"rows": rows, "missing_days": missing, "serving_only_days": serving_only},
        inputs={"validated": [ctx.uri(Dataset.VALIDATED, day) for day in days]},
    )
