"""Two environments, one resolver, three locked sets (docs/adr/0009-two-environments.md): the locks follow
pyproject.toml, the split ones agree with the all-in-one lock the tests run on, and each side lacks the other's
stack."""

from __future__ import annotations

import re
import tomllib

import pytest

from mlcycle.settings import REPO_ROOT
from mlcycle_dev.locks import AIRFLOW, ALL_IN_ONE, TASK, LockedSet, check

#: `name==version \` and its hash lines, as uv writes them with --generate-hashes.
_STANZA = re.compile(r"^([a-z0-9][a-z0-9._-]*)==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})+)", re.M)
ML_STACK = {"pandas", "numpy", "scikit-learn", "scipy", "torch", "mlflow", "mlflow-skinny", "great-expectations"}
ML_STACK |= {"evidently", "pyarrow", "matplotlib"}


def stanzas(locked: LockedSet) -> dict[str, tuple[str, frozenset[str]]]:
    text = (REPO_ROOT / locked.file).read_text()
    return {m[1]: (m[2], frozenset(re.findall(r"sha256:[0-9a-f]{64}", m[3]))) for m in _STANZA.finditer(text)}


def test_the_locks_follow_pyproject() -> None:
    """Re-resolving pyproject.toml (from uv's cache, the registry for what it lacks), starting from the locked
    pins, gives the checked-in files byte for byte: a dependency added, removed or narrowed without `make lock`
    fails here (and in `make check-locks`)."""
    check(offline=True)


@pytest.mark.parametrize("split", [AIRFLOW, TASK], ids=lambda s: s.file)
def test_each_image_lock_is_the_all_in_one_lock_cut(split: LockedSet) -> None:
    """Every package of an image lock has the version and hashes the developer's .venv (and its tests) has."""
    everything, part = stanzas(ALL_IN_ONE), stanzas(split)
    assert len(part) > 100
    differ = sorted(name for name in part if everything.get(name) != part[name])
    assert differ == [], f"{split.file} differs from {ALL_IN_ONE.file} on {differ}"


def test_each_side_lacks_the_other_sides_stack() -> None:
    airflow, task = set(stanzas(AIRFLOW)), set(stanzas(TASK))
    assert "apache-airflow" in airflow and "apache-airflow-providers-cncf-kubernetes" in airflow
    assert airflow & ML_STACK == set(), "the ML stack in Airflow's lock"
    assert ML_STACK <= task
    assert {name for name in task if name.startswith("apache-airflow")} == set(), "Airflow in the task lock"
    assert "kubernetes" not in task, "the Kubernetes client comes with Airflow's provider; no step needs it"


def test_the_no_airflow_contract_covers_every_module_but_the_dag_factories() -> None:
    """import-linter's `steps-without-airflow` names the task image's modules one by one: a new top-level module
    must join it (or be Airflow's: mlcycle.orchestration, and mlcycle.lifecycle, the api-server's page)."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["id"] == "steps-without-airflow"]
    package = REPO_ROOT / "include" / "mlcycle"
    modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    modules |= {p.parent.name for p in package.glob("*/__init__.py")}
    assert {m.removeprefix("mlcycle.") for m in contract["source_modules"]} == modules - {"orchestration", "lifecycle"}
    assert set(contract["forbidden_modules"]) == {"airflow", "mlcycle.orchestration"}
