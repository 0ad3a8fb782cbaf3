"""The project's locked sets, all resolved by one tool (uv) from pyproject.toml (docs/adr/0009-two-environments.md).

- `requirements.lock`: extras `airflow` + `task` + `dev`, the developer's `.venv` (make install);
- `requirements-airflow.lock`: extra `airflow`, Airflow's image and `.venv-airflow` (make venv-airflow);
- `requirements-task.lock`: extra `task`, the task image the step pods run.

The split locks are compiled with the all-in-one lock as constraints: a package in both has the same version
everywhere, so the tests in `.venv` run what the images ship. Every line carries its sha256.

    python -m mlcycle_dev.locks write   # `make lock`: re-resolve the three (existing pins are preferred)
    python -m mlcycle_dev.locks check   # `make check-locks`: do they still follow pyproject.toml?

`check` re-resolves into a scratch folder starting from the checked-in pins (uv keeps the pins of an existing
output file when they still satisfy pyproject.toml), so it fails exactly when pyproject.toml asks for something
the locks do not hold (or holds what it no longer asks for), not when the index has published newer versions.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The platform the images and this machine run on; the lock is resolved for it, whatever machine runs `make lock`.
PLATFORM = ("--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28")


@dataclass(frozen=True)
class LockedSet:
    file: str
    extras: tuple[str, ...]
    #: The all-in-one lock is the constraint of the split ones (same versions everywhere).
    constrained: bool


ALL_IN_ONE = LockedSet("requirements.lock", ("airflow", "task", "dev"), constrained=False)
AIRFLOW = LockedSet("requirements-airflow.lock", ("airflow",), constrained=True)
TASK = LockedSet("requirements-task.lock", ("task",), constrained=True)
#: In resolution order: the constrained sets need the all-in-one lock first.
LOCKED_SETS = (ALL_IN_ONE, AIRFLOW, TASK)


class LocksOutOfDate(RuntimeError):
    """A lock no longer follows pyproject.toml (the message names the file and shows the difference)."""


@functools.cache  # asks pip (a subprocess each); the answer does not change within a run
def pip_find_links() -> str | None:
    """pip's configured find-links folder (here, the one with the torch +cpu wheel); uv does not read pip's config."""
    for key in ("global.find-links", ":env:.find-links"):
        done = subprocess.run([sys.executable, "-m", "pip", "config", "get", key], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    return None


def uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not found:
        raise FileNotFoundError(f"uv is neither next to {sys.executable} nor on PATH (make install puts it in .venv)")
    return found


def compile_argv(locked: LockedSet, *, offline: bool = False) -> list[str]:
    """`uv pip compile` of one set, run in the folder that holds pyproject.toml and the locks.

    Paths stay relative, so a lock's `# via -c requirements.lock` notes read the same in any folder."""
    argv = [uv(), "pip", "compile", "pyproject.toml", "--quiet", *PLATFORM, "--generate-hashes"]
    argv += [arg for extra in locked.extras for arg in ("--extra", extra)]
    if locked.constrained:
        argv += ["--constraint", ALL_IN_ONE.file]
    if find_links := pip_find_links():
        argv += ["--find-links", find_links]
    if offline:
        argv.append("--offline")
    # The header names the command to run, not this machine's paths.
    return [*argv, "--custom-compile-command", "make lock", "-o", locked.file]


def resolve(folder: Path, *, offline: bool = False) -> None:
    """Resolve the sets into folder, which holds pyproject.toml (the declared sets) and any existing locks.

    ``offline``: from uv's cache first; a set that fails offline is resolved again from the registry (said on
    stderr), and only that verdict counts. `make install` syncs the locked wheels without resolving, so whether
    their metadata is in the cache depends on what else ran on the machine (a fresh machine's cache was seen both
    ways; offline, uv then reports a missing version, not a missing cache entry): the retry makes the verdict
    independent of the cache and is never lenient, as it resolves from the same pins.
    """
    for locked in LOCKED_SETS:
        done = subprocess.run(compile_argv(locked, offline=offline), cwd=folder, capture_output=True, text=True)
        if done.returncode != 0 and offline:
            print(f"locks: {locked.file} does not resolve from uv's cache alone; from the registry", file=sys.stderr)
            done = subprocess.run(compile_argv(locked), cwd=folder, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"uv pip compile of {locked.file} failed (exit {done.returncode}): {done.stderr[-2000:]}"
            )


def check(*, offline: bool = False) -> None:
    """Raise LocksOutOfDate naming each lock that re-resolving from pyproject.toml would change."""
    with tempfile.TemporaryDirectory(prefix="mlcycle-locks-") as tmp:
        scratch = Path(tmp)
        shutil.copy2(REPO / "pyproject.toml", scratch / "pyproject.toml")  # static metadata: nothing is built
        for locked in LOCKED_SETS:
            shutil.copy2(REPO / locked.file, scratch / locked.file)  # its pins are uv's preferences
        resolve(scratch, offline=offline)
        stale = []
        for locked in LOCKED_SETS:
            ours, fresh = (REPO / locked.file).read_text(), (scratch / locked.file).read_text()
            if ours != fresh:
                diff = difflib.unified_diff(
                    ours.splitlines(), fresh.splitlines(), locked.file, "resolved", n=0, lineterm=""
                )
                stale.append(f"{locked.file}:\n" + "\n".join(list(diff)[:40]))
    if stale:
        raise LocksOutOfDate("out of date with pyproject.toml (run `make lock`):\n" + "\n".join(stale))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("write", "check"))
    parser.add_argument(
        "--offline", action="store_true", help="resolve from uv's cache (the registry where it lacks metadata)"
    )
    args = parser.parse_args(argv)
    if args.action == "write":
        resolve(REPO, offline=args.offline)
        print("wrote " + ", ".join(locked.file for locked in LOCKED_SETS))
        return 0
    try:
        check(offline=args.offline)
    except LocksOutOfDate as exc:
        print(f"locks: {exc}", file=sys.stderr)
        return 1
    print("locks: " + ", ".join(locked.file for locked in LOCKED_SETS) + " follow pyproject.toml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
