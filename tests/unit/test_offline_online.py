"""Offline test metric vs online metric per version (issue 18 item 4): each labelled day's online metric is logged on
the version's training run, and the table across versions gives their correlation.

The registry holds versions without artifacts, each pointing at a run with its `test_roc_auc` as training logs it.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

MODEL = "yarnit_model"
DAY = dt.date(2026, 9, 11)


def test_online_metrics_per_version_and_their_correlation_with_offline(mlcycle_env: dict[str, str]) -> None:
    from mlflow import MlflowClient

    from mlcycle.config import get_usecase
    from mlcycle.monitoring import canary
    from mlcycle.registry import tracking
    from mlcycle.tags import Tag

    usecase = get_usecase("yarnit")
    client = MlflowClient()
    experiment = tracking.ensure_experiment(usecase)
    client.create_registered_model(MODEL)
    offline = {"1": 0.70, "2": 0.80, "3": 0.75}
    online = {"1": [0.66, 0.68], "2": [0.77, 0.79], "3": [0.70]}
    for version, value in offline.items():
        run = client.create_run(experiment).info.run_id
        client.log_metric(run, "test_roc_auc", value)
        created = client.create_model_version(MODEL, source="/nowhere", run_id=run)
        assert str(created.version) == version
        client.set_model_version_tag(MODEL, version, Tag.RUN_ID, run)
    client.create_model_version(MODEL, source="/nowhere")  # v4: no training run, no online days: not in the table
    for version, values in online.items():
        for offset, value in enumerate(values):
            canary.log_online(usecase, version, DAY + dt.timedelta(days=offset), value)
    canary.log_online(usecase, "1", DAY, 0.66)  # monitoring the same day again: still one day

    table = canary.offline_online(usecase)
    rows = {row["version"]: row for row in table["versions"]}
    assert set(rows) == {"1", "2", "3"}
    assert (rows["1"]["online"], rows["1"]["online_days"]) == (pytest.approx(0.67), 2)
    assert rows["2"]["online_shortfall"] == pytest.approx(0.80 - 0.78)
    expected = statistics.correlation([0.70, 0.80, 0.75], [0.67, 0.78, 0.70])
    assert table["correlation"] == pytest.approx(expected, abs=1e-6)
    history = client.get_metric_history(client.get_model_version(MODEL, "1").run_id, "online_roc_auc")
    assert sorted(m.step for m in history) == [DAY.toordinal(), DAY.toordinal() + 1]
    assert "correlation across versions: " in canary.offline_online_table(table)

    # Two versions are too few to call a correlation.
    client.delete_model_version(MODEL, "3")
    assert canary.offline_online(usecase)["correlation"] is None


#: What `mlcycle report` must not load through mlcycle: it lists versions and the offline/online table, no data.
DATA_LIBRARIES = {"pandas", "numpy", "sklearn"}


def _module_level_imports(path: Path) -> set[str]:
    """The top-level packages a module imports when it is loaded (not the lazy imports inside its functions)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_mlcycle_report_loads_no_data_library_of_its_own(mlcycle_env: dict[str, str]) -> None:
    """In a fresh interpreter: `mlcycle report` loads no sklearn, and none of the mlcycle modules it loads imports
    pandas, numpy or sklearn (MLflow 3.17 imports pandas and numpy itself at `import mlflow`: not ours to avoid)."""
    probe = (
        "import json, sys\n"
        "from mlcycle.cli import main\n"
        "code = main(['report', '--usecase', 'yarnit'])\n"
        "files = {m: getattr(v, '__file__', None) for m, v in list(sys.modules.items()) if m.startswith('mlcycle')}\n"
        "print(json.dumps({'code': code, 'sklearn': 'sklearn' in sys.modules, 'mlcycle': files}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], env=mlcycle_env, capture_output=True, text=True, timeout=600)
    probed = json.loads(out.stdout.splitlines()[-1])
    assert probed["code"] == 0 and probed["sklearn"] is False, out.stderr[-2000:]
    loaded = probed["mlcycle"]
    assert "mlcycle.monitoring.offline_online" in loaded and "mlcycle.monitoring.canary" not in loaded
    heavy = {
        module: sorted(_module_level_imports(Path(file)) & DATA_LIBRARIES)
        for module, file in loaded.items()
        if file and _module_level_imports(Path(file)) & DATA_LIBRARIES
    }
    assert heavy == {}, f"mlcycle report loads modules that import data libraries: {heavy}"
