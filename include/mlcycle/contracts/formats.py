"""The file formats a landing partition may arrive in (light: no pandas, no GX, so `ingest` stays fast)."""

from __future__ import annotations

from mlcycle.storage.layout import LANDING_FILES as FORMATS

__all__ = ["EXPECTED", "FORMATS"]

#: What a readable file looks like, per format (the "expected" of the ``readable`` rule).
EXPECTED: dict[str, str] = {
    "parquet": "a complete, readable Parquet file",
    "csv": "UTF-8 text, comma-delimited, with a header row",
}
