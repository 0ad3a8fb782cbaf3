"""What a step task declares to OpenLineage: its input and output datasets, from the step's JSON result.

Both launchers (`LocalStepOperator`, `StepPodOperator`) implement `get_openlineage_facets_on_complete` with
`step_lineage`, so Airflow's OpenLineage provider emits each step's run events with its datasets:
partition URIs (`<root>/<usecase>/<dataset>/ds=<D>[/role=R]`: the partition is in the name) and model versions
(`models:/<registered model>/<version>`, with the version as the dataset's version facet). The result's
`inputs` (what the step read) and its URI-valued `outputs` (what it wrote) are the whole declaration: nothing
is guessed from the task's name. The OpenLineage client is imported only when the provider asks (never at parse).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: The OpenLineage namespace of MLflow registry datasets (`models:/<name>/<version>`).
MODEL_NAMESPACE = "mlflow"
_MODELS = "models:/"


def dataset_name(uri: str) -> tuple[str, str]:
    """(namespace, name) of a URI, after OpenLineage's naming: `s3://bucket` + key; `file` + absolute path;
    `mlflow` + `<model>/<version>`."""
    if uri.startswith(_MODELS):
        return MODEL_NAMESPACE, uri.removeprefix(_MODELS)
    if uri.startswith("s3://"):
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return f"s3://{bucket}", key
    return "file", uri.removeprefix("file://")


def _uris(values: Iterable[Any]) -> list[str]:
    found: list[str] = []
    for value in values:
        items = value if isinstance(value, list) else [value]
        found += [v for v in items if isinstance(v, str) and (v.startswith(("/", _MODELS)) or "://" in v)]
    return found


def declared(result: dict[str, Any] | None) -> tuple[list[str], list[str]]:
    """(inputs, outputs) of a step result. An output nested in another (a report inside its partition) or also
    read (train names its features) is not an output of its own."""
    if not isinstance(result, dict):
        return [], []
    inputs = list(dict.fromkeys(_uris((result.get("inputs") or {}).values())))
    written = list(dict.fromkeys(_uris((result.get("outputs") or {}).values())))
    outputs = [
        uri
        for uri in written
        if uri not in inputs and not any(uri != other and uri.startswith(f"{other}/") for other in written)
    ]
    return inputs, outputs


def step_lineage(result: dict[str, Any] | None) -> Any:
    """The provider's `OperatorLineage` for a step's result (None: a step that printed none declares nothing)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.generated.dataset_version_dataset import DatasetVersionDatasetFacet

    def dataset(uri: str) -> Any:
        namespace, name = dataset_name(uri)
        facets: dict[str, Any] = {}
        if namespace == MODEL_NAMESPACE:
            facets["version"] = DatasetVersionDatasetFacet(datasetVersion=name.rsplit("/", 1)[-1])
        return Dataset(namespace=namespace, name=name, facets=facets)

    inputs, outputs = declared(result)
    return OperatorLineage(inputs=[dataset(u) for u in inputs], outputs=[dataset(u) for u in outputs])
