"""One StepSpec, two launchers: the pod a KubernetesPodOperator would submit runs exactly the argv and
env the local launcher runs, for every step task of every DAG of every use case (and of a GPU variant of
yarnit, whose training step runs in the CUDA image on a GPU node, and of a tuned one, whose training DAG has
the tune step).

The pod gets a few variables more, all named in `mlcycle.orchestration.kubernetes.POD_ONLY_ENV` (HOME,
TMPDIR and caches on the scratch emptyDir of a read-only root filesystem; the image name for MLflow): they
are left out of the comparison explicitly, and may never override a variable of the spec.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from mlcycle.config import UseCase, discover_usecases, load_usecase
from mlcycle.orchestration.dags import build_dags
from mlcycle.orchestration.operators import LocalStepOperator
from mlcycle.settings import REPO_ROOT
from support.usecases import tuned_usecase


def gpu_variant(root: Path) -> UseCase:
    """yarnit, training the torch MLP on one GPU (resources.train.gpu), loaded through the real loader."""
    folder = root / "yarnit_gpu"
    shutil.copytree(REPO_ROOT / "include" / "usecases" / "yarnit", folder)
    config = yaml.safe_load((folder / "usecase.yaml").read_text())
    config["name"] = "yarnit_gpu"
    config["model"] = {**config["model"], "family": "torch_mlp", "params": {}}
    config["resources"] = {**config.get("resources", {}), "train": {"cpu": "4", "memory": "8Gi", "gpu": 1}}
    (folder / "usecase.yaml").write_text(yaml.safe_dump(config))
    return load_usecase(folder / "usecase.yaml")


@pytest.fixture(scope="module")
def both_modes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Any]]:
    """dag_id -> (local DAG, kubernetes DAG)."""
    mp = pytest.MonkeyPatch()
    out: dict[str, tuple[Any, Any]] = {}
    variants = tmp_path_factory.mktemp("usecases")
    tuned = load_usecase(tuned_usecase(variants, "yarnit_tuned"))
    for usecase in [*discover_usecases(), gpu_variant(variants), tuned]:
        mp.setenv("MLCYCLE_EXECUTION_MODE", "local")
        local = build_dags(usecase)
        mp.setenv("MLCYCLE_EXECUTION_MODE", "kubernetes")
        k8s = build_dags(usecase)
        out.update({dag_id: (local[dag_id], k8s[dag_id]) for dag_id in local})
    mp.undo()
    return out


def _step_tasks(both_modes: dict[str, tuple[Any, Any]]) -> list[tuple[str, str]]:
    return [
        (dag_id, task.task_id)
        for dag_id, (local, _) in both_modes.items()
        for task in local.tasks
        if isinstance(task, LocalStepOperator)
    ]


# What the train and evaluate steps and the review return (their XComs), as far as the DAG templates read them.
UPSTREAM_RESULTS = {
    "train": {
        "status": "success",
        "step": "train",
        "usecase": "yarnit",
        "partition": "2026-09-14",
        "outputs": {"model_uri": "models:/yarnit/7", "features": "/data/yarnit/features/ds=2026-09-14"},
        "metrics": {"model_version": "7", "run_id": "r7", "parent_run_id": "p7"},
    },
    "evaluate": {
        "status": "success",
        "step": "evaluate",
        "usecase": "yarnit",
        "partition": "2026-09-14",
        "outputs": {"decision": "/data/yarnit/evaluation/ds=2026-09-14/v7"},
        "metrics": {
            "decision": "promote",
            "candidate_version": "7",
            "champion_version": "6",
            "compute": {"mode": "soft", "factor": 2.0, "regressions": []},
        },
    },
    # The training run's human review (orchestration/approval.py): its answer, as promote's templates read it.
    "review_candidate": {"chosen_options": ["Approve"], "review": "approved", "reviewer": "ana", "reason": "checked"},
}


class FakeTI:
    try_number = 3

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> dict[str, Any]:
        return UPSTREAM_RESULTS[task_ids]


def _context(dag: Any) -> dict[str, Any]:
    run = SimpleNamespace(
        dag_id=dag.dag_id,
        run_id="scheduled__2026-09-14T02:00:00+00:00",
        logical_date=dt.datetime(2026, 9, 14, 2, tzinfo=dt.UTC),
        run_after=dt.datetime(2026, 9, 15, 2, tzinfo=dt.UTC),
        run_type="scheduled",
        conf={},
        consumed_asset_events=[],
    )
    params = {
        "partition": None,
        "action": "promote",
        "version": 7,
        "approver": "ana",
        "reason": "reviewed",
        "no_cache": False,
    }
    return {"dag_run": run, "params": params, "ti": FakeTI(), "dag": dag}


def _pod_argv_env(task: Any) -> tuple[list[str], dict[str, str]]:
    """The pod's argv and env, less the pod-only variables (which must all be there)."""
    from mlcycle.orchestration.kubernetes import POD_ONLY_ENV

    pod = task.build_pod_request_obj(dry_run=True)  # dry_run: no Kubernetes API client needed
    container = pod.spec.containers[0]
    env = {e.name: e.value for e in container.env or []}
    assert set(POD_ONLY_ENV) <= set(env), f"{task.task_id}: pod-only variables missing"
    return [*container.command, *container.args], {k: v for k, v in env.items() if k not in POD_ONLY_ENV}


