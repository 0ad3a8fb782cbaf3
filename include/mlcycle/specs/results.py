"""Typed step results: what downstream readers (DAG templates, the retraining policy, links) take from a step.

A step prints its result as JSON (the task's XCom). These models name the keys other processes read, so a
step that drops or renames one fails loudly where it is read (`parse_result`: the error names the step and
the key) instead of being read as a default. Keys nobody reads pass through unchanged (`extra="allow"`):
the JSON shape of every step stays what it was. Standard library and pydantic only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

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
        inputs: Mapping[str, str | list[str]] | None = None,
    ) -> Self:
        """A successful step's result, validated now: the step fails, not its reader, when a key is missing.

        `inputs` names what the step read (partition URIs, a `models:/` URI): with `outputs` it is what the
        launchers declare to OpenLineage (`mlcycle.orchestration.openlineage`).
        """
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
        if inputs:
            document["inputs"] = dict(inputs)
        return parse_result(cls, str(step), document)

    @property
    def mlflow_run_id(self) -> str:
        """The MLflow run the step logged to, "" when it names none (the "MLflow run" link)."""
        return ""

    @property
    def mlflow_experiment_id(self) -> str:
        """That run's experiment, "" when the result does not name it."""
        return ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (the task's XCom): exactly the keys the step set (defaults it left unset are not written)."""
        document = self.model_dump(exclude_unset=True)
        if not document.get("reason"):
            document.pop("reason", None)
        return document


class TrainOutputs(Part):
    model_uri: str
    features: str


class TrainMetrics(Part):
    model_version: str
    run_id: str
    parent_run_id: str


class TrainResult(StepResultModel[TrainOutputs, TrainMetrics]):
    @property
    def mlflow_run_id(self) -> str:
        """The candidate's own run (a child of the DAG run's parent run)."""
        return self.metrics.run_id

    @property
    def model_version(self) -> str:
        """The registered version trained (or reused from the cache): what `evaluate` judges."""
        return self.metrics.model_version


class TuneOutputs(Part):
    best_params: str  # the tuning partition train reads


class TuneMetrics(Part):
    search_run_id: str  # the MLflow run of the search whose parameters train uses (`mlcycle.tuned_from`)
    reused: bool  # True: a search run fewer than `model.search.every` days before was reused, none ran now
    searched_on: str  # the partition that search ran on
    metric: str
    best_valid_score: float
    trials: int  # fits the search made (0 when reused)
    stopped_by: Literal["trials", "time", "reused"]


class TuneResult(StepResultModel[TuneOutputs, TuneMetrics]):
    @property
    def mlflow_run_id(self) -> str:
        """The search run (its trials are its nested runs)."""
        return self.metrics.search_run_id


class EvaluateOutputs(Part):
    decision: str
    mlflow_run_id: str = ""
    # Absent from results written before the review's model card link needed it.
    mlflow_experiment_id: str = ""


class ComputeRegression(Part):
    """One computing-performance figure of the candidate worse than ``factor`` times the champion's (ML Test Score,
    Monitoring 6): what the decision record, the gate's warning or reason and the `compute-regression` alert say."""

    #: Every regression's text starts so: a reader of the record's warnings (and the container comparison, which
    #: leaves timings out) can tell them apart.
    PREFIX: ClassVar[str] = "computing performance:"

    figure: str  # the run metric: fit_seconds, train_peak_memory_mb, latency_p95_ms, throughput_rows_s
    candidate: float
    champion: float
    worse_by: float  # how many times worse than the champion's (for throughput: the champion's / the candidate's)
    factor: float  # the use case's `compute_regression_factor` it exceeded

    @property
    def text(self) -> str:
        return (
            f"{self.PREFIX} {self.figure} {self.candidate:.4g} vs champion {self.champion:.4g} "
            f"({self.worse_by:.1f}x worse, factor {self.factor})"
        )


class ComputeComparison(Part):
    """The candidate's computing performance against the champion's, as evaluate judged it."""

    mode: Literal["soft", "hard"]  # soft: the regressions are warnings; hard: they reject the candidate
    factor: float
    regressions: list[ComputeRegression]  # empty without a champion to compare with


class EvaluateMetrics(Part):
    decision: Literal["promote", "reject", "needs_manual_review"]
    candidate_version: str
    champion_version: str | None  # the @champion evaluate compared with (None: the first model)
    compute: ComputeComparison  # read by the training DAG's `compute-regression` alert


class EvaluateResult(StepResultModel[EvaluateOutputs, EvaluateMetrics]):
    @property
    def mlflow_run_id(self) -> str:
        """The run holding the model card and the decision record."""
        return self.outputs.mlflow_run_id

    @property
    def decision_uri(self) -> str:
        """Where the gate's decision record lies: what `promote` applies."""
        return self.outputs.decision

    @property
    def mlflow_experiment_id(self) -> str:
        return self.outputs.mlflow_experiment_id


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
    mlflow_run_id: str = ""
    # Absent from results written before the "Evidently report" link needed it.
    mlflow_experiment_id: str = ""
    performance_report: str | None = None


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

    @property
    def mlflow_run_id(self) -> str:
        return self.outputs.mlflow_run_id

    @property
    def mlflow_experiment_id(self) -> str:
        return self.outputs.mlflow_experiment_id


class NoOutputs(Part):
    """A step that writes no dataset (its result is all metrics)."""


class IngestOutputs(Part):
    raw: str


class IngestMetrics(Part):
    """The days of the look-back window by outcome, and the run's own partition's digest and format."""

    digest: str
    format: Literal["parquet", "csv"]
    written: list[str] = []
    unchanged: list[str] = []
    missing: list[str] = []


class IngestResult(StepResultModel[IngestOutputs, IngestMetrics]):
    pass


class ValidateOutputs(Part):
    validated: str


class ValidateMetrics(Part):
    """The days of the look-back window by outcome; the run's own partition's summary."""

    profile: Literal["training", "serving"]
    summary: dict[str, Any]
    passed: list[str] = []
    failed: list[str] = []
    unchanged: list[str] = []
    # Set when the results were logged to MLflow, or why they could not be (the verdict stands either way).
    mlflow_run_id: str | None = None
    mlflow_error: str | None = None


class ValidateResult(StepResultModel[ValidateOutputs, ValidateMetrics]):
    pass


class FeaturesOutputs(Part):
    features: str


class FeaturesMetrics(Part):
    rows: dict[str, int]
    missing_days: list[str]
    serving_only_days: list[str]


class FeaturesResult(StepResultModel[FeaturesOutputs, FeaturesMetrics]):
    pass


class PromoteOutputs(Part):
    model_uri: str


class PromoteMetrics(Part):
    action: Literal["promote", "rollback"]
    champion_version: str
    previous_champion: str | None


class PromoteResult(StepResultModel[PromoteOutputs, PromoteMetrics]):
    pass


class ScoreOutputs(Part):
    """The served predictions; the shadow's only when it scored every chunk."""

    predictions: str
    predictions_challenger: str | None = None


class ScoreMetrics(Part):
    rows: int
    positive_decisions: int
    model_version: str
    challenger_version: str | None = None
    challenger_rows: int | None = None
    challenger_positive_decisions: int | None = None
    challenger_error: str | None = None


class ScoreResult(StepResultModel[ScoreOutputs, ScoreMetrics]):
    pass


class FreshnessMetrics(Part):
    """Ages in partitions, against the use case's budgets."""

    champion_version: str
    champion_trained_through: str
    model_age_days: int
    max_model_age_days: int
    last_training_partition: str
    training_gap_days: int
    max_training_gap_days: int
    # The model-age budget applied: measured by the newest staleness curve, or max_model_age_days (fallback).
    age_budget_days: int | None = None
    age_budget_source: Literal["measured", "fallback"] | None = None


class FreshnessResult(StepResultModel[NoOutputs, FreshnessMetrics]):
    pass


class CanaryOutputs(Part):
    model_uri: str


class CanaryMetrics(Part):
    """The canary of one @challenger: promote (done), pending (waits for labelled shadow days); a refusal is
    REJECTED, with these metrics in its document."""

    decision: Literal["promote", "pending"]
    challenger_version: str
    champion_version: str
    required_days: int
    tolerance: float
    days: list[dict[str, Any]]


class CanaryResult(StepResultModel[CanaryOutputs, CanaryMetrics]):
    pass


class StalenessOutputs(Part):
    curve: str
    staleness: str
    mlflow_run_id: str = ""


class StalenessMetrics(Part):
    """Every champion's metric vs its age on the newest labelled days, and the age budget measured from it."""

    metric: str
    champions: list[str]
    points: list[dict[str, Any]]
    # (version, partition, reason) of a labelled day that lacks a column of that version's signature
    unscored: list[dict[str, Any]] = []
    budget: dict[str, Any]


class StalenessResult(StepResultModel[StalenessOutputs, StalenessMetrics]):
    @property
    def mlflow_run_id(self) -> str:
        return self.outputs.mlflow_run_id


class ReportedVersion(Part):
    """One registered version in `mlcycle report`: its aliases, gate, Airflow run and @champion periods."""

    version: str
    aliases: list[str]
    partition: str | None
    airflow_run: str
    gate: str | None
    champion_periods: list[list[str | None]]
    previous_champion: str | None
    approver: str | None


class ReportMetrics(Part):
    versions: list[ReportedVersion]


class ReportResult(StepResultModel[NoOutputs, ReportMetrics]):
    pass


class RerunOutputs(Part):
    dag_id: str
    run_id: str


class RerunMetrics(Part):
    state: str | None
    paused: bool


class RerunResult(StepResultModel[RerunOutputs, RerunMetrics]):
    pass


class GenerateOutputs(Part):
    landing: str


class GenerateMetrics(Part):
    rows: dict[str, int]
    scenarios: list[str]


class GenerateResult(StepResultModel[GenerateOutputs, GenerateMetrics]):
    pass


class LineageMetrics(Part):
    """`mlcycle lineage`: the question asked and the chain found (links that are missing say "unknown" and why)."""

    query: dict[str, Any]
    lineage: dict[str, Any]
    unknown: list[str]


class LineageResult(StepResultModel[NoOutputs, LineageMetrics]):
    pass


class ExplainMetrics(Part):
    query: dict[str, Any]
    explanation: dict[str, Any]
    reproduced: bool
    unknown: list[str]


class ExplainResult(StepResultModel[NoOutputs, ExplainMetrics]):
    pass


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
