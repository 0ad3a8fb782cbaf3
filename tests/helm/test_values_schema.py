"""values.yaml is the chart's API: every key is typed and documented in values.schema.json, unknown keys and
wrong types are refused with a readable message, at render and at lint."""

from __future__ import annotations

import json
from typing import Any

import helm_python
import pytest
import yaml

from support.helm_release import NAMESPACE, render_values
from support.kube_checks import CHART

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def _walk(values: dict[str, Any], schema: dict[str, Any], path: str = "") -> list[str]:
    """Keys of `values` the schema does not type and document, and objects it leaves open."""
    problems = []
    if schema.get("additionalProperties") is not False and "properties" in schema:
        problems.append(f"{path or '<root>'}: unknown keys are not rejected")
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        sub = (schema.get("properties") or {}).get(key)
        if sub is None:
            problems.append(f"{where}: not in values.schema.json")
            continue
        if not sub.get("type") or not sub.get("description"):
            problems.append(f"{where}: no type or description")
        if isinstance(value, dict) and "properties" in sub:
            problems += _walk(value, sub, where)
    return problems


def test_every_key_is_typed_documented_and_closed() -> None:
    assert _walk(VALUES, SCHEMA) == []


def test_the_defaults_satisfy_the_schema() -> None:
    chart = helm_python.Chart.load(CHART)
    try:
        chart.validate_schema(VALUES)
    finally:
        chart.close()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"imagee": {"tag": "1.0"}}, "at '': additional properties 'imagee' not allowed"),
        ({"mlflow": {"replicas": "two"}}, "at '/mlflow/replicas': got string, want integer"),
        ({"cleanup": {"schedule": "every hour"}}, "at '/cleanup/schedule'"),
        ({"podSecurity": {"runAsUser": 0}}, "at '/podSecurity/runAsUser'"),
        ({"image": {"digest": "latest"}}, "at '/image/digest'"),
        ({"tasks": {"pipeline": {"extraEnv": {"DB_PASSWORD": "hunter2"}}}}, "invalid propertyName 'DB_PASSWORD'"),
        ({"tasks": {"pipeline": {"storageRoot": "gs://bucket"}}}, "at '/tasks/pipeline/storageRoot'"),
        ({"networkPolicy": {"databasePort": 70000}}, "at '/networkPolicy/databasePort': maximum"),
        ({"mlflow": {"resources": {"requests": {"cpu": "lots"}}}}, "at '/mlflow/resources/requests/cpu'"),
    ],
)
def test_a_broken_value_is_rejected_with_a_readable_error(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as caught:
        render_values(values)
    assert message in str(caught.value), str(caught.value)


def test_lint_reports_a_broken_value_too() -> None:
    report = helm_python.lint(CHART, {"networkPolicy": {"enabled": "yes"}}, strict=True, namespace=NAMESPACE)
    assert any("at '/networkPolicy/enabled': got string, want boolean" in e for e in report["errors"])


def test_chart_values_hold_no_secret() -> None:
    """Secrets are Secret names: no key of the API takes a password, token or key."""
    secret_words = ("password", "token", "accesskey", "secretkey")

    def leaves(schema: dict[str, Any], path: str = "") -> list[str]:
        found = []
        for key, sub in (schema.get("properties") or {}).items():
            found.append(f"{path}.{key}".lower())
            found += leaves(sub, f"{path}.{key}")
        return found

    offenders = [
        p
        for p in leaves(SCHEMA)
        if any(w in p.rsplit(".", 1)[-1] for w in secret_words) and not p.endswith(("key", "secret"))
    ]
    assert offenders == []
