"""The YarnIt lifecycle end to end with every step as its pod (issue 13, item 3), against `make up`'s services,
and the same story through the local launcher on a second copy of the services: the two must agree.

The story (the demo's synthetic generator, its heatwave `covariate_shift` from the first scored day):
1. `yarnit_training` for 2026-09-14 (the 14-day window from 2026-09-01): ingest, validate, features, train,
   evaluate, promote -- the first model becomes @champion;
2. for 2026-09-15 and 2026-09-16: `yarnit_scoring` (ingest, validate, score with @champion, and shadow with
   @challenger when it is another version) and `yarnit_monitoring` (monitor, then the retraining policy of
   the DAG's `decide_retraining` task, which runs on Airflow's side, not in a pod). The first drifted day has
   no labels yet (label delay 1 day): notify only; the second has a labelled day: the policy requests a retrain;
3. the retrain: `yarnit_training` started by that request's Asset event (its partition from the event);
4. 2026-09-17: scoring after the retrain -- @champion serves, the rejected candidate (@challenger) shadow-scores.

Every pod is the one KubernetesPodOperator would submit (`build_pod_request_obj`), run from the built task
image by `podman kube play` under the restricted profile, with the chart's ConfigMap and the credential
Secrets as its only settings: storage is S3 (moto), the MLflow server needs the pipeline user's password.
The local launcher (LocalStepOperator) runs each step beside it, on the other copy of the services.

What must be equal: each step's Airflow outcome and result (paths, run ids and timings aside: `normalized`),
every committed partition's manifest (every file's sha256 and size; the commit time aside), the model metrics
and gate decisions, and the retraining decisions.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlcycle.config import load_usecase
from mlcycle.evaluation.compute import REGRESSION_PREFIX
from mlcycle.retraining import retraining_decision
from mlcycle.settings import REPO_ROOT
from mlcycle.specs.names import DagFamily, Step
from mlcycle.storage.layout import DATA_PREFIX, DECISION_FILE, Dataset
from mlcycle_dev.containers.pods import PodRun, create_secret, run_pod, runnable_pod
from mlcycle_dev.containers.runtime import Engine
from mlcycle_dev.stack.local import missing_reason
from support.containers_lifecycle import Services, Stage, services
from support.json_compare import json_differences
from support.step_pods import StepPod, render_step_pods

from .conftest import Images
from .test_step_pods_in_podman import Outcome, _defaults, normalized, pod_outcome, run_local

USECASE = "yarnit"
FIRST_DAY = dt.date(2026, 9, 1)
TRAINING_DAY = dt.date(2026, 9, 14)
SCORED_DAYS = (dt.date(2026, 9, 15), dt.date(2026, 9, 16))
AFTER_RETRAIN = dt.date(2026, 9, 17)
SCENARIOS = (f"covariate_shift:{SCORED_DAYS[0]}:{AFTER_RETRAIN}",)
#: Enough that one labelled day clears the policy's `min_new_labelled_rows` (2000).
ROWS_PER_DAY = 2500
TRAINING = DagFamily.TRAINING.dag_id(USECASE)
SCORING = DagFamily.SCORING.dag_id(USECASE)
MONITORING = DagFamily.MONITORING.dag_id(USECASE)
TRAINING_STEPS = (Step.INGEST, Step.VALIDATE, Step.FEATURES, Step.TRAIN, Step.EVALUATE, Step.PROMOTE)
SCORING_STEPS = (Step.INGEST, Step.VALIDATE, Step.SCORE)
#: Manifest fields that differ between two commits of the same files, each by design:
#: - committed_at: when the commit happened;
#: - data_prefix: the S3 version folder of the commit (its time and a random suffix), so that a retry or a
#:   concurrent writer never overwrites files a reader of the previous `_SUCCESS` is reading.
#: Every file's name, size and sha256 (`files`) is compared, as is everything else in the manifest.
PER_COMMIT = ("committed_at", DATA_PREFIX)
#: The gate's one measurement that depends on the machine rather than on the data: the candidate's p95
#: single-row predict time (wall-clock). It is compared for presence and kept out of the equality; the gate's
#: decision itself is compared. It sits in the evaluation partition's decision record, so that file is compared
#: as JSON without it instead of by digest (every other file of every partition is compared by digest).
LATENCY_REASON = "p95 per-row predict time"
#: The same holds for the other timings (issue 18, item 7): the record's `compute` figures of candidate and champion
#: (training time, peak memory, latency, throughput) and the soft warnings drawn from them.
MACHINE_DEPENDENT = ("latency_p95_ms", "compute")


@dataclasses.dataclass
class StageRuns:
    stage: Stage
    local: Outcome
    pod: Outcome
    run: PodRun


@dataclasses.dataclass
class Side:
    """One environment's view of the story: its services and the results its tasks returned so far."""

    services: Services
    upstream: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    requests: list[str] = dataclasses.field(default_factory=list)  # the retraining Asset's events
    decisions: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Story:
    runs: list[StageRuns]
    pods: Side
    local: Side
    manifests: tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]  # (pods, local)
    seconds: float

    def run(self, dag_id: str, task_id: str, partition: dt.date) -> StageRuns:
        (found,) = [
            r
            for r in self.runs
            if (r.stage.dag_id, r.stage.task_id, r.stage.partition) == (dag_id, task_id, partition.isoformat())
        ]
        return found


