"""The runtime package (include/mlcycle, what the task image ships) holds no dev tooling and imports none.

Dev tooling lives in dev/mlcycle_dev (the local stack, the demo, benchmarks, the embedded backfill) and test
support in tests/support; both may import the runtime, never the other way round.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from setuptools import find_packages

from mlcycle.settings import REPO_ROOT

PACKAGE = REPO_ROOT / "include" / "mlcycle"
#: Top-level modules the runtime must not import: the dev distribution and the test code.
FORBIDDEN = {"mlcycle_dev", "support", "tests", "conftest", "pytest"}
#: What moved out of the runtime package (old module paths).
MOVED = {"mlcycle.stack", "mlcycle.benchmarks", "mlcycle.demo", "mlcycle.testing"}


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, at any depth (lazy imports included)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            # `from mlcycle import stack` imports the module mlcycle.stack.
            yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)


def _hits(name: str, banned: set[str]) -> bool:
    return any(name == b or name.startswith(f"{b}.") for b in banned)


def test_the_runtime_imports_no_dev_or_test_code() -> None:
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{line}: import {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, name in imported_modules(path)
        if _hits(name, FORBIDDEN | MOVED)
    ]
    assert offenders == [], "the runtime package imports dev tooling or test code:\n" + "\n".join(offenders)


def test_the_runtime_package_holds_no_dev_tooling() -> None:
    modules = {
        p.relative_to(PACKAGE.parent).with_suffix("").as_posix().replace("/", ".") for p in PACKAGE.rglob("*.py")
    }
    packages = set(find_packages(where=str(PACKAGE.parent), include=["mlcycle*"]))
    left = sorted(m for m in modules | packages if _hits(m, MOVED))
    assert left == [], f"dev tooling back in include/mlcycle: {left} (it belongs in dev/mlcycle_dev or tests/support)"


def test_the_import_check_sees_every_form_of_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import mlcycle_dev.stack\n"
        "from mlcycle import demo\n"
        "def lazy():\n    from support.cli import step\n"
        "from . import sibling\n"
    )
    found = [name for _, name in imported_modules(sample) if _hits(name, FORBIDDEN | MOVED)]
    assert found == ["mlcycle_dev.stack", "mlcycle.demo", "support.cli", "support.cli.step"]
