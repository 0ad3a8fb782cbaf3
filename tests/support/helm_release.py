"""Rendering helm/mlcycle with Helm's own engine (the Go SDK embedded in helm-python-sdk), offline."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import helm_python
import yaml

from support.kube_checks import CHART

RELEASE = "mlcycle"
NAMESPACE = "mlcycle"
#: The values sets rendered by every chart test: the defaults and helm/mlcycle/ci/<name>-values.yaml.
VALUE_SETS = ("default", "production", "gpu")


def values_of(name: str) -> dict[str, Any]:
    if name == "default":
        return {}
    loaded: dict[str, Any] = yaml.safe_load((CHART / "ci" / f"{name}-values.yaml").read_text())
    return loaded


@dataclass(frozen=True)
class Rendered:
    name: str
    values: dict[str, Any]
    manifests: tuple[dict[str, Any], ...]
    notes: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.manifests if m["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [m for m in self.of_kind(kind) if m["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
        return found[0]


def render_values(values: dict[str, Any], name: str = "custom") -> Rendered:
    """Render the chart like `helm template mlcycle helm/mlcycle -n mlcycle -f ...` (schema checked first)."""
    chart = helm_python.Chart.load(CHART)
    try:
        files = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    finally:
        chart.close()
    manifests: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        manifests += [doc for doc in yaml.safe_load_all(text) if doc]
    return Rendered(name, values, tuple(manifests), notes)


@functools.cache
def render(name: str) -> Rendered:
    return render_values(values_of(name), name)