def _render(stage: Stage, upstream: dict[str, dict[str, Any]]) -> StepPod:
    if stage.asset_event is None:
        run: dict[str, Any] = {}
        params = {"partition": stage.partition}
    else:
        # As Airflow 3 starts an Asset-triggered run: no logical date, the event's extra names the partition.
        event = dataclasses.make_dataclass("Event", ["extra", "source_dag_id", "source_run_id"])
        run = {
            "logical_date": None,
            "run_type": "asset_triggered",
            "consumed_asset_events": [event(dict(stage.asset_event), MONITORING, f"manual__{stage.partition}")],
        }
        params = {"partition": None}
    pods = render_step_pods(_defaults(upstream), only=USECASE, run=run, params=params)
    (found,) = [p for p in pods if (p.dag_id, p.task_id) == (stage.dag_id, stage.task_id)]
    return found


def _run_stage(
    engine: Engine, images: Images, stage: Stage, pods: Side, local: Side, secrets: dict[str, str]
) -> StageRuns:
    local_step = _render(stage, local.upstream)
    pod_step = _render(stage, pods.upstream)
    configmap_name = pod_step.pod_task.configmaps[0]
    configmaps = {configmap_name: pods.services.pipeline_configmap(configmap_name)}
    pod = runnable_pod(pod_step.pod, task_image=images.task, sidecar_image=images.sidecar, secret_names=secrets)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        local_future = pool.submit(run_local, local_step)
        pod_run = run_pod(engine, pod, configmaps)
        local_outcome = local_future.result()
    pod_result = Outcome(pod_run.exit_code, pod_run.xcom, pod_outcome(pod_step, pod_run))
    for side, outcome in ((pods, pod_result), (local, local_outcome)):
        if stage.task_id in (Step.TRAIN, Step.EVALUATE) and outcome.result:
            side.upstream[stage.task_id] = outcome.result
    return StageRuns(stage, local_outcome, pod_result, pod_run)


def _decide(side: Side, monitor: dict[str, Any] | None, partition: str) -> dict[str, Any]:
    """The monitoring DAG's `decide_retraining` (Airflow's side), on this environment's monitor result."""
    policy = load_usecase(REPO_ROOT / "include" / "usecases" / USECASE / "usecase.yaml").retraining
    decision = retraining_decision(monitor, policy, previous_requests=list(side.requests))
    side.decisions[partition] = decision
    return decision


def _stages(dag_id: str, steps: tuple[Step, ...], day: dt.date, event: dict[str, Any] | None = None) -> list[Stage]:
    return [Stage(dag_id, step.value, day.isoformat(), event) for step in steps]


