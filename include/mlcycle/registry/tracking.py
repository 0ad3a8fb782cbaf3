"""MLflow conventions of mlcycle: one experiment per use case, one parent run per Airflow DAG run,
one registered model per use case, aliases (`@champion`, `@challenger`: `mlcycle.specs.names.ModelRole`) instead
of stages.
"""

from __future__ import annotations

import os
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    PERMISSION_DENIED,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    UNAUTHENTICATED,
    ErrorCode,
)
from mlflow.tracking import MlflowClient

from mlcycle import __version__
from mlcycle.config import UseCase
from mlcycle.runinfo import AirflowRun
from mlcycle.settings import ARTIFACT_ROOT_ENV, IMAGE_ENV
from mlcycle.tags import Tag

ROLE_TAG = Tag.ROLE


class RegistryError(RuntimeError):
    """MLflow failed to answer a registry question (auth, server error, unreachable, timeout).

    Never read as "no champion": the step fails with ERROR, Airflow retries it, and its failure alert names this.
    """


def _is(exc: MlflowException, code: int) -> bool:
    return exc.error_code == ErrorCode.Name(code)


def registry_error(exc: MlflowException, what: str) -> RegistryError:
    """A RegistryError saying what was asked, of which MLflow, and (for auth failures) what to check."""
    hint = ""
    if _is(exc, UNAUTHENTICATED):
        hint = " (MLflow refused the credentials: check MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD)"
    elif _is(exc, PERMISSION_DENIED):
        hint = " (the credentials lack permission on this registered model)"
    return RegistryError(f"MLflow at {mlflow.get_tracking_uri()} failed to {what}{hint}: {exc}")


def client() -> MlflowClient:
    return MlflowClient()


def ensure_experiment(usecase: UseCase) -> str:
    """The use case's experiment id (created on first use, artifacts under MLCYCLE_ARTIFACT_ROOT if set)."""
    existing = mlflow.get_experiment_by_name(usecase.experiment_name)
    if existing is not None:
        return str(existing.experiment_id)
    artifact_root = os.environ.get(ARTIFACT_ROOT_ENV)
    location = f"{artifact_root.rstrip('/')}/{usecase.name}" if artifact_root else None
    try:
        return str(
            mlflow.create_experiment(
                usecase.experiment_name,
                artifact_location=location,
                tags={Tag.USECASE: usecase.name, Tag.OWNER: usecase.owner},
            )
        )
    except MlflowException as exc:
        if not _is(exc, RESOURCE_ALREADY_EXISTS):
            raise
        # Created concurrently by another step: use that one.
        experiment = mlflow.get_experiment_by_name(usecase.experiment_name)
        assert experiment is not None
        return str(experiment.experiment_id)


def code_version() -> str:
    """The code that trains: MLCYCLE_CODE_VERSION (the image's git sha in production) or the package version."""
    return os.environ.get("MLCYCLE_CODE_VERSION", __version__)


def run_tags(airflow: AirflowRun, partition: str) -> dict[str, str]:
    return {
        **airflow.tags(),
        Tag.PARTITION: partition,
        Tag.CODE_VERSION: code_version(),
        Tag.IMAGE: os.environ.get(IMAGE_ENV, "local"),
    }


def parent_run(usecase: UseCase, airflow: AirflowRun, partition: str) -> str:
    """The parent run of this Airflow DAG run: found again on retries (no orphans), else created.

    Also makes the use case's experiment the active one, so child runs and logged models land in it.
    """
    experiment_id = ensure_experiment(usecase)
    mlflow.set_experiment(experiment_id=experiment_id)
    if airflow.run_id:
        found = mlflow.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.`{ROLE_TAG}` = 'parent' and tags.`airflow.dag_id` = '{airflow.dag_id}' "
                f"and tags.`airflow.run_id` = '{airflow.run_id}'"
            ),
            output_format="list",
            max_results=1,
        )
        if found:
            assert isinstance(found[0], Run)
            return str(found[0].info.run_id)
    name = f"{airflow.dag_id}/{airflow.run_id}" if airflow.run_id else f"manual/{partition}"
    run = client().create_run(experiment_id, run_name=name, tags={**run_tags(airflow, partition), ROLE_TAG: "parent"})
    client().set_terminated(run.info.run_id)
    return str(run.info.run_id)


def alias_version(usecase: UseCase, alias: str) -> ModelVersion | None:
    """The version an alias points to now, or None (no registered model or no such alias).

    Absence is read from MLflow's answer, never from a failure: 401, 403, 500, unreachable, a timeout raise
    RegistryError, so no step mistakes an MLflow outage for "no champion".
    """
    name = usecase.registered_model_name
    try:
        return client().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if not (_is(exc, RESOURCE_DOES_NOT_EXIST) or _is(exc, INVALID_PARAMETER_VALUE)):
            raise registry_error(exc, f"read @{alias} of {name}") from exc
        # MLflow answers a missing alias with INVALID_PARAMETER_VALUE, which a malformed request gets too:
        # absence is confirmed by the model's own alias list (or by the model not existing at all).
        unreadable = exc
    try:
        aliases = dict(client().get_registered_model(name).aliases)
    except MlflowException as exc:
        if _is(exc, RESOURCE_DOES_NOT_EXIST):
            return None
        raise registry_error(exc, f"read the aliases of {name}") from exc
    if alias in aliases:
        raise registry_error(unreadable, f"read @{alias} of {name} (it points at version {aliases[alias]})")
    return None


def model_version(usecase: UseCase, version: str) -> ModelVersion | None:
    """The registered version, or None when MLflow says it does not exist (any other failure: RegistryError)."""
    name = usecase.registered_model_name
    try:
        return client().get_model_version(name, version)
    except MlflowException as exc:
        if _is(exc, RESOURCE_DOES_NOT_EXIST):
            return None
        raise registry_error(exc, f"read version {version} of {name}") from exc


def all_versions(usecase: UseCase) -> list[ModelVersion]:
    """Every registered version of the use case's model, oldest first, with its aliases and tags.

    Search results carry no aliases, so each version is fetched once more by number.
    """
    name = usecase.registered_model_name
    numbers = sorted(int(v.version) for v in client().search_model_versions(f"name='{name}'"))
    return [client().get_model_version(name, str(number)) for number in numbers]


def model_uri(usecase: UseCase, version: str | int) -> str:
    """Models are always loaded by version, never by alias or "latest" (reproducible runs)."""
    return f"models:/{usecase.registered_model_name}/{version}"


def version_tags(usecase: UseCase, version: str | int) -> dict[str, str]:
    return dict(client().get_model_version(usecase.registered_model_name, str(version)).tags)


def set_version_tags(usecase: UseCase, version: str | int, tags: dict[str, Any]) -> None:
    for key, value in tags.items():
        client().set_model_version_tag(usecase.registered_model_name, str(version), key, str(value))
