"""The few MLflow REST calls the lifecycle page needs (standard library only: no `mlflow` in the api-server).

Which server: `MLFLOW_TRACKING_URI` when it is an http(s) address (the same setting and credentials the steps
use: `MLFLOW_TRACKING_USERNAME`/`MLFLOW_TRACKING_PASSWORD`, or `MLFLOW_TRACKING_TOKEN`); with a database or file
tracking URI (the embedded default) only an MLflow server on that store answers REST calls, so the page asks the
MLflow UI server users reach (`MLCYCLE_MLFLOW_UI_URL`, the one `make ui` starts on the same store).

Every failure (refused connection, timeout, 401/403, 5xx, a body that is not JSON) is an `MlflowUnavailable`
naming the server and the call: the page shows it as an error, never as "no champion". Only MLflow's own
RESOURCE_DOES_NOT_EXIST answer means absence.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mlcycle.orchestration.links import DEFAULT_MLFLOW_UI_URL, MLFLOW_UI_URL_ENV

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
USERNAME_ENV, PASSWORD_ENV, TOKEN_ENV = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"
NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
# A page view makes a handful of calls; a server that does not answer within this must not hang the page.
TIMEOUT_S = 10.0
_PAGE = 1000


class MlflowUnavailable(RuntimeError):
    """MLflow did not answer a question the page asked (or answered with an error): shown as an error."""


class MlflowNotFound(LookupError):
    """MLflow answered RESOURCE_DOES_NOT_EXIST: the thing asked for does not exist (yet)."""


def rest_url(environ: Mapping[str, str] | None = None) -> str:
    """The MLflow server whose REST API the page reads (see the module doc)."""
    env = os.environ if environ is None else environ
    tracking = env.get(TRACKING_URI_ENV, "")
    if tracking.startswith(("http://", "https://")):
        return tracking.rstrip("/")
    return (env.get(MLFLOW_UI_URL_ENV) or DEFAULT_MLFLOW_UI_URL).rstrip("/")


@dataclass(frozen=True)
class MlflowRest:
    """One MLflow server's REST API, read-only."""

    base_url: str
    username: str = ""
    password: str = ""
    token: str = ""
    timeout: float = TIMEOUT_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MlflowRest:
        env = os.environ if environ is None else environ
        return cls(
            rest_url(environ),
            username=env.get(USERNAME_ENV, ""),
            password=env.get(PASSWORD_ENV, ""),
            token=env.get(TOKEN_ENV, ""),
        )

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.username:
            basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        return headers

    def call(self, method: str, path: str, query: Mapping[str, Any] | None = None, body: Any = None) -> dict[str, Any]:
        """One REST call -> its JSON object; MlflowNotFound for RESOURCE_DOES_NOT_EXIST, else MlflowUnavailable."""
        url = f"{self.base_url}/api/2.0/mlflow/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=self._headers())
        what = f"MLflow at {self.base_url}: {method} {path}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")
            if _error_code(text) == NOT_FOUND:
                raise MlflowNotFound(f"{what}: {text[:300]}") from None
            hint = " (check MLFLOW_TRACKING_USERNAME/PASSWORD on the api-server)" if exc.code in (401, 403) else ""
            raise MlflowUnavailable(f"{what} answered HTTP {exc.code}{hint}: {text[:300]}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise MlflowUnavailable(f"{what} failed: {reason}") from None
        try:
            loaded = json.loads(payload or b"{}")
        except ValueError:
            raise MlflowUnavailable(f"{what} answered something that is not JSON: {payload[:200]!r}") from None
        if not isinstance(loaded, dict):
            raise MlflowUnavailable(f"{what} answered a {type(loaded).__name__}, not a JSON object")
        return loaded

    # ---- the questions the page asks ----

    def aliases(self, model: str) -> dict[str, str]:
        """alias -> version of a registered model; {} when the model is not registered yet."""
        try:
            found = self.call("GET", "registered-models/get", {"name": model})
        except MlflowNotFound:
            return {}
        entries = found.get("registered_model", {}).get("aliases", [])
        return {str(entry["alias"]): str(entry["version"]) for entry in entries}

    def model_versions(self, model: str) -> list[dict[str, Any]]:
        """Every version of a registered model (MLflow's JSON, tags as a dict), oldest first."""
        versions = [
            {**raw, "tags": {t["key"]: t.get("value", "") for t in raw.get("tags", [])}}
            for raw in self._pages(
                "GET", "model-versions/search", "model_versions", {"filter": f"name='{_quote(model)}'"}
            )
        ]
        return sorted(versions, key=lambda v: int(v["version"]))

    def experiment_id(self, name: str) -> str | None:
        """The id of the experiment called `name`; None when it does not exist."""
        try:
            found = self.call("GET", "experiments/get-by-name", {"experiment_name": name})
        except MlflowNotFound:
            return None
        return str(found["experiment"]["experiment_id"])

    def runs(self, experiment_id: str, filter_string: str) -> list[dict[str, Any]]:
        """Runs of an experiment matching an MLflow filter, newest first (MLflow's JSON, tags as a dict)."""
        body = {"experiment_ids": [experiment_id], "filter": filter_string, "order_by": ["attributes.start_time DESC"]}
        return [
            {"info": raw["info"], "tags": {t["key"]: t.get("value", "") for t in raw.get("data", {}).get("tags", [])}}
            for raw in self._pages("POST", "runs/search", "runs", body=body)
        ]

    def _pages(
        self,
        method: str,
        path: str,
        key: str,
        query: Mapping[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        token = ""
        while True:
            paging: dict[str, Any] = {"max_results": _PAGE, **({"page_token": token} if token else {})}
            if method == "GET":
                page = self.call(method, path, {**(query or {}), **paging})
            else:
                page = self.call(method, path, body={**(body or {}), **paging})
            yield from page.get(key, [])
            token = str(page.get("next_page_token") or "")
            if not token:
                return


def _quote(value: str) -> str:
    """A value inside an MLflow filter's single quotes."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _error_code(text: str) -> str:
    try:
        loaded = json.loads(text)
    except ValueError:
        return ""
    return str(loaded.get("error_code", "")) if isinstance(loaded, dict) else ""