@pytest.fixture(scope="module")
def story(engine: Engine, images: Images) -> Iterator[Story]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="e2e-containers-"))
    base.chmod(0o711)  # PostgreSQL's own account passes through to its data folder (when we are root)
    secrets = {name: f"{name}-e2e-{uuid.uuid4().hex[:8]}" for name in ("mlcycle-s3", "mlcycle-mlflow-client")}
    with services(base / "pods") as pod_services, services(base / "local") as local_services:
        pods, local = Side(pod_services), Side(local_services)
        for side in (pods, local):
            side.services.generate(USECASE, FIRST_DAY, AFTER_RETRAIN, ROWS_PER_DAY, SCENARIOS)
        for name, values in pod_services.credentials().items():
            create_secret(engine, secrets[name], values)
        mp = pytest.MonkeyPatch()
        for name, value in local_services.worker_env(base / "worker").items():
            mp.setenv(name, value)  # the local launcher's subprocesses inherit the worker's environment
        runs: list[StageRuns] = []

        def play(stages: list[Stage]) -> dict[str, StageRuns]:
            done = {}
            for stage in stages:
                runs.append(_run_stage(engine, images, stage, pods, local, secrets))
                done[stage.task_id] = runs[-1]
            return done

        try:
            play(_stages(TRAINING, TRAINING_STEPS, TRAINING_DAY))
            for day in SCORED_DAYS:
                play(_stages(SCORING, SCORING_STEPS, day))
                monitor = play(_stages(MONITORING, (Step.MONITOR,), day))[Step.MONITOR.value]
                retrain = None
                for side, outcome in ((pods, monitor.pod), (local, monitor.local)):
                    decision = _decide(side, outcome.result, day.isoformat())
                    if decision["decision"] == "retrain" and side is pods:
                        retrain = decision
                    if decision["decision"] == "retrain":
                        side.requests.append(decision["partition"])
                if retrain is not None:
                    # The request's Asset event starts the training DAG (the extra the DAG's task sets).
                    event = {k: retrain.get(k) for k in ("partition", "reason", "triggers", "champion_version")}
                    play(_stages(TRAINING, TRAINING_STEPS, dt.date.fromisoformat(retrain["partition"]), event))
            # The day after the retrain: served by @champion, shadow-scored by the new @challenger.
            play(_stages(SCORING, SCORING_STEPS, AFTER_RETRAIN))
            yield Story(
                runs,
                pods,
                local,
                (pod_services.manifests(), local_services.manifests()),
                round(time.monotonic() - started),
            )
        finally:
            mp.undo()
            for name in secrets.values():
                engine.run("secret", "rm", name, check=False)


def test_every_transition_happened_in_the_pods(story: Story) -> None:
    """Trained and promoted, scored with shadow, monitored, drift noticed, retrained on the policy's request."""
    # The retrained candidate does not beat the champion on its frozen test set: the gate rejects it, the
    # promote task skips (exit 99), and it stays @challenger -- which is what the next day shadow-scores.
    rejected = story.run(TRAINING, Step.EVALUATE, SCORED_DAYS[1]).pod.result
    assert rejected and rejected["metrics"]["decision"] == "reject", rejected
    skipped = {(TRAINING, Step.PROMOTE.value, SCORED_DAYS[1].isoformat()): "AirflowSkipException"}
    failed = [
        (r.stage.key, r.pod.airflow, r.run.logs[-1500:])
        for r in story.runs
        if r.pod.airflow != skipped.get((r.stage.dag_id, r.stage.task_id, r.stage.partition), "success")
    ]
    assert not failed, failed
    first = story.run(TRAINING, Step.PROMOTE, TRAINING_DAY).pod.result
    assert first and first["metrics"]["champion_version"] == "1", first
    decisions = story.pods.decisions
    assert [decisions[d.isoformat()]["decision"] for d in SCORED_DAYS] == ["notify", "retrain"], decisions
    retrained = story.run(TRAINING, Step.TRAIN, SCORED_DAYS[1]).pod.result
    assert retrained and retrained["metrics"]["model_version"] == "2", retrained
    scored = {r.stage.partition: r.pod.result for r in story.runs if r.stage.task_id == Step.SCORE}
    shadow = {
        day: r["metrics"]["challenger_version"]
        for day, r in scored.items()
        if r and r["outputs"].get("predictions_challenger")
    }
    print(f"story: {len(story.runs)} steps in {story.seconds} s; shadow-scored: {shadow}")
    assert shadow, scored


