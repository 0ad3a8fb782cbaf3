"""The one change this project makes to Great Expectations' globals, applied by the runner, not on import.

GX labels every in-memory pandas batch smaller than ``pandas_execution_engine.HASH_THRESHOLD`` bytes
(1 GB) with a fingerprint: it hashes every cell (``hash_pandas_object`` + md5), which costs about as
much as validating half the columns. Nothing in mlcycle reads that label, so the threshold is set to 0
(never fingerprint). ``HASH_THRESHOLD`` is a GX internal: re-check it on every GX upgrade
(docs/benchmarks.md has the measurement).
"""

from __future__ import annotations

from great_expectations.execution_engine import pandas_execution_engine

__all__ = ["disable_batch_fingerprint"]


def disable_batch_fingerprint() -> None:
    """Stop GX from hashing every cell of an in-memory batch only to label it (idempotent)."""
    pandas_execution_engine.HASH_THRESHOLD = 0
