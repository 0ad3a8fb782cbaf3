"""The file formats a landing partition may arrive in (light: no pandas, no GX, so `ingest` stays fast)."""

from __future__ import annotations

__all__ = ["EXPECTED", "FORMATS"]

#: Landing file name -> format, in order of preference when both are present.
FORMATS: dict[str, str] = {"data.parquet": "parquet", "data.csv": "csv"}

#: What a readable file looks like, per format (the "expected" of the ``readable`` rule).
EXPECTED: dict[str, str] = {
    "parquet": "a complete, readable Parquet file",
    "csv": "UTF-8 text, comma-delimited, with a header row",
}
