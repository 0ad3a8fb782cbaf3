"""The splits as MLflow datasets (a run's inputs), without MLflow's passes over every value.

`mlflow.data.from_pandas` infers the schema from every value of every text column and, for the digest, maps
`type` over the whole frame although it hashes only the first 10,000 rows: 40 s of CPU for a 2.3M-row train
split, more than half the fit. A split's columns have one type in all rows (one Parquet schema), so the schema
is inferred from its first rows and the digest is MLflow's own, computed on the rows it hashes.
"""

from __future__ import annotations

from functools import cached_property

import pandas as pd
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.digest_utils import MAX_ROWS, compute_pandas_digest
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.models import infer_signature
from mlflow.types import Schema

# Rows the schema is inferred from: enough for a column that starts with nulls to show its type.
SCHEMA_ROWS = 1_000


class SplitDataset(PandasDataset):
    """MLflow's pandas dataset of a split, its schema and digest read from the first rows (module docstring)."""

    def _compute_digest(self) -> str:
        return compute_pandas_digest(self._df.head(MAX_ROWS))

    @cached_property
    def schema(self) -> Schema | None:
        schema = infer_signature(self._df.head(SCHEMA_ROWS)).inputs
        return schema if isinstance(schema, Schema) else None


def split_dataset(table: pd.DataFrame, *, source: str, name: str, targets: str) -> SplitDataset:
    """The dataset `mlflow.log_input` records for one split read from `source`."""
    return SplitDataset(df=table, source=resolve_dataset_source(source), targets=targets, name=name)