def without_latency(record: Any) -> Any:
    """A gate record (the evaluate step's result metrics, or its decision file) without the latency figures."""
    if not isinstance(record, dict):
        return record
    out = {k: without_latency(v) for k, v in record.items() if k not in MACHINE_DEPENDENT}
    if isinstance(out.get("checks"), dict) and "latency" in out["checks"]:
        out["checks"] = {k: v for k, v in out["checks"].items() if k != "latency"}
    if isinstance(out.get("reasons"), list):
        out["reasons"] = [r for r in out["reasons"] if not str(r).startswith(LATENCY_REASON)]
    if isinstance(out.get("warnings"), list):
        out["warnings"] = [w for w in out["warnings"] if not str(w).startswith(REGRESSION_PREFIX)]
    return out


def _comparable(stage: Stage, result: dict[str, Any] | None) -> Any:
    plain = normalized(result, ())
    return without_latency(plain) if stage.task_id == Step.EVALUATE else plain


def test_each_pod_ends_as_the_local_launcher_does(story: Story) -> None:
    """Same exit code and Airflow outcome; the same result (metrics, gate decisions, versions, partitions)."""
    differ = [
        (r.stage.key, r.pod.exit_code, r.local.exit_code, r.pod.airflow, r.local.airflow)
        for r in story.runs
        if (r.pod.exit_code, r.pod.airflow) != (r.local.exit_code, r.local.airflow)
    ]
    assert not differ, differ
    # Floats within float noise (json_compare.REL): a p-value's last bits vary with the thread count of the
    # reductions behind it, which differs between a pod and the local process; CI once saw exactly that.
    results = {
        r.stage.key: lines
        for r in story.runs
        if (lines := json_differences(_comparable(r.stage, r.pod.result), _comparable(r.stage, r.local.result)))
    }
    assert not results, json.dumps(results, indent=1)
    evaluations = [r for r in story.runs if r.stage.task_id == Step.EVALUATE]
    for r in evaluations:  # measured on both sides, only not compared
        for outcome in (r.pod, r.local):
            assert outcome.result and "latency" in outcome.result["metrics"]["checks"], (r.stage.key, outcome)


def test_every_committed_partition_has_the_same_digests(story: Story) -> None:
    pods, local = story.manifests
    assert sorted(pods) == sorted(local)
    assert any(p.startswith(f"{USECASE}/monitoring/") for p in pods), sorted(pods)
    differ: dict[str, Any] = {}
    for partition in sorted(pods):
        mine = {k: v for k, v in pods[partition].items() if k not in PER_COMMIT} | {
            "files": dict(pods[partition]["files"])
        }
        theirs = {k: v for k, v in local[partition].items() if k not in PER_COMMIT} | {
            "files": dict(local[partition]["files"])
        }
        if partition.startswith(f"{USECASE}/{Dataset.EVALUATION}/"):
            records = [
                without_latency(json.loads(side.services.read(partition, manifest, DECISION_FILE)))
                for side, manifest in ((story.pods, pods[partition]), (story.local, local[partition]))
            ]
            if records[0] != records[1]:
                differ[f"{partition}/{DECISION_FILE}"] = records
            for files in (mine["files"], theirs["files"]):
                files[DECISION_FILE] = {"compared": "as JSON without the latency measurement"}
        # A monitoring partition's JSON (Evidently's reports, our summaries) holds test statistics and p-values
        # whose last bits follow the thread count of the reductions behind them: compared as JSON within float
        # noise, like the results (a summary's 12 significant digits still flip at a rounding boundary).
        if partition.startswith(f"{USECASE}/{Dataset.MONITORING}/"):
            for name in [n for n in mine["files"] if n.endswith(".json")]:
                documents = [
                    json.loads(side.services.read(partition, manifest, name))
                    for side, manifest in ((story.pods, pods[partition]), (story.local, local[partition]))
                ]
                if lines := json_differences(*documents):
                    differ[f"{partition}/{name}"] = lines[:20]
                for files in (mine["files"], theirs["files"]):
                    files[name] = {"compared": "as JSON, floats within float noise"}
        if mine != theirs:
            differ[partition] = {
                k: (mine.get(k), theirs.get(k)) for k in sorted({*mine, *theirs}) if mine.get(k) != theirs.get(k)
            }
    assert not differ, json.dumps(differ, indent=1, default=str)[:20000]


def test_the_same_retraining_decisions(story: Story) -> None:
    assert story.pods.decisions == story.local.decisions
    assert story.pods.requests == story.local.requests
