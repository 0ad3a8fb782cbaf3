"""Compare two JSON documents that two environments computed from the same data.

Floats may differ in their last bits between two environments (the thread count of a reduction, a BLAS
build); everything else (keys, strings, ints, booleans, list lengths, verdicts) must be identical.
"""

from __future__ import annotations

import math
from typing import Any

#: Relative tolerance of two floats computed from the same data in two environments: far above the last-bit
#: noise of a reduction (~1e-16 relative), far below any difference a verdict or a figure could turn on.
REL = 1e-9
#: Absolute floor for values near zero (a p-value of 1e-300 against 0.0).
ABS = 1e-12


def json_differences(a: Any, b: Any, path: str = "$") -> list[str]:
    """Where `a` and `b` differ beyond float noise: one line per differing path (empty when they agree)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return [] if a is b else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, int | float) and isinstance(b, int | float):
            if (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=REL, abs_tol=ABS):
                return []
        return [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        lines = [f"{path}.{k}: only in {'first' if k in a else 'second'}" for k in sorted(a.keys() ^ b.keys())]
        for key in sorted(a.keys() & b.keys()):
            lines += json_differences(a[key], b[key], f"{path}.{key}")
        return lines
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)} items"]
        return [
            line for i, (x, y) in enumerate(zip(a, b, strict=True)) for line in json_differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b and type(a) is type(b) else [f"{path}: {a!r} != {b!r}"]
