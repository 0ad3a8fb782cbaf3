"""`make demo-quality`: the ML Test Score's lifecycle features (issue 18) through a real Airflow scheduler.

`make demo` tells the drift story; this second demo shows what the ML Test Score asks of a lifecycle, on its own
store (`.mlcycle-quality/`, removed and made again on every run) and a copy of the YarnIt use case with three
settings of its own (written to `<home>/usecases`, the folder `MLCYCLE_USECASES_DIR` points every process at):

- `model.search`: the training DAG tunes before it trains (a seeded successive-halving search scored on the
  valid split, one nested MLflow run per fit); the second training reuses that search (`every: 7d`);
- `promotion: shadow_canary` with `canary: {labelled_days: 2, tolerance: 0.02}`: a candidate the gate passes
  only becomes `@challenger`; it shadow-scores the served rows, and monitoring's `canary` task promotes it once
  two labelled shadow days show it does not trail the champion (or refuses it);
- `thresholds.gate.min_improvement: -0.01`: with a canary to decide, the gate lets through a candidate that is at
  most 0.01 worse on the frozen test set (two models of near-equal quality are told apart on served rows).

Timeline (calm September 2026 data, no scenario): `yarnit_training` 2026-09-14 (tuned; the first champion is
promoted at once) → scoring 09-15, 09-16 (the scheduler starts each day's monitoring) → `yarnit_training` 09-16
(search reused; the gate's decision record holds the logistic-regression baseline; the candidate enters the
canary) → scoring 09-17 .. 09-19 with the challenger's shadow → monitoring of 09-18 and 09-19 judges the labelled
shadow days 09-17 and 09-18 → promoted by the canary. Last, `mlcycle explain` re-scores one served prediction
from its registered version and shows the row, its checks, its features and its contributions; it exits 65
unless the score equals the served one to 1e-12.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from mlcycle.config import DEFAULT_USECASES_DIR, USECASES_ENV
from mlcycle.settings import REPO_ROOT, embedded_environment
from mlcycle.specs.names import DagFamily
from mlcycle.tags import Tag
from mlcycle_dev.demo import DemoError, answer_approval, monitoring_of
from mlcycle_dev.demo_airflow import DEMO_AIRFLOW_SETTINGS, StoryClient, clean_slate
from mlcycle_dev.demo_summary import AlertSink
from mlcycle_dev.stack.airflow import AirflowServices

USECASE = "yarnit"
HOME = REPO_ROOT / ".mlcycle-quality"
START, END = dt.date(2026, 9, 1), dt.date(2026, 9, 19)
FIRST_TRAINING, SECOND_TRAINING = dt.date(2026, 9, 14), dt.date(2026, 9, 16)
CANARY_DAYS = 2
TRAINING, SCORING, MONITORING = (
    f.dag_id(USECASE) for f in (DagFamily.TRAINING, DagFamily.SCORING, DagFamily.MONITORING)
)
# The use case copy's own settings (see the module docstring).
SETTINGS: dict[str, Any] = {
    "model": {
        "search": {
            "strategy": "successive_halving",
            "trials": 6,
            "seed": 11,
            "every": "7d",
            "max_time": "5m",
            "params": {
                "learning_rate": {"type": "float", "low": 0.03, "high": 0.2, "log": True},
                "max_leaf_nodes": {"type": "choice", "values": [15, 31, 63]},
            },
        }
    },
    "promotion": "shadow_canary",
    "canary": {"labelled_days": CANARY_DAYS, "tolerance": 0.02},
    "thresholds": {"gate": {"min_improvement": -0.01}},
}


def _say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def write_usecases(home: Path) -> Path:
    """The use cases folder of this demo: the shipped one, with SETTINGS applied to YarnIt's copy."""
    folder = home / "usecases"
    shutil.copytree(DEFAULT_USECASES_DIR, folder)
    config = folder / USECASE / "usecase.yaml"
    data = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump(_merge(data, SETTINGS), sort_keys=False))
    return folder


def environment(home: Path) -> dict[str, str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**embedded_environment(home), "PATH": path, USECASES_ENV: str(home / "usecases")}


def score_and_monitor(story: StoryClient, day: dt.date) -> None:
    _say(f"Day {day}: scoring (and the scheduler's monitoring)")
    scoring = story.run(SCORING, day, partition_key=True)
    if scoring.failed:
        raise DemoError(f"{SCORING} {day} failed: {scoring.tasks}")
    monitoring = monitoring_of(story, day)
    if monitoring.failed:
        raise DemoError(f"{MONITORING} {day} failed: {monitoring.tasks}")


