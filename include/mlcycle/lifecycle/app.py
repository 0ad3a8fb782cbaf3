"""The lifecycle page's FastAPI app, mounted by Airflow's api-server (`plugins/mlcycle_lifecycle.py`).

Routes (under the mount's prefix, `/mlcycle`):
- `/lifecycle/`: the use cases (those whose DAGs the signed-in user may read);
- `/lifecycle/usecases/<name>`: one use case's page (`mlcycle.lifecycle.view` + `mlcycle.lifecycle.page`);
- `/lifecycle/dags/<dag_id>`: the page of the use case a DAG belongs to (the "ML lifecycle" tab of a DAG).

Airflow does not protect a plugin's app by itself: every route resolves the user from Airflow's own JWT (the
UI's `_token` cookie or a bearer token) with the api-server's `get_user`, and asks the auth manager whether that
user may read the use case's DAGs (their human-in-the-loop details, for the approvals).
"""

from __future__ import annotations

from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse

from mlcycle.config import UseCaseConfigError, discover, get_usecase
from mlcycle.lifecycle.airflow_db import pending_approvals
from mlcycle.lifecycle.mlflow_rest import MlflowRest
from mlcycle.lifecycle.page import index_page, usecase_page
from mlcycle.lifecycle.store import JsonStore
from mlcycle.lifecycle.view import Approval, Links, build_view
from mlcycle.orchestration.links import mlflow_ui_url
from mlcycle.settings import storage_root
from mlcycle.specs.names import DagFamily, UnknownDagError, parse_dag_id

#: Where the api-server mounts the app (`fastapi_apps`' url_prefix) and the page's path under it.
URL_PREFIX = "/mlcycle"
PAGE_PATH = "/lifecycle"

User = Annotated[BaseUser, Depends(get_user)]


def _may_read(user: BaseUser, dag_id: str, entity: DagAccessEntity | None = None) -> bool:
    return bool(
        get_auth_manager().is_authorized_dag(
            method="GET", access_entity=entity, details=DagDetails(id=dag_id), user=user
        )
    )


def _airflow_base(request: Request) -> str:
    """Airflow UI's path prefix as the browser sees it (the mount's root path without our prefix)."""
    root = str(request.scope.get("root_path", ""))
    return root[: -len(URL_PREFIX)] if root.endswith(URL_PREFIX) else ""


def create_app() -> FastAPI:
    app = FastAPI(title="mlcycle lifecycle page", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get(f"{PAGE_PATH}/", response_class=HTMLResponse)
    def index(user: User) -> str:
        found = discover()
        readable = [
            (u.name, u.description) for u in found.usecases if _may_read(user, DagFamily.TRAINING.dag_id(u.name))
        ]
        return index_page(readable, [str(error) for error in found.errors])

    @app.get(f"{PAGE_PATH}/usecases/{{name}}", response_class=HTMLResponse)
    def usecase(name: str, request: Request, user: User) -> str:
        try:
            config = get_usecase(name)
        except UseCaseConfigError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        dag_ids = [family.dag_id(config.name) for family in DagFamily]
        if not all(_may_read(user, dag_id) for dag_id in dag_ids):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"you may not read the DAGs of use case {name}")
        links = Links(mlflow=mlflow_ui_url(), airflow=_airflow_base(request))

        def approvals(ids: Any) -> list[Approval]:
            return pending_approvals([d for d in ids if _may_read(user, d, DagAccessEntity.HITL_DETAIL)], links)

        view = build_view(config, JsonStore(storage_root()), MlflowRest.from_env(), links, approvals)
        return usecase_page(view)

    @app.get(f"{PAGE_PATH}/dags/{{dag_id}}")
    def for_dag(dag_id: str) -> RedirectResponse:
        try:
            name, _ = parse_dag_id(dag_id)
        except UnknownDagError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{exc}: not a DAG of an mlcycle use case") from None
        # Relative: the same server, whatever prefix Airflow is served under.
        return RedirectResponse(f"../usecases/{name}", status_code=status.HTTP_307_TEMPORARY_REDIRECT)

    return app
