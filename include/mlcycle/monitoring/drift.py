"""Data drift between a use case's reference data and one day's data, with Evidently 0.7.

The ``monitor`` step calls :func:`run_drift_report` with the champion model's training data as the
reference and one day's data as the current frame, stores the result with :func:`save_report`, and
uses :class:`DriftSummary` (``dataset_drift``) to decide whether to request retraining.

Only Evidently's new (0.7) API is used -- ``evidently.Report`` / ``Dataset`` / ``DataDefinition`` and
``evidently.presets.DataDriftPreset`` -- never ``evidently.legacy``.

Why the methods are always set explicitly: Evidently picks a drift method per column by data size.
Up to 1000 reference rows it uses Kolmogorov-Smirnov (numeric) and chi-squared (categorical), both
p-values; above that it switches to Wasserstein distance and Jensen-Shannon distance, whose scores and
thresholds mean something else. Our reference is the training set (tens of thousands of rows), so
relying on the default would silently change the statistics as data grows. ``DataDriftPreset`` takes
``num_method`` / ``cat_method`` (and one ``threshold`` for all columns); it passes the resolved method
and threshold to one ``ValueDrift`` metric per column, which is where the per-column results are read.
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Annotations only: importing this module must stay cheap (Evidently itself takes seconds to
    # import, so it is imported inside run_drift_report, where it is needed).
    import pandas as pd

log = logging.getLogger(__name__)

NUMERIC = "numeric"
CATEGORICAL = "categorical"

# How the ValueDrift metric is named in ``Snapshot.dict()["metrics"][i]["config"]["type"]``.
_VALUE_DRIFT_TYPE = "evidently:metric_v2:ValueDrift"


@dataclass(frozen=True)
class ColumnDrift:
    """Drift verdict for one column.

    ``score`` is what Evidently reports for ``stattest``: a p-value for tests such as ``ks`` and
    ``chisquare`` (drift when below ``threshold``) or a distance for methods such as ``psi`` and
    ``wasserstein`` (drift when at or above ``threshold``). It is NaN when the column had no non-null
    values on one side, so no test could run (see :func:`run_drift_report`).
    """

    column: str
    kind: str  # "numeric" | "categorical"
    stattest: str  # e.g. "ks", "chisquare"
    score: float
    threshold: float
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; a NaN score becomes ``None`` because NaN is not valid JSON."""
        return {
            "column": self.column,
            "kind": self.kind,
            "stattest": self.stattest,
            "score": None if math.isnan(self.score) else self.score,
            "threshold": self.threshold,
            "drifted": self.drifted,
        }