def test_every_dag_has_step_tasks(both_modes: dict[str, tuple[Any, Any]]) -> None:
    steps = {task for _, task in _step_tasks(both_modes)}
    assert {"ingest", "validate", "features", "train", "evaluate", "promote", "score", "monitor"} <= steps


def test_kubernetes_mode_builds_pod_operators(both_modes: dict[str, tuple[Any, Any]]) -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    for dag_id, task_id in _step_tasks(both_modes):
        assert isinstance(both_modes[dag_id][1].get_task(task_id), KubernetesPodOperator)


def test_pod_runs_the_local_argv_and_env(both_modes: dict[str, tuple[Any, Any]]) -> None:
    pairs = _step_tasks(both_modes)
    assert pairs
    for dag_id, task_id in pairs:
        local_dag, k8s_dag = both_modes[dag_id]
        local, pod_task = local_dag.get_task(task_id), k8s_dag.get_task(task_id)
        argv, env = _pod_argv_env(pod_task)
        assert argv == local.argv, f"{dag_id}.{task_id}"
        assert env == local.env_vars, f"{dag_id}.{task_id}"
        assert argv[0] == "mlcycle" and argv[1] == local.arguments[0]


def test_rendered_argv_and_env_are_identical(both_modes: dict[str, tuple[Any, Any]]) -> None:
    for dag_id, task_id in _step_tasks(both_modes):
        local_dag, k8s_dag = both_modes[dag_id]
        local, pod_task = local_dag.get_task(task_id), k8s_dag.get_task(task_id)
        local.render_template_fields(_context(local_dag))
        pod_task.render_template_fields(_context(k8s_dag))
        argv, env = _pod_argv_env(pod_task)
        assert argv == local.argv
        assert env == local.env_vars
        assert "{{" not in " ".join(argv) + " ".join(env.values())
        assert argv[argv.index("--partition") + 1] == "2026-09-14"
        assert env["MLCYCLE_AIRFLOW_TRY_NUMBER"] == "3"
        # Templated options are one word each (`--flag=value`: a rendered value may start with `-`).
        if task_id == "evaluate":
            assert "--model-version=7" in argv
        if dag_id.endswith("_training") and task_id == "promote":
            assert "--decision=/data/yarnit/evaluation/ds=2026-09-14/v7" in argv


def test_pod_only_env_never_overrides_the_spec(both_modes: dict[str, tuple[Any, Any]]) -> None:
    from mlcycle.orchestration.kubernetes import POD_ENV, POD_ONLY_ENV

    assert set(POD_ONLY_ENV) == {*POD_ENV, "MLCYCLE_IMAGE"}
    for dag_id, task_id in _step_tasks(both_modes):
        local = both_modes[dag_id][0].get_task(task_id)
        assert not set(local.env_vars) & set(POD_ONLY_ENV), f"{dag_id}.{task_id}"


def test_the_gpu_step_runs_the_same_argv(both_modes: dict[str, tuple[Any, Any]]) -> None:
    local_dag, k8s_dag = both_modes["yarnit_gpu_training"]
    pod_task = k8s_dag.get_task("train")
    argv, env = _pod_argv_env(pod_task)
    assert argv == local_dag.get_task("train").argv and env == local_dag.get_task("train").env_vars
    assert pod_task.container_resources.limits["nvidia.com/gpu"] == "1"
    assert pod_task.image.endswith("-cuda")


