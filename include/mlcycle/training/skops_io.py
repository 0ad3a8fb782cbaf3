"""`skops.io`, imported without importing torch.

Importing `skops.io` lists sklearn's estimators (`sklearn.utils.all_estimators`), which imports every package
under `sklearn` to walk it, sklearn's vendored `array_api_compat.torch` included; that one imports torch
whenever torch is installed (the task image has it), 5-7 s of every step that loads an sklearn model
(docs/benchmarks.md, Nightly). `all_estimators` skips `sklearn.externals` itself and ignores a package that
cannot be imported, so hiding that one package while `skops.io` is imported leaves skops' lists of trusted
types unchanged (tests/unit/test_bench_nightly.py checks both). The package is importable again at once after:
only this import sees it hidden, and a torch model imports torch as before.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

#: sklearn's vendored array-API wrapper of torch: importing it imports torch.
TORCH_WRAPPER = "sklearn.externals.array_api_compat.torch"


class _HideTorchWrapper:
    """A meta-path finder that refuses `TORCH_WRAPPER` (and its modules): a failed import, as if torch were absent."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname == TORCH_WRAPPER or fullname.startswith(TORCH_WRAPPER + "."):
            raise ModuleNotFoundError(f"{fullname} is hidden while skops.io is imported", name=fullname)
        return None  # every other module: the next finders decide


def import_skops_io() -> ModuleType:
    """`skops.io` (imported now without torch, or the module already imported)."""
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    finder = _HideTorchWrapper()
    sys.meta_path.insert(0, finder)
    try:
        return importlib.import_module("skops.io")
    finally:
        sys.meta_path.remove(finder)
