"""The drift reference as a quantile sketch: a fixed-size, deterministic stand-in for the training data.

A numeric column becomes its ``k`` quantiles at ``(i + 0.5) / k`` (actual values, ``inverted_cdf``):
the reference's CDF to within ``1 / k`` with no sampling noise. A categorical column becomes its levels
repeated in proportion to their full-data counts (largest remainder, every seen level at least once), so
chi-squared expects exactly the full reference's proportions. Columns are sketched independently: drift
is tested column by column, and the sketch's rows mean nothing. Built once per champion, a profile can be
saved (:meth:`ReferenceProfile.save`) and passed to :func:`mlcycle.monitoring.drift.run_drift_report`
instead of the frame. Why a sketch and why 10,000 values: docs/drift.md.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Annotations only: the monitor step imports this module before it knows it needs pandas.
    import pandas as pd

__all__ = [
    "CATEGORICAL",
    "DEFAULT_SAMPLE_ROWS",
    "NUMERIC",
    "PROFILE_FILE",
    "ReferenceProfile",
    "build_reference_profile",
    "load_reference_profile",
]

NUMERIC = "numeric"
CATEGORICAL = "categorical"

# Values per column of a sketch, and rows per side the drift tests see (docs/drift.md: why 10,000).
DEFAULT_SAMPLE_ROWS = 10_000
PROFILE_FILE = "reference_profile.parquet"
_PROFILE_META_KEY = b"mlcycle.drift.reference_profile"
_PROFILE_FORMAT = 1


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