def test_the_tune_step_runs_the_same_argv(both_modes: dict[str, tuple[Any, Any]]) -> None:
    local_dag, k8s_dag = both_modes["yarnit_tuned_training"]
    argv, env = _pod_argv_env(k8s_dag.get_task("tune"))
    assert argv == local_dag.get_task("tune").argv and env == local_dag.get_task("tune").env_vars
    assert argv[:2] == ["mlcycle", "tune"]
    assert k8s_dag.get_task("train").upstream_task_ids == {"tune"}
    assert "tune" not in both_modes["yarnit_training"][1].task_ids


def test_exit_codes_map_to_the_same_outcomes() -> None:
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

    from mlcycle.exitcodes import ExitCode
    from mlcycle.orchestration.operators import raise_for_exit_code

    raise_for_exit_code(ExitCode.OK, {}, "step")
    with pytest.raises(AirflowSkipException):
        raise_for_exit_code(ExitCode.NOTHING_TO_DO, {"reason": "no champion"}, "step")
    with pytest.raises(AirflowFailException, match="contract failed"):
        raise_for_exit_code(ExitCode.REJECTED, {"reason": "contract failed"}, "step")
    with pytest.raises(AirflowException) as caught:
        raise_for_exit_code(137, None, "step")
    assert not isinstance(caught.value, (AirflowFailException, AirflowSkipException))


def test_pod_operator_skips_on_nothing_to_do(both_modes: dict[str, tuple[Any, Any]]) -> None:
    from mlcycle.exitcodes import ExitCode

    for dag_id, task_id in _step_tasks(both_modes):
        pod_task = both_modes[dag_id][1].get_task(task_id)
        assert list(pod_task.skip_on_exit_code) == [int(ExitCode.NOTHING_TO_DO)]
        assert pod_task.do_xcom_push is True


def test_a_template_reading_a_missing_result_key_fails_naming_step_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlcycle.config import get_usecase
    from mlcycle.specs.results import ResultError

    monkeypatch.setenv("MLCYCLE_EXECUTION_MODE", "local")
    local_dag = build_dags(get_usecase("yarnit"))["yarnit_training"]  # unrendered (the fixture's are rendered)
    broken = copy.deepcopy(UPSTREAM_RESULTS["train"])
    del broken["metrics"]["model_version"]
    context = {**_context(local_dag), "ti": SimpleNamespace(try_number=3, xcom_pull=lambda task_ids, key=None: broken)}
    with pytest.raises(ResultError, match=r"train step's result .*metrics\.model_version: Field required"):
        local_dag.get_task("evaluate").render_template_fields(context)


def test_templates_name_only_fields_the_result_model_has() -> None:
    from mlcycle.orchestration.macros import upstream
    from mlcycle.specs.names import Step

    assert str(upstream(Step.TRAIN, "model_version")) == "{{ mlcycle_result(ti, 'train').model_version }}"
    with pytest.raises(AttributeError, match="train step's result model TrainResult has no 'version'"):
        upstream(Step.TRAIN, "version")


def test_options_reject_what_the_step_does_not_accept() -> None:
    from mlcycle.specs.catalog import IngestOptions, TrainOptions, ValidateOptions
    from mlcycle.specs.options import OptionsError, Template

    with pytest.raises(OptionsError, match=r"TrainOptions.cache: 'maybe'"):
        TrainOptions.for_task(cache="maybe")
    with pytest.raises(OptionsError, match=r"IngestOptions: no option\(s\) \['serving'\]"):
        IngestOptions.for_task(serving=True)
    with pytest.raises(OptionsError, match="a switch cannot be templated"):
        ValidateOptions.for_task(serving=Template("{{ params.serving }}"))
    assert ValidateOptions.for_task(lookback=30, serving=True).to_argv() == ["--lookback", "30", "--serving"]


