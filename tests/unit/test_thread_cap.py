"""The CLI caps OpenMP/BLAS threads at the cgroup's CPU quota (issue 16): fake cgroup v1 and v2 files in a tmp dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlcycle.cli import THREAD_VARIABLES, cap_threads_to_cpu_quota, cpu_quota


def _v2(root: Path, text: str) -> Path:
    (root / "cpu.max").write_text(text + "\n")
    return root


def _v1(root: Path, quota: str, period: str = "100000", folder: str = "cpu") -> Path:
    (root / folder).mkdir()
    (root / folder / "cpu.cfs_quota_us").write_text(quota + "\n")
    (root / folder / "cpu.cfs_period_us").write_text(period + "\n")
    return root


@pytest.mark.parametrize(
    ("make", "cores", "threads"),
    [
        (lambda r: _v2(r, "150000 100000"), 1.5, "2"),
        (lambda r: _v2(r, "400000 100000"), 4.0, "4"),
        (lambda r: _v2(r, "50000 100000"), 0.5, "1"),
        (lambda r: _v1(r, "250000"), 2.5, "3"),
        (lambda r: _v1(r, "100000", folder="cpu,cpuacct"), 1.0, "1"),
    ],
)
def test_a_quota_sets_every_thread_variable_to_its_ceiling(
    tmp_path: Path, make: Callable[[Path], Path], cores: float, threads: str
) -> None:
    root = make(tmp_path)
    assert cpu_quota(root) == cores
    environ: dict[str, str] = {}
    assert cap_threads_to_cpu_quota(environ, root) == int(threads)
    assert environ == dict.fromkeys(THREAD_VARIABLES, threads)


@pytest.mark.parametrize("make", [lambda r: _v2(r, "max 100000"), lambda r: _v1(r, "-1"), lambda r: r])
def test_no_quota_or_no_cgroup_files_leave_the_libraries_alone(tmp_path: Path, make: Callable[[Path], Path]) -> None:
    environ: dict[str, str] = {}
    assert cap_threads_to_cpu_quota(environ, make(tmp_path)) is None and environ == {}


def test_a_thread_count_set_by_hand_wins(tmp_path: Path) -> None:
    environ = {"OMP_NUM_THREADS": "8"}
    assert cap_threads_to_cpu_quota(environ, _v2(tmp_path, "200000 100000")) is None
    assert environ == {"OMP_NUM_THREADS": "8"}


@pytest.mark.parametrize("make", [lambda r: _v2(r, "lots 100000"), lambda r: _v1(r, "200000", period="0")])
def test_a_cgroup_file_that_cannot_be_read_as_a_quota_is_an_error_naming_it(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    with pytest.raises(ValueError, match=r"cpu\.max|cpu\.cfs_quota_us"):
        cpu_quota(make(tmp_path))
