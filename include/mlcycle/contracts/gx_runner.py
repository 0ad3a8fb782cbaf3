"""Validate a pandas DataFrame against a data contract with a real GX suite.

Validation runs in an *ephemeral* GX context (no GX project folder, no stores on disk, no Data Docs):
the contract is compiled (:func:`mlcycle.contracts.compile.build_suite`), run, and every expectation's
outcome described (:func:`mlcycle.contracts.results.describe_check`) into a
:class:`~mlcycle.contracts.results.ContractResult`.

Speed (see ``python -m mlcycle_dev.benchmarks.validate``):

- the suite runs once with ``result_format`` BASIC (counts and the first few offending values, no
  index lists, no unexpected rows). Only when something failed does a second, small pass re-run the
  failed row-level expectations with ``include_unexpected_rows`` to quote a sample of offending rows;
- string columns whose values are all ``str`` are handed to GX as Arrow-backed strings. For an object
  column GX checks the type of every value with a Python ``isinstance`` call and finds nulls with a
  per-value scan, once per expectation; an Arrow string column is strings by construction (its type
  check reads the dtype) and keeps a null bitmap. A column that holds anything else stays as it is,
  so GX reports the offending values;
- GX's batch fingerprint is switched off (:mod:`mlcycle.contracts.gx_patch`).

Step code only: this module imports great_expectations and pandas at module level.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import Any

import great_expectations as gx
import pandas as pd
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from mlcycle.contracts.compile import build_suite
from mlcycle.contracts.gx_patch import disable_batch_fingerprint
from mlcycle.contracts.results import FIRST_VALUES, META_KEY, ContractResult, FailedExpectation, describe_check
from mlcycle.schema import DataContract

__all__ = ["arrow_strings", "validate_frame"]

_RESULT_FORMAT: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": FIRST_VALUES}
_ARROW_STRING = pd.StringDtype("pyarrow")


def _batch_definition() -> Any:
    """A whole-DataFrame batch definition in a fresh ephemeral context (about 15 ms)."""
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),  # no Data Docs
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        analytics_enabled=False,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    source = context.data_sources.add_pandas(name="mlcycle")
    asset = source.add_dataframe_asset(name="partition")
    return asset.add_batch_definition_whole_dataframe(name="whole")


def _rows_json(rows: Any) -> list[dict[str, Any]]:
    """A sample of rows as JSON-able records (timestamps in ISO form); GX on Spark gives them as a list of dicts."""
    if isinstance(rows, list) and rows and all(isinstance(row, dict) for row in rows):
        rows = pd.DataFrame(rows)
    if not isinstance(rows, pd.DataFrame) or rows.empty:
        return []
    loaded: list[dict[str, Any]] = json.loads(
        rows.to_json(orient="records", date_format="iso", date_unit="us", default_handler=str)
    )
    return loaded


def _order(res: dict[str, Any]) -> int:
    """An expectation result's place in the suite (its ``meta`` order; -1 if it has none)."""
    meta = ((res.get("expectation_config") or {}).get("meta") or {}).get(META_KEY) or {}
    return int(meta.get("order", -1))


def _run_again(
    batch: Any, suite: gx.ExpectationSuite, orders: Sequence[int], name: str, result_format: dict[str, Any]
) -> dict[int, Any]:
    """Each of ``orders``' expectations run again with ``result_format``: its GX result object, by suite order."""
    again = gx.ExpectationSuite(name=f"{suite.name}-{name}", expectations=[suite.expectations[o] for o in orders])
    results = batch.validate(again, result_format=result_format).results
    return {int(((r.expectation_config.meta or {}).get(META_KEY) or {}).get("order", -1)): r for r in results}


def _sample_rows(
    batch: Any, suite: gx.ExpectationSuite, failed: dict[int, FailedExpectation], sample_rows: int
) -> None:
    """Fill ``rows`` of failed row-level expectations with a sample of offending rows (second pass).

    Runs only the failed row-level expectations again, now with ``include_unexpected_rows``: the
    clean path never pays for it.
    """
    orders = [order for order, f in failed.items() if f.unexpected_count]
    if not orders:
        return
    result_format = {
        "result_format": "BASIC",
        "partial_unexpected_count": sample_rows,
        "include_unexpected_rows": True,
    }
    for order, res in _run_again(batch, suite, orders, "rows", result_format).items():
        if order in failed and isinstance(res.result, dict):
            failed[order].rows = _rows_json(res.result.get("unexpected_rows"))[:sample_rows]


