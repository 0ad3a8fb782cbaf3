"""M5: `profile: production` refuses an insecure release at install/upgrade (values.schema.json): explicit CIDRs
(no 0.0.0.0/0 or ::/0 anywhere a NetworkPolicy opens egress), NetworkPolicies and the admission policy on, and
credentials never in clear text: MLflow's and Airflow's URLs are https:// unless the release declares that a
service mesh encrypts pod-to-pod traffic with mutual TLS (transport.meshMtls). `profile: dev` keeps the open
defaults for a first try."""

from __future__ import annotations

import copy
from typing import Any

import helm_python
import pytest

from support.helm_release import render_values, values_of

PRODUCTION = values_of("production")


def _with(change: dict[str, Any], base: dict[str, Any] = PRODUCTION) -> dict[str, Any]:
    """`base` with `change` merged in (nested dicts merged, everything else replaced)."""

    def merge(into: dict[str, Any], update: dict[str, Any]) -> None:
        for key, value in update.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    merged = copy.deepcopy(base)
    merge(merged, change)
    return merged


def test_the_production_example_is_a_production_profile() -> None:
    assert PRODUCTION["profile"] == "production"
    render_values(PRODUCTION)  # accepted


def test_a_production_profile_without_a_mesh_is_accepted_with_tls_urls() -> None:
    tls = _with(
        {
            "transport": {"meshMtls": False},
            "airflow": {"apiUrl": "https://airflow-api-server.airflow.svc.cluster.local:8443"},
            "tasks": {"pipeline": {"mlflowTrackingUri": "https://mlflow.acme.example"}},
        }
    )
    render_values(tls)


def test_the_dev_profile_keeps_the_open_defaults() -> None:
    rendered = render_values({})
    assert rendered.values == {}
    render_values({"profile": "dev", "transport": {"meshMtls": False}})


NO_MESH = {"transport": {"meshMtls": False}}
HTTPS = {
    "airflow": {"apiUrl": "https://airflow.example:8443"},
    "tasks": {"pipeline": {"mlflowTrackingUri": "https://mlflow.example"}},
}


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"networkPolicy": {"externalHttpsCidrs": ["0.0.0.0/0"]}}, "/networkPolicy/externalHttpsCidrs/0"),
        ({"networkPolicy": {"externalHttpsCidrs": ["10.0.0.0/8", "::/0"]}}, "/networkPolicy/externalHttpsCidrs/1"),
        ({"networkPolicy": {"databaseCidrs": ["0.0.0.0/0"]}}, "/networkPolicy/databaseCidrs/0"),
        ({"networkPolicy": {"apiServerCidrs": ["0.0.0.0/0"]}}, "/networkPolicy/apiServerCidrs/0"),
        ({"networkPolicy": {"enabled": False}}, "/networkPolicy/enabled"),
        ({"tasks": {"admissionPolicy": {"enabled": False}}}, "/tasks/admissionPolicy/enabled"),
        ({**NO_MESH, **HTTPS, "airflow": {"apiUrl": "http://airflow:8080"}}, "/airflow/apiUrl"),
        (
            {**NO_MESH, "airflow": HTTPS["airflow"], "tasks": {"pipeline": {"mlflowTrackingUri": ""}}},
            "/tasks/pipeline/mlflowTrackingUri",
        ),
        (
            {**NO_MESH, "airflow": HTTPS["airflow"], "tasks": {"pipeline": {"mlflowTrackingUri": "http://mlflow"}}},
            "/tasks/pipeline/mlflowTrackingUri",
        ),
    ],
)
def test_an_insecure_production_profile_is_rejected_naming_the_key(change: dict[str, Any], key: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as caught:
        render_values(_with(change))
    assert f"at '{key}'" in str(caught.value), str(caught.value)


def test_the_defaults_are_not_a_production_release() -> None:
    """Asking for production on top of the defaults (open CIDRs, plain HTTP, no mesh) fails at install."""
    with pytest.raises(helm_python.HelmValuesError) as caught:
        render_values({"profile": "production"})
    message = str(caught.value)
    assert "/networkPolicy/externalHttpsCidrs/0" in message and "/airflow/apiUrl" in message, message
