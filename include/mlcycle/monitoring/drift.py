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
``num_method`` / ``cat_method`` / ``per_column_method`` (and thresholds the same three ways); it passes
the resolved method and threshold to one ``ValueDrift`` metric per column, which is where the per-column
results are read.

Why the tests run on a fixed number of rows (``sample_rows``, default 10,000 per side)
-------------------------------------------------------------------------------------
*Significance grows with the data, relevance does not.* The two-sample KS test flags a column when the
largest gap D between the two empirical CDFs exceeds ``c(alpha) * sqrt((n + m) / (n * m))``, with
``c(0.05) = 1.36``. A location shift of d standard deviations of a normal feature moves the CDFs apart
by D ~= 0.4 d. On 1M vs 1M rows the critical D is 0.0019: KS flags a 0.01 SD shift (D = 0.004) every
time -- noise in any real feed -- so on big data every column "drifts" every day (and Evidently
switches methods for that reason). On 10,000 vs 10,000 the critical D is 0.019, so a shift of 0.07 SD
is caught with 95 % power and 0.1 SD always (the yardstick of Evidently's own large-data default,
normed Wasserstein >= 0.1), while 0.02 SD is flagged ~2 % of the time (simulated: 0.05 SD 80 %,
0.07 SD 98 %, 0.1 SD 100 %). For chi-squared, Evidently tests the current counts against
the reference *proportions* as expected values; with m = 10,000 current rows it flags about 2 % of the
rows changing level (e.g. 0.25/0.25 -> 0.27/0.23) with high power, where 1M rows would flag 0.2 %.
So 10,000 rows detect every shift worth acting on, ignore the ones that are not, and keep the cost of a
report (Evidently computes each column's test three times and draws its histograms from all rows)
independent of the data size. ``python -m mlcycle_dev.benchmarks.drift`` (docs/benchmarks.md): on 1M rows x
30 labelled columns this is ~25-50x faster than Evidently's default preset on the full data, with
~1 GB less memory, and right on 30/30 columns where the default is right on 28 (it misses two
categorical shifts of 5 % of the rows). On 100k rows it is only 3-5x faster: Evidently's own
per-column report building (~0.1 s a column, whatever the rows) is then most of the time.

How the rows are chosen -- deterministic, so a rerun gives the same verdict:

- **Reference: a quantile sketch** (:func:`build_reference_profile`), not a random sample. A numeric
  column becomes its ``k`` quantiles at ``(i + 0.5) / k`` (actual values, ``inverted_cdf``), which is the
  reference's CDF to within ``1 / k`` with no sampling noise; a categorical column becomes its levels
  repeated in proportion to their full-data counts (largest remainder, every seen level at least once),
  so the chi-squared expectation is the full reference's, exactly. Columns are sketched independently
  (drift is tested column by column; rows of the sketch mean nothing). It is a pure function of the
  reference: built once per champion, it can be saved (:meth:`ReferenceProfile.save`, ~1.5 MB for 30
  columns) and passed instead of the frame. Because it carries no sampling noise while scipy's KS
  p-value assumes two random samples of 10,000, the KS test is conservative: on an unchanged column it
  raises ~0.1 % false alarms instead of 5 % when the reference is large (1 % at 30,000 reference and
  3,000 current rows; simulated), with the power above.
- **Current: a seeded random sample** without replacement (``seed``) of ``sample_rows`` rows, and at
  most a tenth of the reference's rows (never fewer than 1,000). Why the tenth: Evidently's chi-squared
  is a goodness-of-fit test that takes the reference proportions as exact, but they are estimates from
  n reference rows, so with m current rows its statistic is inflated by about ``1 + m / n``. At m = n
  that doubles it: 32 % false alarms on an unchanged 5-level column and 85 % on a 30-level one,
  instead of 5 %. With n >= 10 m the inflation is <= 10 % (7 % and 11 % false alarms). A YarnIt day
  (~3,000 rows against ~30,000 training rows) is therefore tested nearly whole.
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Annotations only: importing this module must stay cheap (Evidently itself takes seconds to
    # import, so it is imported inside run_drift_report, where it is needed).
    import pandas as pd

log = logging.getLogger(__name__)

NUMERIC = "numeric"
CATEGORICAL = "categorical"

# Rows per side that the tests see; see the module docstring for why 10,000. None: all rows.
DEFAULT_SAMPLE_ROWS = 10_000
# Seed of the current-day sample: fixed, so the same day always gives the same verdict.
DEFAULT_SEED = 0
# Current rows tested <= reference rows / this (chi-squared takes the reference proportions as exact) ...
REFERENCE_PER_CURRENT = 10
# ... but not fewer than this: below it the tests lose more power than the false alarms they save.
MIN_CURRENT_ROWS = 1_000
PROFILE_FILE = "reference_profile.parquet"
_PROFILE_META_KEY = b"mlcycle.drift.reference_profile"
_PROFILE_FORMAT = 1

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
class ReferenceProfile:
    """A fixed-size, deterministic stand-in for the reference data (see the module docstring).

    ``frame`` has one column per profiled column, each an independent sketch (numeric: quantiles;
    categorical: levels in proportion to their counts; padded with nulls where the reference had fewer
    usable values); its rows mean nothing. ``n_rows`` is the size of the reference it summarises.
    """

    frame: pd.DataFrame
    kinds: dict[str, str]  # column -> "numeric" | "categorical"
    n_rows: int

    def save(self, directory: pathlib.Path | str) -> pathlib.Path:
        """Write ``reference_profile.parquet`` (the sketch, with kinds and size in its metadata)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(self.frame, preserve_index=False)
        meta = {"format": _PROFILE_FORMAT, "kinds": self.kinds, "n_rows": self.n_rows}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), _PROFILE_META_KEY: json.dumps(meta)})
        path = directory / PROFILE_FILE
        pq.write_table(table, path)
        return path


def load_reference_profile(path: pathlib.Path | str) -> ReferenceProfile:
    """Read a profile written by :meth:`ReferenceProfile.save` (a folder holding it, or the file)."""
    import pyarrow.parquet as pq

    path = pathlib.Path(path)
    if path.is_dir():
        path = path / PROFILE_FILE
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(_PROFILE_META_KEY)
    if raw is None:
        raise ValueError(f"{path} is not a drift reference profile (no {_PROFILE_META_KEY.decode()} metadata)")
    meta = json.loads(raw)
    if meta.get("format") != _PROFILE_FORMAT:
        raise ValueError(f"{path}: reference profile format {meta.get('format')!r}, expected {_PROFILE_FORMAT}")
    return ReferenceProfile(frame=table.to_pandas(), kinds=dict(meta["kinds"]), n_rows=int(meta["n_rows"]))


def build_reference_profile(
    reference: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    size: int = DEFAULT_SAMPLE_ROWS,
) -> ReferenceProfile:
    """Sketch each column of ``reference`` into ``size`` values (see the module docstring).

    A reference of at most ``size`` rows is kept as it is: there is nothing to save. Cost: one sort
    per numeric column and one ``value_counts`` per categorical one (about a second for 1M x 30).

    Raises:
        ValueError: a column is missing, a numeric column holds non-numbers, or a categorical column has
            more distinct values than ``size`` (an identifier, not a feature to test for drift).
    """
    import numpy as np
    import pandas as pd

    numeric, categorical = list(numeric), list(categorical)
    kinds = {c: NUMERIC for c in numeric} | {c: CATEGORICAL for c in categorical}
    missing = [c for c in kinds if c not in reference.columns]
    if missing:
        raise ValueError(f"columns missing from the reference: {missing}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    if len(reference) <= size:
        return ReferenceProfile(reference[list(kinds)].reset_index(drop=True), kinds, len(reference))

    sketch: dict[str, Any] = {}
    for column, kind in kinds.items():
        series = reference[column]
        if kind == NUMERIC:
            try:
                values = series.to_numpy(dtype="float64", na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"numeric column {column!r} holds non-numeric values: {exc}") from exc
            # Evidently drops nulls and +/-inf before testing; so does the sketch.
            values = values[np.isfinite(values)]
            if len(values) > size:
                # The quantiles at (i + 0.5) / size by the inverted CDF: actual observations (no
                # interpolation), so integer columns keep integer values. One sort and an index, because
                # np.quantile with 10,000 probabilities partitions once per probability (seconds per column).
                at = np.ceil((np.arange(size) + 0.5) * (len(values) / size)).astype("int64") - 1
                values = np.sort(values)[np.clip(at, 0, len(values) - 1)]
            padded = pd.Series(values, dtype="float64").reindex(range(size))
            # NumPy integers stay integers (nicer histograms). Not pandas' nullable Int64: Evidently
            # correlates null-free numeric columns through an object array of mixed dtypes and fails.
            if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iu" and len(values) == size:
                padded = padded.astype(series.dtype)
            sketch[column] = padded
        else:
            counts = series.value_counts(dropna=True)
            counts = counts[counts > 0]  # unused categories of a pandas Categorical
            sketch[column] = pd.Series(counts.index.repeat(_allocate(counts.to_numpy(), size, column))).reindex(
                range(size)
            )
    return ReferenceProfile(pd.DataFrame(sketch), kinds, len(reference))


def _allocate(counts: Any, size: int, column: str) -> Any:
    """Split ``size`` slots in proportion to ``counts`` (largest remainder), every level at least one."""
    import numpy as np

    total = int(counts.sum())
    if total <= size:
        return counts.astype("int64")  # fewer usable values than slots: keep them all
    if len(counts) > size:
        raise ValueError(
            f"categorical column {column!r} has {len(counts)} distinct values, more than the {size} rows "
            "the drift test uses: an identifier-like column, not a feature to test for drift"
        )
    quota = counts * (size / total)
    slots = np.floor(quota).astype("int64")
    # Stable sort: ties go to the more frequent level (value_counts order), so the result is deterministic.
    order = np.argsort(-(quota - slots), kind="stable")
    slots[order[: size - int(slots.sum())]] += 1
    # A level seen in the reference must stay in it: a zero expected count would make chi-squared
    # infinite for a level that merely is rare. Its slot comes from the largest level.
    for i in np.flatnonzero(slots == 0):
        slots[int(np.argmax(slots))] -= 1
        slots[i] = 1
    return slots


def _sample(frame: pd.DataFrame, columns: list[str], rows: int | None, seed: int) -> pd.DataFrame:
    """``columns`` of ``rows`` rows drawn without replacement with a fixed seed (original order kept),
    or of all rows."""
    import numpy as np

    if rows is None or len(frame) <= rows:
        return frame[columns]
    picked = np.sort(np.random.default_rng(seed).choice(len(frame), size=rows, replace=False))
    # Rows first: selecting the columns first would copy the whole day (0.5 s at 1M rows x 30).
    return frame.iloc[picked][columns]


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
            at most a tenth of the reference rows (see the module docstring for why). ``None``:
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

    if isinstance(reference, ReferenceProfile):
        profile = reference
        _check_inputs(profile.frame, current, numeric, categorical, threshold, drift_share_threshold)
        other_kind = {c: profile.kinds.get(c) for c in kinds if profile.kinds.get(c) != kinds[c]}
        if other_kind:
            raise ValueError(f"the reference profile has these columns as another kind (or not at all): {other_kind}")
    else:
        _check_inputs(reference, current, numeric, categorical, threshold, drift_share_threshold)
        if sample_rows is None:
            profile = ReferenceProfile(reference[list(kinds)], kinds, len(reference))
        else:
            profile = build_reference_profile(reference, numeric=numeric, categorical=categorical, size=sample_rows)
    ref_tested = profile.frame
    current_rows = (
        None
        if sample_rows is None
        else min(sample_rows, max(MIN_CURRENT_ROWS, profile.n_rows // REFERENCE_PER_CURRENT))
    )
    cur_tested = _sample(current, list(kinds), current_rows, seed)

    overrides = {c: m for c, m in (methods or {}).items() if c in kinds}
    column_threshold = {c: float(t) for c, t in (column_thresholds or {}).items() if c in kinds}
    bad = {c: t for c, t in column_threshold.items() if t < 0.0}
    if bad:
        raise ValueError(f"column thresholds must not be negative: {bad}")
    default_methods = {NUMERIC: numeric_method, CATEGORICAL: categorical_method}

    untestable: dict[str, ColumnDrift] = {}
    for column, kind in kinds.items():
        # Judged on the rows the tests would see: a column left empty by sampling cannot be tested either.
        ref_empty = _is_empty(ref_tested, column, kind)
        cur_empty = _is_empty(cur_tested, column, kind)
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
                stattest=overrides.get(column, default_methods[kind]),
                score=math.nan,
                threshold=column_threshold.get(column, threshold),
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
                per_column_method={c: m for c, m in overrides.items() if c in testable} or None,
                threshold=threshold,
                per_column_threshold={c: t for c, t in column_threshold.items() if c in testable} or None,
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
        current_data=Dataset.from_pandas(cur_tested[testable], data_definition=definition),
        reference_data=Dataset.from_pandas(ref_tested[testable], data_definition=definition),
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
        n_reference=profile.n_rows,
        n_current=len(current),
        n_reference_tested=len(ref_tested),
        n_current_tested=len(cur_tested),
    )
    log.info(
        "drift: %d/%d columns drifted (share %.3f, threshold %.3f) -> dataset_drift=%s %s "
        "(tested %d reference / %d current rows of %d / %d)",
        n_drifted,
        len(results),
        drift_share,
        drift_share_threshold,
        summary.dataset_drift,
        summary.drifted_columns,
        len(ref_tested),
        len(cur_tested),
        profile.n_rows,
        len(current),
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
