"""`mlcycle lineage`: one question (a prediction, a partition, a model version) -> its chain, as text or JSON."""

from __future__ import annotations

import sys
from typing import Any

from mlcycle.lineage.trace import UNKNOWN, LineageQueryError, Tracer
from mlcycle.specs.catalog import LineageOptions
from mlcycle.specs.names import ModelRole, Tool
from mlcycle.specs.results import LineageResult
from mlcycle.steps.base import Rejected, StepContext


def trace(tracer: Tracer, options: LineageOptions) -> dict[str, Any]:
    """The lineage document answering `options`' one question."""
    if options.prediction_id:
        day, role, row = tracer.find_prediction(options.prediction_id, options.partition)
        predictions = tracer.predictions(day, role)
        version = predictions["model_version"]
        return {
            "prediction": {k: str(v) for k, v in row.items()},
            "predictions": predictions,
            "model": tracer.model(version) if isinstance(version, str) else predictions["model_version"],
        }
    if options.model_version:
        model = tracer.model(options.model_version)
        return {"model": model, "forward": {"predictions": tracer.predictions_by({options.model_version})}}
    assert options.partition is not None  # LineageOptions asks exactly one question
    if options.role is not None:
        predictions = tracer.predictions(options.partition, ModelRole(options.role))
        version = predictions["model_version"]
        model = tracer.model(version) if isinstance(version, str) else version
        return {"predictions": predictions, "model": model}
    trained = tracer.models_trained_on(options.partition)
    versions = {m["version"] for m in trained["models"]}
    forward: dict[str, Any] = {**trained, "predictions": tracer.predictions_by(versions)}
    if not trained["models"]:
        forward["summary"] = f"no model was trained on {options.partition}"
    return {"data": tracer.data_partition(options.partition), "forward": forward}


def render(document: Any, indent: int = 0) -> list[str]:
    """The document as indented text; a missing link reads `unknown (<reason>)`."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if isinstance(value, dict) and set(value) == {UNKNOWN}:
                lines.append(f"{pad}{key}: UNKNOWN ({value[UNKNOWN]})")
            elif isinstance(value, dict | list) and value:
                lines.append(f"{pad}{key}:")
                lines += render(value, indent + 1)
            else:
                lines.append(f"{pad}{key}: {_scalar(value)}")
    elif isinstance(document, list):
        for item in document:
            if isinstance(item, dict) and set(item) == {UNKNOWN}:
                lines.append(f"{pad}- UNKNOWN ({item[UNKNOWN]})")
            elif isinstance(item, dict | list):
                nested = render(item, indent + 1)
                lines.append(f"{pad}- {nested[0].strip()}" if nested else f"{pad}-")
                lines += nested[1:]
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(f"{pad}{_scalar(document)}")
    return lines


def _scalar(value: Any) -> str:
    if value in (None, [], {}):
        return "-" if value is None else "none"
    return str(value)


def main(ctx: StepContext, options: LineageOptions) -> LineageResult:
    tracer = Tracer(ctx.usecase, ctx.storage)
    query = options.model_dump(mode="json", exclude_none=True, exclude={"as_json"})
    try:
        lineage = trace(tracer, options)
    except LineageQueryError as exc:  # the question has no answer: a person must ask another one
        raise Rejected(str(exc), query=query) from None
    if not options.as_json:
        title = f"lineage of {ctx.usecase.name}: " + ", ".join(f"{k}={v}" for k, v in query.items())
        text = [title, *render(lineage)]
        if tracer.unknown:
            text += ["", f"{len(tracer.unknown)} link(s) unknown:", *(f"  - {u}" for u in tracer.unknown)]
        sys.stdout.write("\n".join(text) + "\n\n")
        sys.stdout.flush()
    return LineageResult.of(
        Tool.LINEAGE,
        ctx.usecase.name,
        options.partition.isoformat() if options.partition else "",
        outputs={},
        metrics={"query": query, "lineage": lineage, "unknown": tracer.unknown},
    )