def tell_story(story: StoryClient) -> None:
    _say(f"Tuned training: {TRAINING} for {FIRST_TRAINING} (tune -> train; the first champion)")
    first = story.run(TRAINING, FIRST_TRAINING, note="Tuned first model", partition_key=True)
    if first.failed or first.tasks.get("tune") != "success":
        raise DemoError(f"the tuned training {first.run_id} did not go as it must: {first.tasks}")
    for day in (FIRST_TRAINING + dt.timedelta(days=1), SECOND_TRAINING):
        score_and_monitor(story, day)
    _say(f"Second training: {TRAINING} for {SECOND_TRAINING} (the search is reused; a pass enters the canary)")
    second = story.run(TRAINING, SECOND_TRAINING, note="Candidate for the shadow canary", partition_key=True)
    if second.failed:
        raise DemoError(f"{TRAINING} {SECOND_TRAINING} failed: {second.tasks}")
    day = SECOND_TRAINING + dt.timedelta(days=1)
    while day <= END:
        score_and_monitor(story, day)
        day += dt.timedelta(days=1)


def summary(env: dict[str, str]) -> None:
    from mlcycle.config import get_usecase
    from mlcycle.registry.tracking import all_versions, client

    usecase = get_usecase(USECASE)
    _say("Summary")
    for version in all_versions(usecase):
        tags = version.tags
        print(f"  v{version.version}: aliases={version.aliases or '-'} partition={tags.get(Tag.PARTITION)}")
        print(f"      gate: {tags.get(Tag.GATE_DECISION, '-')}: {tags.get(Tag.GATE_REASONS, '-')}")
        promotion = {k: v for k, v in tags.items() if "canary" in k or k == Tag.PROMOTED_BY}
        if promotion:
            print(f"      promotion: {json.dumps(promotion)[:600]}")
        search_run = tags.get(Tag.TUNED_FROM)
        if search_run:
            trials = client().search_runs(
                [client().get_run(search_run).info.experiment_id],
                filter_string=f"tags.mlflow.parentRunId = '{search_run}'",
            )
            params = client().get_run(str(version.run_id)).data.params
            best = {k: v for k, v in params.items() if k.startswith("model.")}
            print(f"      tuned by MLflow run {search_run} ({len(trials)} nested trial runs); params {best}")
    for record in sorted((Path(env["MLCYCLE_STORAGE_ROOT"]) / USECASE / "evaluation").glob("ds=*/v*/decision.json")):
        decision = json.loads(record.read_text())
        evidence = decision.get("evidence") or {}
        candidate, prior, simple = (
            evidence.get("candidate") or {},
            evidence.get("baseline"),
            evidence.get("simple_model"),
        )
        print(f"  decision record {record.parent.parent.name}/{record.parent.name}: {decision.get('decision')}")
        print(f"      candidate: {json.dumps(candidate.get('metrics'), default=str)[:300]}")
        print(f"      constant prior (the floor): {json.dumps(prior, default=str)[:300]}")
        print(f"      simple model: {json.dumps(simple, default=str)[:400]}")


def explain(env: dict[str, str]) -> None:
    _say(f"mlcycle explain: one prediction served on {END}, re-scored from its registered version")
    command = [
        str(Path(sys.executable).parent / "mlcycle"), "explain",
        "--usecase", USECASE, "--partition", str(END), "--row", "0",
    ]  # fmt: skip
    done = subprocess.run(command, env={**os.environ, **env}, check=False)
    if done.returncode != 0:
        raise DemoError(f"{' '.join(command)} exited {done.returncode} (65: the score was not reproduced)")


def demo() -> int:
    clean_slate(HOME, _say)
    started = time.perf_counter()
    write_usecases(HOME)
    env = environment(HOME)
    os.environ.update(env)  # the summary reads the same registry and storage as the tasks
    _say(f"Generating YarnIt landing data {START}..{END} (calm: no scenario)")
    generate = [str(Path(sys.executable).parent / "mlcycle"), "generate", "--usecase", USECASE]
    subprocess.run([*generate, "--start", str(START), "--end", str(END)], check=True)
    sink = AlertSink()
    airflow = AirflowServices({**DEMO_AIRFLOW_SETTINGS, **os.environ, "MLCYCLE_ALERT_WEBHOOK_URL": sink.url})
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        _say("Starting Airflow: api-server, scheduler, dag-processor, triggerer (LocalExecutor, SQLite)")
        airflow.start()
        dag_ids = [TRAINING, SCORING, MONITORING]
        airflow.wait_for_dags(dag_ids, timeout=240)
        story = StoryClient(airflow, answer_approval)
        story.hold_back_todays_runs(dag_ids)
        for dag_id in dag_ids:
            airflow.unpause(dag_id)
        tell_story(story)
        summary(env)
        explain(env)
    finally:
        _say("Stopping Airflow")
        airflow.stop()
        sink.close()
    from mlcycle.config import get_usecase
    from mlcycle.registry.champion import current_champion

    champion = current_champion(get_usecase(USECASE))
    print(f"Quality demo wall time: {time.perf_counter() - started:.0f}s; @champion is v{champion}")
    if champion != "2":
        print(f"UNEXPECTED: the canary did not promote v2 (@champion is v{champion}); see the summary above")
        return 1
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(demo())
