"""Data drift between a use case's reference data and one day's data, with Evidently 0.7.

The ``monitor`` step calls :func:`run_drift_report` with the champion model's training data (or its
:class:`~mlcycle.monitoring.reference_profile.ReferenceProfile`) as the reference and one day's data as
the current frame, stores the result with :func:`save_report`, and uses :class:`DriftSummary`
(``dataset_drift``) to decide whether to request retraining.

The report is built in named stages: the rows the tests see (the reference sketch and a seeded sample of
the day, :func:`sample_current`), the method and threshold of each column (:class:`DriftMethods`), the
columns no test can run on (:func:`untestable_columns`), the Evidently call (:func:`evidently_snapshot`),
reading its verdicts back (:func:`read_column_results`) and the summary. Only Evidently's new (0.7) API
is used -- ``evidently.Report`` / ``Dataset`` / ``DataDefinition`` and ``evidently.presets.DataDriftPreset``
-- never ``evidently.legacy``.

Why the methods are always set explicitly, why the tests see a fixed 10,000 rows per side, and how those
rows are chosen: docs/drift.md (in short: Evidently switches statistics above 1000 rows, and on big data
every column is "significant" every day).
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlcycle.monitoring.reference_profile import (
    CATEGORICAL,
    DEFAULT_SAMPLE_ROWS,
    NUMERIC,
    ReferenceProfile,
    build_reference_profile,
)
from mlcycle.monitoring.report_text import html_and_json
from mlcycle.storage.layout import REPORT_FILE, REPORT_JSON_FILE, SUMMARY_FILE

if TYPE_CHECKING:
    # Annotations only: importing this module must stay cheap (Evidently itself takes seconds to
    # import, so it is imported inside evidently_snapshot, where it is needed).
    import pandas as pd

log = logging.getLogger(__name__)

# Seed of the current-day sample: fixed, so the same day always gives the same verdict.
DEFAULT_SEED = 0
# Current rows tested <= reference rows / this (chi-squared takes the reference proportions as exact) ...
REFERENCE_PER_CURRENT = 10
# ... but not fewer than this: below it the tests lose more power than the false alarms they save.
MIN_CURRENT_ROWS = 1_000

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
            # 12 significant digits: the last bits of a p-value vary with the thread count of the
            # reductions behind it, and re-running a day must rewrite byte-identical summaries.
            "score": None if math.isnan(self.score) else float(f"{self.score:.12g}"),
            "threshold": self.threshold,
            "drifted": self.drifted,
        }


@dataclass(frozen=True)
class DriftSummary:
    """Per-column drift and the dataset-level verdict that decides whether to request retraining.

    ``n_reference`` / ``n_current`` are the rows of the data compared; ``n_reference_tested`` /
    ``n_current_tested`` the rows the tests and the report saw (the reference sketch and the current
    sample; equal to the former when nothing was sampled).
    """

    columns: list[ColumnDrift]
    drift_share: float  # drifted columns / columns
    drift_share_threshold: float
    dataset_drift: bool  # drift_share >= drift_share_threshold
    n_reference: int
    n_current: int
    n_reference_tested: int | None = None
    n_current_tested: int | None = None

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
            "n_reference_tested": self.n_reference_tested,
            "n_current_tested": self.n_current_tested,
            "columns": [c.to_dict() for c in self.columns],
        }


@dataclass(frozen=True)
class DriftMethods:
    """The drift test and threshold of every checked column: a default per kind, then per-column overrides.

    ``overrides`` and ``thresholds`` hold only the checked columns (see :meth:`choose`).
    """

    numeric: str
    categorical: str
    threshold: float
    overrides: dict[str, str]
    thresholds: dict[str, float]

    @classmethod
    def choose(
        cls,
        kinds: Mapping[str, str],
        *,
        numeric: str,
        categorical: str,
        threshold: float,
        methods: Mapping[str, str] | None,
        column_thresholds: Mapping[str, float] | None,
    ) -> DriftMethods:
        """Keep the overrides of the checked columns (one configuration serves several reports).

        Raises:
            ValueError: a column threshold is negative.
        """
        overrides = {c: m for c, m in (methods or {}).items() if c in kinds}
        thresholds = {c: float(t) for c, t in (column_thresholds or {}).items() if c in kinds}
        bad = {c: t for c, t in thresholds.items() if t < 0.0}
        if bad:
            raise ValueError(f"column thresholds must not be negative: {bad}")
        return cls(numeric, categorical, threshold, overrides, thresholds)

    def method_of(self, column: str, kind: str) -> str:
        """The Evidently stat test for ``column`` of ``kind``."""
        return self.overrides.get(column, self.numeric if kind == NUMERIC else self.categorical)

    def threshold_of(self, column: str) -> float:
        """The drift threshold for ``column``, read the way its method reads it."""
        return self.thresholds.get(column, self.threshold)


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


def reference_for(
    reference: pd.DataFrame | ReferenceProfile, kinds: Mapping[str, str], sample_rows: int | None
) -> ReferenceProfile:
    """The reference the tests see: the given profile, a sketch of ``sample_rows`` values per column, or
    (``sample_rows=None``) the checked columns as they are.

    Raises:
        ValueError: the given profile has a checked column as another kind, or not at all.
    """
    if isinstance(reference, ReferenceProfile):
        other_kind = {c: reference.kinds.get(c) for c in kinds if reference.kinds.get(c) != kinds[c]}
        if other_kind:
            raise ValueError(f"the reference profile has these columns as another kind (or not at all): {other_kind}")
        return reference
    if sample_rows is None:
        return ReferenceProfile(reference[list(kinds)], dict(kinds), len(reference))
    numeric = [c for c, kind in kinds.items() if kind == NUMERIC]
    categorical = [c for c, kind in kinds.items() if kind == CATEGORICAL]
    return build_reference_profile(reference, numeric=numeric, categorical=categorical, size=sample_rows)


def current_sample_size(reference_rows: int, sample_rows: int | None) -> int | None:
    """Rows of the day to test: ``sample_rows``, but at most a tenth of the reference (at least 1,000)."""
    if sample_rows is None:
        return None
    return min(sample_rows, max(MIN_CURRENT_ROWS, reference_rows // REFERENCE_PER_CURRENT))


def sample_current(frame: pd.DataFrame, columns: list[str], rows: int | None, seed: int) -> pd.DataFrame:
    """``columns`` of ``rows`` rows drawn without replacement with a fixed seed (original order kept),
    or of all rows."""
    import numpy as np

    if rows is None or len(frame) <= rows:
        return frame[columns]
    picked = np.sort(np.random.default_rng(seed).choice(len(frame), size=rows, replace=False))
    # Rows first: selecting the columns first would copy the whole day (0.5 s at 1M rows x 30).
    return frame.iloc[picked][columns]


def untestable_columns(
    reference: pd.DataFrame, current: pd.DataFrame, kinds: Mapping[str, str], methods: DriftMethods
) -> dict[str, ColumnDrift]:
    """The verdicts of the columns with no usable values on a side, which Evidently cannot test.

    Judged on the rows the tests would see: a column left empty by sampling cannot be tested either.
    Empty on exactly one side: drifted (the column vanished or appeared); on both: not drifted.
    """
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
                stattest=methods.method_of(column, kind),
                score=math.nan,
                threshold=methods.threshold_of(column),
                drifted=ref_empty != cur_empty,
            )
    return untestable


def evidently_snapshot(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: Mapping[str, str],
    methods: DriftMethods,
    drift_share_threshold: float,
) -> Any:
    """Run Evidently's ``DataDriftPreset`` over the ``kinds`` columns; returns its ``Snapshot``."""
    # Imported here, not at module level: Evidently takes seconds to import and only this step needs it.
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = list(kinds)
    definition = DataDefinition(
        numerical_columns=[c for c in columns if kinds[c] == NUMERIC],
        categorical_columns=[c for c in columns if kinds[c] == CATEGORICAL],
    )
    report = Report(
        [
            DataDriftPreset(
                columns=columns,
                num_method=methods.numeric,
                cat_method=methods.categorical,
                per_column_method={c: m for c, m in methods.overrides.items() if c in kinds} or None,
                threshold=methods.threshold,
                per_column_threshold={c: t for c, t in methods.thresholds.items() if c in kinds} or None,
                # Only used for Evidently's own HTML header; our verdict is computed from the columns.
                drift_share=drift_share_threshold,
            )
        ],
        # ValueDrift attaches its drift verdict as a test result only when tests are included; that
        # verdict is read instead of re-deriving "below or above the threshold" for every method.
        include_tests=True,
    )
    # Only the checked columns go in: extra columns (ids, targets, timestamps) would otherwise be
    # typed and profiled by Evidently for nothing.
    return report.run(
        current_data=Dataset.from_pandas(current[columns], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
    )


def run_drift_report(
    reference: pd.DataFrame | ReferenceProfile,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    numeric_method: str = "ks",
    categorical_method: str = "chisquare",
    threshold: float = 0.05,
    drift_share_threshold: float = 0.3,
    methods: Mapping[str, str] | None = None,
    column_thresholds: Mapping[str, float] | None = None,
    sample_rows: int | None = DEFAULT_SAMPLE_ROWS,
    seed: int = DEFAULT_SEED,
) -> tuple[DriftSummary, Any]:
    """Compare ``current`` with ``reference`` column by column with an Evidently ``DataDriftPreset``.

    Args:
        reference: the champion model's training data, or its :class:`ReferenceProfile` (built once
            per champion with :func:`build_reference_profile`; it must cover the columns checked, with
            the same kinds).
        current: one day's data.
        numeric: numeric columns to check (other columns in the frames are ignored).
        categorical: categorical columns to check.
        numeric_method: Evidently stat test for numeric columns (``"ks"``, ``"wasserstein"``, ``"psi"``...).
        categorical_method: Evidently stat test for categorical columns (``"chisquare"``, ``"psi"``...).
        threshold: drift threshold for every column, read the way the method reads it: a p-value for
            p-value tests (drift when the p-value is below it), a distance for distance methods (drift
            when the distance is at or above it). Pick a matching value when choosing a distance method.
        drift_share_threshold: dataset drift when at least this share of the columns drifted.
        methods: per-column method overrides, ``{column: method}``, e.g. ``{"price": "wasserstein"}``.
            Overrides for columns not checked in this call are ignored, so one configuration serves the
            feature report and the prediction report.
        column_thresholds: per-column thresholds, ``{column: threshold}`` (same reading as
            ``threshold``); give one with every override to a method that reads thresholds differently.
        sample_rows: rows per side the tests and the report see: the reference is sketched to this
            many values per column and the current data sampled to this many rows when larger, and to
            at most a tenth of the reference rows (docs/drift.md says why). ``None``:
            everything, as-is (slow and oversensitive on large data).
        seed: seed of the current-data sample: same data and seed, same verdict.

    Nulls are dropped per column by Evidently. A column with no non-null values on exactly one side is
    counted as drifted (it vanished or appeared), one empty on both sides as not drifted; neither is
    sent to Evidently, which cannot test an empty column. Their score is NaN.

    Returns:
        ``(summary, snapshot)``: the compact summary and the Evidently ``Snapshot`` for :func:`save_report`.

    Raises:
        ValueError: a column is missing from either frame (all are named) or from the profile, has
            another kind in the profile, is listed twice, a frame has no rows, no column has values on
            both sides, or a threshold is out of range. Evidently's own errors (e.g.
            ``StatTestNotFoundError`` for an unknown method, ``StatTestInvalidFeatureTypeError`` for
            ``"ks"`` on a categorical column) pass through.
    """
    numeric = list(numeric)
    categorical = list(categorical)
    kinds = {c: NUMERIC for c in numeric} | {c: CATEGORICAL for c in categorical}
    if sample_rows is not None and sample_rows < 1:
        raise ValueError(f"sample_rows must be positive or None, got {sample_rows}")
    frame = reference.frame if isinstance(reference, ReferenceProfile) else reference
    _check_inputs(frame, current, numeric, categorical, threshold, drift_share_threshold)

    profile = reference_for(reference, kinds, sample_rows)
    ref_tested = profile.frame
    cur_tested = sample_current(current, list(kinds), current_sample_size(profile.n_rows, sample_rows), seed)
    chosen = DriftMethods.choose(
        kinds,
        numeric=numeric_method,
        categorical=categorical_method,
        threshold=threshold,
        methods=methods,
        column_thresholds=column_thresholds,
    )

    untestable = untestable_columns(ref_tested, cur_tested, kinds, chosen)
    testable = {c: kind for c, kind in kinds.items() if c not in untestable}
    if not testable:
        # Evidently cannot build a report over zero columns, and "everything drifted" would request a
        # retrain on data that has nothing in it; this is a data problem, not drift.
        raise ValueError(f"no column has non-null values in both reference and current: {list(kinds)}")
    snapshot = evidently_snapshot(ref_tested, cur_tested, testable, chosen, drift_share_threshold)
    tested = read_column_results(snapshot.dict(), testable)

    # Report order = the caller's order (numeric, then categorical).
    summary = summarise(
        [tested[c] if c in tested else untestable[c] for c in kinds],
        drift_share_threshold,
        n_reference=profile.n_rows,
        n_current=len(current),
        n_reference_tested=len(ref_tested),
        n_current_tested=len(cur_tested),
    )
    log.info(
        "drift: %d/%d columns drifted (share %.3f, threshold %.3f) -> dataset_drift=%s %s "
        "(tested %d reference / %d current rows of %d / %d)",
        len(summary.drifted_columns),
        len(summary.columns),
        summary.drift_share,
        drift_share_threshold,
        summary.dataset_drift,
        summary.drifted_columns,
        len(ref_tested),
        len(cur_tested),
        profile.n_rows,
        len(current),
    )
    return summary, snapshot


def summarise(
    columns: list[ColumnDrift],
    drift_share_threshold: float,
    *,
    n_reference: int,
    n_current: int,
    n_reference_tested: int,
    n_current_tested: int,
) -> DriftSummary:
    """The dataset-level verdict: drift when at least ``drift_share_threshold`` of the columns drifted."""
    drift_share = sum(c.drifted for c in columns) / len(columns)
    return DriftSummary(
        columns=columns,
        drift_share=drift_share,
        drift_share_threshold=drift_share_threshold,
        dataset_drift=drift_share >= drift_share_threshold,
        n_reference=n_reference,
        n_current=n_current,
        n_reference_tested=n_reference_tested,
        n_current_tested=n_current_tested,
    )


def read_column_results(snapshot_dict: dict[str, Any], kinds: Mapping[str, str]) -> dict[str, ColumnDrift]:
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
        "html": directory / REPORT_FILE,
        "json": directory / REPORT_JSON_FILE,
        "summary": directory / SUMMARY_FILE,
    }
    # Snapshot.save_html silently writes nothing when given a Path (it only handles str and file
    # objects), so write the string ourselves.
    html, json_text = html_and_json(snapshot)
    paths["html"].write_text(html, encoding="utf-8")
    paths["json"].write_text(json_text, encoding="utf-8")
    paths["summary"].write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    return paths
