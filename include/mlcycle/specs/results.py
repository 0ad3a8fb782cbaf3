"""Typed step results: what downstream readers (DAG templates, the retraining policy, links) take from a step.

A step prints its result as JSON (the task's XCom). These models name the keys other processes read, so a
step that drops or renames one fails loudly where it is read (`parse_result`: the error names the step and
the key) instead of being read as a default. Keys nobody reads pass through unchanged (`extra="allow"`):
the JSON shape of every step stays what it was. Standard library and pydantic only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


class ResultError(ValueError):
    """A step result lacks a key a downstream reader needs (or has it with the wrong type)."""


class Part(BaseModel):
    """A section of a result (`outputs`, `metrics`, ...): the keys read downstream, typed; the rest kept."""

    model_config = ConfigDict(extra="allow", frozen=True)


OutputsT = TypeVar("OutputsT", bound=Part)
MetricsT = TypeVar("MetricsT", bound=Part)


class StepResultModel(BaseModel, Generic[OutputsT, MetricsT]):
    """The envelope every step's result shares."""

    model_config = ConfigDict(extra="allow", frozen=True)

    status: str
    step: str
    usecase: str
    partition: str
    outputs: OutputsT
    metrics: MetricsT
    reason: str = ""

    @classmethod
    def of(
        cls,
        step: str,
        usecase: str,
        partition: str,
        *,
        outputs: Mapping[str, Any],
        metrics: Mapping[str, Any],
        reason: str = "",
    ) -> Self:
        """A successful step's result, validated now: the step fails, not its reader, when a key is missing."""
        document: dict[str, Any] = {
            "status": "success",
            "step": str(step),
            "usecase": usecase,
            "partition": partition,
            "outputs": dict(outputs),
            "metrics": dict(metrics),
        }
        if reason:
            document["reason"] = reason
        return parse_result(cls, str(step), document)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (the task's XCom): exactly the keys the step set, as `StepResult.to_dict` writes them."""
        document = self.model_dump(exclude_unset=True)
        if not document.get("reason"):
            document.pop("reason", None)
        return document


class AnyResult(StepResultModel[Part, Part]):
    """The result of a step whose outputs and metrics nobody downstream reads by key."""


class TrainOutputs(Part):
    model_uri: str
    features: str


class TrainMetrics(Part):
    model_version: str
    run_id: str
    parent_run_id: str


class TrainResult(StepResultModel[TrainOutputs, TrainMetrics]):
    @property
    def model_version(self) -> str:
        """The registered version trained (or reused from the cache): what `evaluate` judges."""
        return self.metrics.model_version


class EvaluateOutputs(Part):
    decision: str


class EvaluateMetrics(Part):
    decision: Literal["promote", "reject", "needs_manual_review"]
    candidate_version: str


class EvaluateResult(StepResultModel[EvaluateOutputs, EvaluateMetrics]):
    @property
    def decision_uri(self) -> str:
        """Where the gate's decision record lies: what `promote` applies."""
        return self.outputs.decision


class PredictionDrift(Part):
    status: Literal["computed", "pending"]
    drifted: bool = False
    score: float | None = None
    stattest: str | None = None
    reason: str = ""


class Performance(Part):
    status: Literal["computed", "pending"]
    partition: str
    metric: str = ""
    value: float | None = None
    reference: float | None = None
    drop: float | None = None
    reason: str | None = None

    @model_validator(mode="after")
    def _computed_has_figures(self) -> Performance:
        missing = [k for k in ("value", "reference", "drop") if self.status == "computed" and getattr(self, k) is None]
        if missing:
            raise ValueError(f"a computed performance needs {missing}")
        return self


class MonitorOutputs(Part):
    report: str
    monitoring: str


class MonitorMetrics(Part):
    dataset_drift: bool
    drift_share: float
    drifted_columns: list[str]
    prediction_drift: PredictionDrift
    performance: Performance
    new_labelled_rows: int
    champion_version: str


class MonitorResult(StepResultModel[MonitorOutputs, MonitorMetrics]):
    """What the retraining policy reads: dataset drift, prediction drift, performance, new labelled rows."""


ResultT = TypeVar("ResultT", bound=StepResultModel[Any, Any])


def parse_result(model: type[ResultT], step: str, document: Any) -> ResultT:
    """`document` (a step's JSON result) validated into `model`; a `ResultError` naming the step and the keys."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '$'}: {error['msg']}" for error in exc.errors()
        )
        raise ResultError(f"the {step} step's result lacks what is read from it: {problems}") from None