@dataclass(frozen=True)
class DriftSummary:
    """Per-column drift and the dataset-level verdict that decides whether to request retraining."""

    columns: list[ColumnDrift]
    drift_share: float  # drifted columns / columns
    drift_share_threshold: float
    dataset_drift: bool  # drift_share >= drift_share_threshold
    n_reference: int
    n_current: int

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the columns flagged as drifted, in report order."""
        return [c.column for c in self.columns if c.drifted]

    def to_dict(self) -> dict[str, Any]:
        """Compact, JSON-able form for XCom and logs."""
        return {
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "drift_share_threshold": self.drift_share_threshold,
            "drifted_columns": self.drifted_columns,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "columns": [c.to_dict() for c in self.columns],
        }


def _check_inputs(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    threshold: float,
    drift_share_threshold: float,
) -> None:
    """Fail early with a clear message instead of deep inside Evidently."""
    columns = numeric + categorical
    if not columns:
        raise ValueError("no columns to check for drift: numeric and categorical are both empty")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise ValueError(f"columns listed more than once (or as both numeric and categorical): {duplicated}")
    missing = {
        name: [c for c in columns if c not in frame.columns]
        for name, frame in (("reference", reference), ("current", current))
    }
    if missing["reference"] or missing["current"]:
        raise ValueError(
            "columns missing for drift check: " + "; ".join(f"{name}: {cols}" for name, cols in missing.items() if cols)
        )
    for name, frame in (("reference", reference), ("current", current)):
        if len(frame) == 0:
            raise ValueError(f"{name} data has no rows")
    if not 0.0 <= drift_share_threshold <= 1.0:
        raise ValueError(f"drift_share_threshold must be within [0, 1], got {drift_share_threshold}")
    if threshold < 0.0:
        raise ValueError(f"threshold must not be negative, got {threshold}")


def _is_empty(frame: pd.DataFrame, column: str, kind: str) -> bool:
    """True when the column has no usable values.

    Evidently drops nulls (and, for numeric columns, +/-inf) before testing and raises on a column left
    empty, so such columns are kept out of the report and judged here instead.
    """
    values = frame[column]
    unusable = values.isna()
    if kind == NUMERIC:
        # Non-numeric values are left for Evidently to reject with its own message.
        unusable |= values.isin([math.inf, -math.inf])
    return bool(unusable.all())


def run_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    numeric_method: str = "ks",
    categorical_method: str = "chisquare",
    threshold: float = 0.05,
    drift_share_threshold: float = 0.3,
) -> tuple[DriftSummary, Any]:
    """Compare ``current`` with ``reference`` column by column with an Evidently ``DataDriftPreset``.

    Args:
        reference: the champion model's training data.
        current: one day's data.
        numeric: numeric columns to check (other columns in the frames are ignored).
        categorical: categorical columns to check.
        numeric_method: Evidently stat test for numeric columns (``"ks"``, ``"wasserstein"``, ``"psi"``...).
        categorical_method: Evidently stat test for categorical columns (``"chisquare"``, ``"psi"``...).
        threshold: drift threshold for every column, read the way the method reads it: a p-value for
            p-value tests (drift when the p-value is below it), a distance for distance methods (drift
            when the distance is at or above it). Pick a matching value when choosing a distance method.
        drift_share_threshold: dataset drift when at least this share of the columns drifted.

    Nulls are dropped per column by Evidently. A column with no non-null values on exactly one side is
    counted as drifted (it vanished or appeared), one empty on both sides as not drifted; neither is
    sent to Evidently, which cannot test an empty column. Their score is NaN.

    Returns:
        ``(summary, snapshot)``: the compact summary and the Evidently ``Snapshot`` for :func:`save_report`.

    Raises:
        ValueError: a column is missing from either frame (all are named), is listed twice, a frame has
            no rows, no column has values on both sides, or a threshold is out of range. Evidently's own
            errors (e.g. ``StatTestNotFoundError`` for an unknown method, ``StatTestInvalidFeatureTypeError``
            for ``"ks"`` on a categorical column) pass through.
    """
    numeric = list(numeric)
    categorical = list(categorical)
    _check_inputs(reference, current, numeric, categorical, threshold, drift_share_threshold)

    kinds = {c: NUMERIC for c in numeric} | {c: CATEGORICAL for c in categorical}
    methods = {NUMERIC: numeric_method, CATEGORICAL: categorical_method}

    untestable: dict[str, ColumnDrift] = {}
    for column, kind in kinds.items():
        ref_empty = _is_empty(reference, column, kind)
        cur_empty = _is_empty(current, column, kind)
        if ref_empty or cur_empty:
            log.warning(
                "drift: column %r has no non-null values in %s; not tested, counted as %s",
                column,
                " and ".join(n for n, e in (("reference", ref_empty), ("current", cur_empty)) if e),
                "not drifted" if ref_empty and cur_empty else "drifted",
            )
            untestable[column] = ColumnDrift(
                column=column,
                kind=kind,
                stattest=methods[kind],
                score=math.nan,
                threshold=threshold,
                drifted=ref_empty != cur_empty,
            )
    testable = [c for c in kinds if c not in untestable]
    if not testable:
        # Evidently cannot build a report over zero columns, and "everything drifted" would request a
        # retrain on data that has nothing in it; this is a data problem, not drift.
        raise ValueError(f"no column has non-null values in both reference and current: {list(kinds)}")

    # Imported here, not at module level: Evidently takes seconds to import and only this step needs it.
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[c for c in testable if kinds[c] == NUMERIC],
        categorical_columns=[c for c in testable if kinds[c] == CATEGORICAL],
    )
    report = Report(
        [
            DataDriftPreset(
                columns=testable,
                num_method=numeric_method,
                cat_method=categorical_method,
                threshold=threshold,
                # Only used for Evidently's own HTML header; our verdict is computed below.
                drift_share=drift_share_threshold,
            )
        ],
        # ValueDrift attaches its drift verdict as a test result only when tests are included; that
        # verdict is read instead of re-deriving "below or above the threshold" for every method.
        include_tests=True,
    )
    # Only the checked columns go in: extra columns (ids, targets, timestamps) would otherwise be
    # typed and profiled by Evidently for nothing.
    snapshot = report.run(
        current_data=Dataset.from_pandas(current[testable], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[testable], data_definition=definition),
    )

    tested = _column_results(snapshot.dict(), {c: kinds[c] for c in testable})
    # Report order = the caller's order (numeric, then categorical).
    results = [tested[c] if c in tested else untestable[c] for c in kinds]
    n_drifted = sum(r.drifted for r in results)
    drift_share = n_drifted / len(results)
    summary = DriftSummary(
        columns=results,
        drift_share=drift_share,
        drift_share_threshold=drift_share_threshold,
        dataset_drift=drift_share >= drift_share_threshold,
        n_reference=len(reference),
        n_current=len(current),
    )
    log.info(
        "drift: %d/%d columns drifted (share %.3f, threshold %.3f) -> dataset_drift=%s %s",
        n_drifted,
        len(results),
        drift_share,
        drift_share_threshold,
        summary.dataset_drift,
        summary.drifted_columns,
    )
    return summary, snapshot


def _column_results(snapshot_dict: dict[str, Any], kinds: dict[str, str]) -> dict[str, ColumnDrift]:
    """Read the ``ValueDrift`` metrics and their test verdicts out of ``Snapshot.dict()``."""
    # Each ValueDrift test points at its metric by id ("metric_fingerprint" == the metric's "id").
    verdicts: dict[str, bool] = {}
    for test in snapshot_dict.get("tests", []):
        metric_id = test.get("metric_config", {}).get("metric_id")
        if metric_id is not None and test.get("status") in ("FAIL", "SUCCESS"):
            verdicts[metric_id] = test["status"] == "FAIL"

    results: dict[str, ColumnDrift] = {}
    for metric in snapshot_dict.get("metrics", []):
        config = metric.get("config", {})
        if config.get("type") != _VALUE_DRIFT_TYPE:
            continue
        column = config["column"]
        if column not in kinds:
            continue
        if metric["id"] not in verdicts:
            # Without Evidently's verdict we would have to guess the direction of the comparison.
            raise RuntimeError(f"Evidently returned no drift test result for column {column!r}")
        results[column] = ColumnDrift(
            column=column,
            kind=kinds[column],
            stattest=str(config["method"]),
            score=float(metric["value"]),
            threshold=float(config["threshold"]),
            drifted=verdicts[metric["id"]],
        )
    absent = [c for c in kinds if c not in results]
    if absent:
        raise RuntimeError(f"Evidently returned no ValueDrift metric for columns {absent}")
    return results


def save_report(snapshot: Any, summary: DriftSummary, directory: pathlib.Path) -> dict[str, pathlib.Path]:
    """Writes report.html (Evidently's HTML), report.json (Evidently's JSON) and summary.json.

    Returns their paths under the keys ``"html"``, ``"json"`` and ``"summary"``. ``directory`` is
    created if needed.
    """
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "html": directory / "report.html",
        "json": directory / "report.json",
        "summary": directory / "summary.json",
    }
    # Snapshot.save_html silently writes nothing when given a Path (it only handles str and file
    # objects), so write the string ourselves.
    paths["html"].write_text(snapshot.get_html_str(as_iframe=False), encoding="utf-8")
    paths["json"].write_text(snapshot.json(), encoding="utf-8")
    paths["summary"].write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    return paths
