"""Fault drills: where alerts go when things fail, and a scheduler that dies mid-run.

- A real Alertmanager (Debian's `prometheus-alertmanager`) with the routing of docs/alertmanager-example.yml.
- Real Airflow services (api-server, scheduler, dag-processor on SQLite) running two drill DAGs from a
  temporary DAGs folder: one whose task fails, one that commits a data partition through mlcycle's storage.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlcycle.orchestration.alerts import failure_message, send
from mlcycle.settings import embedded_environment
from mlcycle.storage.partitions import Storage, sha256_file
from mlcycle_dev.stack import AirflowServices, wait_until
from mlcycle_dev.stack.process import ManagedProcess
from support.alerting import (
    ALERTMANAGER_API_PATH,
    alertmanager_binary,
    free_port_of_ours,
    post_alerts,
    recording_endpoint,
    routing_config,
    running_alertmanager,
)

DAY = dt.date(2026, 9, 16)
#: In the alert URL's path, as a Slack-style hook's token would be: it must never reach a log.
URL_SECRET = "tokenSECRET7f3a"

DRILL_DAGS = '''
"""airflow dag files of the alerting drills (tests/faults/test_faults_alerting.py)."""
import datetime as dt
import os
import time
from pathlib import Path

from airflow.sdk import dag, task

from mlcycle.orchestration.alerts import FailureAlert

ROOT = Path(os.environ["MLCYCLE_DRILL_ROOT"])
START = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)


@task(retries=0, on_failure_callback=[FailureAlert()])
def score():
    raise RuntimeError("mlcycle score: MLflow unreachable (drill)")


@dag(dag_id="drill_scoring", schedule=None, start_date=START, catchup=False)
def drill_scoring():
    score()


@task(retries=3, retry_delay=dt.timedelta(seconds=1), on_failure_callback=[FailureAlert()])
def commit_day(**context):
    from mlcycle.storage.partitions import Storage

    attempt = context["ti"].try_number
    storage = Storage(str(ROOT / "data"))
    uri = storage.partition_uri("drill", "scores", dt.date(2026, 9, 16))
    with storage.writer(uri, {"attempt": attempt}) as staging:
        with (staging / "scores.csv").open("w") as out:
            out.writelines(f"{row},{row * 2}\\n" for row in range(500))
            out.flush()
            (ROOT / f"writing-{attempt}").write_text(str(os.getpid()))
            # Half written: the drill kills the scheduler (and this process with it) here.
            deadline = time.monotonic() + 300
            while not (ROOT / "go").exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("the drill never let the commit finish")
                time.sleep(0.2)
            out.writelines(f"{row},{row * 2}\\n" for row in range(500, 1000))


@dag(dag_id="drill_training", schedule=None, start_date=START, catchup=False)
def drill_training():
    commit_day()


drill_scoring()
drill_training()
'''


def test_step_failure_alert_reaches_the_pager_and_never_the_rerun_receiver(tmp_path: Path) -> None:
    """A step's failure alert, sent by the real `send()` to a real Alertmanager routed as documented, reaches the
    pager route and not the rerun receiver, while an alert labelled mlcycle_auto_rerun="true" does reach it."""
    if alertmanager_binary() is None:
        pytest.skip("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager; .ci/run does)")
    context = {
        "dag_run": SimpleNamespace(dag_id="yarnit_scoring", run_id="scheduled__2026-09-16", conf={}),
        "ti": SimpleNamespace(task_id="validate", try_number=1, log_url="http://airflow/log"),
        "params": {"partition": DAY.isoformat()},
        "exception": RuntimeError("mlcycle validate: rejected (not retried): [hard] price < 0"),
    }
    with recording_endpoint() as sink:
        config = routing_config(pager_url=f"{sink.url}/pager", rerun_url=f"{sink.url}/rerun")
        with running_alertmanager(config, tmp_path / "alertmanager") as alertmanager:
            with pytest.MonkeyPatch.context() as env:
                env.setenv("MLCYCLE_ALERT_FORMAT", "alertmanager")
                env.setenv("MLCYCLE_ALERT_WEBHOOK_URL", alertmanager + ALERTMANAGER_API_PATH)
                assert send(failure_message(context)) is True
            # What a rule for "the upstream export of D landed late" would raise: a rerun can fix it.
            post_alerts(
                alertmanager,
                [{"labels": {"alertname": "UpstreamExportLate", "usecase": "yarnit", "dag": "scoring",
                             "partition": DAY.isoformat(), "mlcycle_auto_rerun": "true"},
                  "annotations": {"summary": "export of 2026-09-16 landed at 05:10"}}],
            )  # fmt: skip
            wait_until(lambda: len(sink.on("/pager")) >= 2 and sink.on("/rerun"), 60, "both alerts to be routed")
            routed = {
                a["labels"]["alertname"]: sorted(r["name"] for r in a["receivers"])
                for a in _get_json(f"{alertmanager}/api/v2/alerts")
            }
    pager_text = json.dumps(sink.on("/pager"))
    assert "data-rejected" in pager_text and "mlcycle rerun --usecase yarnit --dag scoring" in pager_text
    reruns = [alert["labels"]["alertname"] for hook in sink.on("/rerun") for alert in hook["alerts"]]
    assert reruns == ["UpstreamExportLate"]
    assert routed == {"data-rejected": ["mlcycle-pager"], "UpstreamExportLate": ["mlcycle-pager", "mlcycle-rerun"]}


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServices]:
    root = tmp_path_factory.mktemp("faults-alerting")
    (root / "dags").mkdir()
    (root / "dags" / "drill_dags.py").write_text(DRILL_DAGS)
    (root / "drill").mkdir()
    env = {
        **os.environ,
        **embedded_environment(root / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # How often a scheduler looks for tasks of a dead scheduler to reset (default 300 s); a scheduler counts as
        # dead [scheduler] scheduler_health_check_threshold (30 s) after its last heartbeat.
        "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
        "MLCYCLE_DRILL_ROOT": str(root / "drill"),
        # The alert endpoint is down: nothing listens on this port of ours.
        "MLCYCLE_ALERT_FORMAT": "alertmanager",
        "MLCYCLE_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{free_port_of_ours()}/hooks/{URL_SECRET}",
    }
    with AirflowServices(env, components=("api-server", "scheduler", "dag-processor")) as services:
        services.wait_for_dags(["drill_scoring", "drill_training"], timeout=180)
        yield services


def test_alert_endpoint_down_still_fails_the_task_and_logs_the_host_only(airflow: AirflowServices) -> None:
    """With the alert endpoint down, a failing task still fails its run, and its log keeps the whole alert and
    names the endpoint by scheme and host only (no path, where a webhook's token lives)."""
    airflow.unpause("drill_scoring")
    run_id = airflow.trigger("drill_scoring", conf={"partition": DAY.isoformat()})["dag_run_id"]

    assert airflow.wait_for_run("drill_scoring", run_id, timeout=240) == "failed"
    assert airflow.task_states("drill_scoring", run_id) == {"score": "failed"}
    logs = Path(airflow.env["AIRFLOW_HOME"]) / "logs"

    def alert_logged() -> str | None:
        text = "\n".join(p.read_text(errors="replace") for p in logs.glob("dag_id=drill_scoring/**/*.log"))
        return text if "ALERT (" in text else None

    task_log = wait_until(alert_logged, 60, "the failure alert in the task log")
    host = airflow.env["MLCYCLE_ALERT_WEBHOOK_URL"].split("/hooks/")[0]
    assert f"ALERT (alertmanager at {host} failed" in task_log
    assert "mlcycle score: MLflow unreachable (drill)" in task_log and "mlcycle rerun --usecase drill" in task_log
    assert URL_SECRET not in task_log and "/hooks/" not in task_log


def test_scheduler_killed_mid_run_restarts_and_the_run_commits_whole(airflow: AirflowServices) -> None:
    """The scheduler (and the task it runs) SIGKILLed mid-commit: the committed partition stays whole meanwhile,
    a new scheduler finishes the run with a new attempt, and the partition is the new attempt's, whole (every
    file's digest matches its manifest). The drill DAG touches no model, so there is no champion to check here."""
    drill = Path(airflow.env["MLCYCLE_DRILL_ROOT"])
    storage = Storage(str(drill / "data"))
    uri = storage.partition_uri("drill", "scores", DAY)
    with storage.writer(uri, {"attempt": 0}) as staging:  # yesterday's good version of the partition
        (staging / "scores.csv").write_text("".join(f"{row},{row * 2}\n" for row in range(10)))
    airflow.unpause("drill_training")
    run_id = airflow.trigger("drill_training", conf={"partition": DAY.isoformat()})["dag_run_id"]
    wait_until(lambda: (drill / "writing-1").exists(), 180, "the first attempt to be half-way through its commit")

    old = airflow.processes["scheduler"]
    members = old.members()
    assert int((drill / "writing-1").read_text()) in members  # LocalExecutor: the task dies with the scheduler
    for pid in members:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not old.members(), 30, "the scheduler's processes to be gone")
    assert old.stop() == []
    assert _whole(storage, uri) == {"attempt": 0, "rows": 10}  # readers still see the old version, whole
    assert airflow.task_states("drill_training", run_id) == {"commit_day": "running"}

    (drill / "go").write_text("")
    airflow.processes["scheduler"] = ManagedProcess(
        "scheduler",
        [str(Path(sys.executable).parent / "airflow"), "scheduler"],
        env=airflow.env,
        log_path=airflow.logs_dir / "scheduler-restarted.log",
        cwd=airflow.home,
    ).start()

    assert airflow.wait_for_run("drill_training", run_id, timeout=300) == "success"
    attempts = sorted(int(p.name.split("-")[1]) for p in drill.glob("writing-*"))
    assert attempts[0] == 1 and len(attempts) >= 2, attempts
    assert _whole(storage, uri) == {"attempt": attempts[-1], "rows": 1000}


def _whole(storage: Storage, uri: str) -> dict[str, int]:
    """The committed partition's attempt and row count, after checking every file against its manifest."""
    manifest = storage.manifest(uri)
    assert manifest is not None, f"{uri}: no committed partition"
    with storage.local_copy(uri) as folder:
        for name, entry in manifest["files"].items():
            assert sha256_file(folder / name) == entry["sha256"], f"{uri}/{name} does not match its manifest"
        rows = len((folder / "scores.csv").read_text().splitlines())
    return {"attempt": manifest["attempt"], "rows": rows}


def _get_json(url: str) -> list[dict[str, object]]:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        loaded: list[dict[str, object]] = json.loads(response.read())
        return loaded