def arrow_strings(df: pd.DataFrame, contract: DataContract) -> pd.DataFrame:
    """``df`` with its contract string columns as Arrow-backed strings where every value is a str.

    Returns ``df`` itself when nothing changes, else a shallow copy: the caller's frame is untouched.
    """
    out: pd.DataFrame | None = None
    for name, spec in contract.columns.items():
        if spec.type != "string" or name not in df.columns or df[name].dtype != object:
            continue
        column = df[name]
        if pd.api.types.infer_dtype(column, skipna=True) not in ("string", "empty"):
            continue  # mixed values: GX checks them one by one and names the odd ones
        if out is None:
            out = df.copy(deep=False)
        out[name] = column.astype(_ARROW_STRING)
    return df if out is None else out


def validate_frame(
    df: pd.DataFrame,
    contract: DataContract,
    *,
    partition: datetime.date | None = None,
    serving: bool = False,
    history: Sequence[int] = (),
    sample_rows: int = FIRST_VALUES,
) -> ContractResult:
    """Validate ``df`` against ``contract`` with a real GX suite in an ephemeral context.

    Never raises for bad data: every failed or unevaluable expectation becomes a
    :class:`FailedExpectation`, sorted into hard and soft failures. ``success`` is False if and only
    if a hard expectation failed. See :func:`build_suite` for ``partition``, ``serving`` and
    ``history``. ``sample_rows`` offending rows are quoted per failed row-level rule (0: none).
    """
    suite = build_suite(contract, partition=partition, serving=serving, history=history, present=list(df.columns))
    df = arrow_strings(df, contract)
    disable_batch_fingerprint()  # before the batch exists: GX fingerprints it as it builds it
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": df})
    return run_suite(batch, suite, df, sample_rows)


def _first_values_later(batch: Any, suite: gx.ExpectationSuite, raw: dict[str, Any]) -> None:
    """Replace, in ``raw``, the result of every row-level rule that found offending rows by a BASIC one that
    quotes their first values (passing rules with ``mostly`` included): what one BASIC pass would have given."""
    results = raw.get("results", [])
    found = {
        _order(res): i
        for i, res in enumerate(results)
        if not (res.get("exception_info") or {}).get("raised_exception")
        and isinstance(res.get("result"), dict)
        and (res["result"].get("unexpected_count") or 0) > 0
    }
    if found:
        for order, res in _run_again(batch, suite, sorted(found), "values", _RESULT_FORMAT).items():
            results[found[order]]["result"] = res.to_json_dict().get("result")


def run_suite(batch: Any, suite: Any, columns: Any, sample_rows: int, *, counts_first: bool = False) -> ContractResult:
    """Validate a GX batch (pandas or Spark) against the compiled suite; `columns` is what `describe_check`
    reads the columns' types from (the frame, or the Spark engine's schema view).

    ``counts_first`` (Spark): the first pass asks for counts only, then the rules that found offending rows are
    run again to quote their first values. On Spark each rule's first values are a job of their own (a filter and
    a limit over the whole frame, even when nothing matches) while the counts of every rule are one aggregate:
    55 jobs became 16 on a YarnIt day. On pandas the values come from the mask the count already computed.
    """
    first_pass = {**_RESULT_FORMAT, "partial_unexpected_count": 0} if counts_first else _RESULT_FORMAT
    result = batch.validate(suite, result_format=first_pass)
    raw: dict[str, Any] = result.to_json_dict()
    if counts_first:
        _first_values_later(batch, suite, raw)
    # The wall-clock time GX loaded the batch: the only field that differs between two validations of the same
    # data, so validation.json (stored with the partition) would never be byte-reproducible with it. The partition's
    # manifest records when it was committed.
    raw.get("meta", {}).get("batch_markers", {}).pop("ge_load_time", None)
    checks = sorted((describe_check(res, columns) for res in raw.get("results", [])), key=lambda item: item[0])
    failed = {order: check for order, success, check in checks if not success}
    if failed and sample_rows > 0:
        _sample_rows(batch, suite, failed, sample_rows)
    hard = [f for f in failed.values() if f.severity == "hard"]
    soft = [f for f in failed.values() if f.severity != "hard"]
    return ContractResult(
        success=not hard,
        evaluated=len(raw.get("results", [])),
        hard_failures=hard,
        soft_failures=soft,
        raw=raw,
        checks=[{**check.to_dict(), "success": success} for _, success, check in checks],
    )
