"""`make test` runs on two xdist workers: a module's tests (and each named group) must stay on one worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path, PurePosixPath

from support.xdist_groups import group_of

TESTS_ROOT = Path(__file__).resolve().parents[1]

SUITE_CONFTEST = """
from pathlib import Path
import pytest
from support.xdist_groups import make_scheduler

@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    return make_scheduler(config, log, Path(__file__).parent)
"""

SUITE_MODULE = """
import json, os
import pytest

@pytest.fixture(scope="module")
def expensive():
    with open(os.environ["SETUPS_LOG"], "a") as log:
        log.write(json.dumps({{"module": __name__, "worker": os.environ.get("PYTEST_XDIST_WORKER")}}) + "\\n")
    return 1

@pytest.mark.parametrize("i", range({n}))
def test_uses_it(expensive, i):
    pass
"""


def test_named_folders_share_a_group_and_every_other_module_is_its_own() -> None:
    assert group_of(PurePosixPath("containers/test_lifecycle_in_containers.py")) == "containers"
    assert group_of(PurePosixPath("faults/test_faults_containers.py")) == "containers"
    assert group_of(PurePosixPath("browser/test_ui.py")) == "browser"
    assert group_of(PurePosixPath("spark/test_drift_engines.py")) == "spark"
    assert group_of(PurePosixPath("integration/test_training_dag.py")) == "integration/test_training_dag.py"


def test_each_module_fixture_is_set_up_once_and_a_group_stays_on_one_worker(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    (suite / "containers").mkdir(parents=True)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (suite / "conftest.py").write_text(SUITE_CONFTEST)
    modules = ["test_alpha.py", "test_beta.py", "containers/test_gamma.py", "containers/test_delta.py"]
    for module in modules:
        (suite / module).write_text(SUITE_MODULE.format(n=6))
    log = tmp_path / "setups.jsonl"
    env = {**os.environ, "SETUPS_LOG": str(log), "PYTHONPATH": str(TESTS_ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider", "suite"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    setups = [json.loads(line) for line in log.read_text().splitlines()]
    by_module = {s["module"].rsplit(".", 1)[-1]: s["worker"] for s in setups}
    assert sorted(s["module"].rsplit(".", 1)[-1] for s in setups) == sorted(Path(m).stem for m in modules), setups
    assert by_module["test_gamma"] == by_module["test_delta"], setups  # one group, one worker
