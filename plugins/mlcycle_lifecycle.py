"""Airflow plugin: the "ML lifecycle" page in Airflow's UI (a nav entry, and a tab on every DAG's page).

The page is a FastAPI app (`mlcycle.lifecycle.app`) that Airflow's api-server mounts at `/mlcycle`; the UI shows
it in its frame through `external_views`. Every Airflow component imports plugins, the dag-processor included:
this file imports only Airflow's plugin base class, and the app (FastAPI, Airflow's auth, the page's modules) is
built on the first request the api-server routes to it. See docs/ui.md.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/mlcycle"  # mlcycle.lifecycle.app.URL_PREFIX (not imported here: see the module doc)


class _LifecycleApp:
    """An ASGI app that builds the real one on its first call (only ever in the api-server)."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from mlcycle.lifecycle.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class MlcycleLifecyclePlugin(AirflowPlugin):
    name = "mlcycle_lifecycle"
    fastapi_apps = [{"app": _LifecycleApp(), "url_prefix": URL_PREFIX, "name": "mlcycle lifecycle page"}]
    external_views = [
        # Relative hrefs: Airflow's UI resolves them against its own base URL.
        {"name": "ML lifecycle", "href": "mlcycle/lifecycle/", "url_route": "ml-lifecycle", "destination": "nav"},
        {
            "name": "ML lifecycle",
            "href": "mlcycle/lifecycle/dags/{DAG_ID}",
            "url_route": "ml-lifecycle-dag",
            "destination": "dag",
        },
    ]