def test_every_task_reaches_its_step_body_in_one_hop(both_modes: dict[str, tuple[Any, Any]]) -> None:
    """task id -> spec -> body: the body exists and takes the spec's options model (checked without importing it)."""
    import ast
    import importlib.util

    from mlcycle.specs.catalog import SPECS, spec_of

    for dag_id, task_id in _step_tasks(both_modes):
        assert spec_of(task_id).body in both_modes[dag_id][0].get_task(task_id).doc_md
    for command in SPECS:
        module, _, function = command.body.rpartition(".")
        found = importlib.util.find_spec(module)
        assert found is not None and found.origin, command.body
        tree = ast.parse(Path(found.origin).read_text())
        body = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function), None)
        assert body is not None, f"{command.body} is not defined"
        options = body.args.args[-1].annotation
        assert isinstance(options, ast.Name) and options.id == command.options.__name__, command.body
        if command.result is not None:  # every command but a service returns its typed result
            assert isinstance(body.returns, ast.Name) and body.returns.id == command.result.__name__, command.body


def test_every_rendered_task_argv_parses_back_into_its_steps_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """The DAG builds argv from the options model; the CLI, generated from the same model, reads it back."""
    from mlcycle.cli import build_parser
    from mlcycle.config import get_usecase
    from mlcycle.specs.catalog import spec_of

    monkeypatch.setenv("MLCYCLE_EXECUTION_MODE", "local")
    parser = build_parser()
    seen = set()
    for dag in build_dags(get_usecase("yarnit")).values():
        for task in dag.tasks:
            if not isinstance(task, LocalStepOperator):
                continue
            task.render_template_fields(_context(dag))
            options = spec_of(task.task_id).options.from_namespace(parser.parse_args(task.argv[1:]))
            seen.add((dag.dag_id, task.task_id, tuple(options.to_argv())))
    assert ("yarnit_training", "evaluate", ("--model-version", "7")) in seen
    assert ("yarnit_scoring", "validate", ("--lookback", "1", "--serving")) in seen


# ---- usage errors (issue 12, L1): exit 64 fails the task without retry in both launchers, naming the argument
EX_USAGE = 64  # sysexits.h; `ExitCode.USAGE`
USAGE_REASON = "usage: argument --partition: '2026-13-01' is not a date in YYYY-MM-DD form"


def test_a_usage_error_fails_without_retry_naming_the_argument() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from mlcycle.orchestration.operators import raise_for_exit_code

    with pytest.raises(AirflowFailException, match=r"usage error \(not retried\).*argument --partition"):
        raise_for_exit_code(EX_USAGE, {"status": "usage_error", "reason": USAGE_REASON}, "mlcycle ingest")


def _terminated_pod(container: str, code: int) -> Any:
    terminated = SimpleNamespace(state=SimpleNamespace(terminated=SimpleNamespace(exit_code=code)), name=container)
    return SimpleNamespace(status=SimpleNamespace(container_statuses=[terminated]), metadata=SimpleNamespace(name="p"))


@pytest.mark.parametrize("code", [EX_USAGE, 65])
def test_the_pod_operator_fails_a_usage_error_and_a_rejection_without_retry(
    both_modes: dict[str, tuple[Any, Any]], monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    def failed(*args: Any, **kwargs: Any) -> None:  # what KPO does with a failed pod: a plain (retried) failure
        raise AirflowException("Pod p returned a failure")

    monkeypatch.setattr(KubernetesPodOperator, "cleanup", failed)
    task = both_modes["yarnit_scoring"][1].get_task("ingest")
    pod = _terminated_pod(task.base_container_name, code)
    result = json.dumps({"status": "usage_error" if code == EX_USAGE else "rejected", "reason": USAGE_REASON})
    with pytest.raises(AirflowFailException, match="argument --partition"):
        task.cleanup(pod, pod, xcom_result=result)
    retried = _terminated_pod(task.base_container_name, 1)
    with pytest.raises(AirflowException) as caught:
        task.cleanup(retried, retried, xcom_result=None)
    assert not isinstance(caught.value, AirflowFailException)


def test_the_local_operator_fails_a_usage_error_without_retry_naming_the_argument(mlcycle_env: dict[str, str]) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    task = LocalStepOperator(
        task_id="ingest", cmds=["mlcycle"], arguments=["ingest", "--usecase", "yarnit", "--partition", "2026-13-01"]
    )
    with pytest.raises(AirflowFailException, match=r"usage error \(not retried\).*argument --partition"):
        task.execute({})
