"""Every `mlcycle` sub-command's spec: name, help, typed options, typed result, runbook and the body's path.

From a task id (= the step name) one look-up, `spec_of(task_id)`, reaches the step's options, its result
model, the runbook its failure alert links, and the dotted path of its heavy body (`mlcycle.steps.<name>.main`,
imported only when the command runs). The CLI, the DAG factory, alerts, rerun and the alert receiver all
read this catalog. Standard library and pydantic only: Airflow imports it at parse time.
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, StringConstraints, field_validator, model_validator

from mlcycle.specs.names import RERUNNABLE, DagFamily, ModelRole, Review, Runbook, Step, Tool
from mlcycle.specs.options import LookbackDays, Options, PartitionText, option, partition_day
from mlcycle.specs.results import (
    CanaryResult,
    EvaluateResult,
    ExplainResult,
    FeaturesResult,
    FreshnessResult,
    GenerateResult,
    IngestResult,
    LineageResult,
    MonitorResult,
    PromoteResult,
    ReportResult,
    RerunResult,
    ScoreResult,
    StalenessResult,
    StepResultModel,
    TrainResult,
    TuneResult,
    ValidateResult,
)


class IngestOptions(Options):
    lookback: LookbackDays = option(
        1,
        metavar="DAYS",
        help="also process the DAYS-1 partitions before --partition that are not done yet "
        "(the training DAG uses its window; default 1: this partition only)",
    )


class ValidateOptions(IngestOptions):
    serving: bool = option(
        False,
        help="validate with the serving profile: every rule except those on the target, which may "
        "be absent (the scoring DAG's gate)",
    )


class TuneOptions(Options):
    reuse: Literal["on", "off"] = option("on", help="reuse a search younger than model.search.every")


class TrainOptions(Options):
    cache: Literal["on", "off"] = option("on", help="reuse an identical earlier run")


class EvaluateOptions(Options):
    model_version: str = option(help="the candidate model version")


class PromoteOptions(Options):
    decision: str | None = option(None, help="URI of a decision record written by `evaluate`")
    action: Literal["promote", "rollback"] = "promote"
    model_version: str | None = option(None, help="version to promote (manual promotion)")
    approver: str = option("", help="who approved the promotion (a manual one, or a review's responder)")
    reason: str = option("", help="why (recorded on the model version)")
    review: str = option(
        "",
        help="the human review's answer to a needs_manual_review decision (empty: none)",
        choices=["", *(r.value for r in Review)],
    )


class RerunOptions(Options):
    dag: DagFamily = option(DagFamily.SCORING, choices=[f.value for f in RERUNNABLE])
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3)] = option(
        help="why (at least 3 characters)"
    )

    @field_validator("dag")
    @classmethod
    def _rerunnable(cls, family: DagFamily) -> DagFamily:
        if family not in RERUNNABLE:
            raise ValueError(f"{family.value!r} cannot be rerun; expected one of {[f.value for f in RERUNNABLE]}")
        return family


class AlertReceiverOptions(Options):
    host: str = option("127.0.0.1", help="0.0.0.0 in a pod")
    port: Annotated[int, Field(ge=1, le=65535)] = 8085


class GenerateOptions(Options):
    start: PartitionText = option(help="first day, YYYY-MM-DD")
    end: PartitionText = option(help="last day, YYYY-MM-DD (inclusive)")
    seed: int = 7
    rows: Annotated[int, Field(ge=1)] = option(3000, help="base rows per day")
    scenario: list[str] = option(
        [], metavar="NAME:FROM[:TO]", help="e.g. covariate_shift:2026-09-15:2026-09-21 (repeatable)"
    )


def _day(value: Any) -> Any:
    return partition_day(value) if isinstance(value, str) else value


class LineageOptions(Options):
    prediction_id: str | None = option(None, help="trace one prediction (its prediction_id column) back to its data")
    partition: Annotated[dt.date | None, BeforeValidator(_day)] = option(
        None,
        metavar="YYYY-MM-DD",
        help="a data partition: where it came from and every model and prediction partition that used it; with "
        "--role: the predictions partition of that role; with --prediction-id: where to look for the prediction",
    )
    role: ModelRole | None = option(None, choices=[r.value for r in ModelRole], help="with --partition")
    model_version: str | None = option(None, help="a model version: its data, decision, approver, and its predictions")
    as_json: bool = option(False, help="print the lineage as one JSON document instead of text")

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        # `--json` (the field cannot be called `json`: pydantic models have a method of that name).
        parser.add_argument("--json", dest="as_json", action="store_true", help="the same as --as-json")

    @model_validator(mode="after")
    def _one_question(self) -> Self:
        asked = [name for name in ("prediction_id", "model_version") if getattr(self, name)]
        if self.partition is not None and not self.prediction_id:
            asked.append("partition")
        if len(asked) != 1:
            raise ValueError(
                "ask one question: --prediction-id ID [--partition D], --partition D [--role R], or --model-version V"
                + (f" (got {', '.join(asked)})" if asked else "")
            )
        if self.role is not None and (self.partition is None or self.prediction_id):
            raise ValueError("--role goes with --partition (the predictions partition of that role)")
        return self


class ExplainOptions(Options):
    prediction_id: str | None = option(None, help="the served prediction to explain (its prediction_id column)")
    partition: Annotated[dt.date | None, BeforeValidator(_day)] = option(
        None,
        metavar="YYYY-MM-DD",
        help="with --row: the predictions partition; with --prediction-id: where to look for the prediction",
    )
    row: Annotated[int | None, Field(ge=0)] = option(
        None, metavar="N", help="with --partition: row N (0-based) of that day's predictions (= of its scored data)"
    )
    role: ModelRole | None = option(
        None, choices=[r.value for r in ModelRole], help="with --row: whose predictions (default champion)"
    )
    as_json: bool = option(False, help="print only the JSON result (the explanation is in its metrics)")

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--json", dest="as_json", action="store_true", help="the same as --as-json")

    @model_validator(mode="after")
    def _one_prediction(self) -> Self:
        if bool(self.prediction_id) == (self.row is not None):
            raise ValueError("ask about one prediction: --prediction-id ID [--partition D], or --partition D --row N")
        if self.row is not None and self.partition is None:
            raise ValueError("--row needs --partition (row N of that day's predictions)")
        if self.role is not None and self.row is None:
            raise ValueError("--role goes with --row (a prediction id names its version already)")
        return self


@dataclass(frozen=True)
class CommandSpec:
    """One `mlcycle` sub-command: what the CLI, the DAG factory and alerts need to know about it."""

    name: Step | Tool
    help: str
    description: str
    #: Dotted path of the body, `module.function`: `(ctx, options) -> result` (a service: `(options) -> int`).
    body: str
    options: type[Options] = Options
    #: The typed result the body returns and the CLI prints; None only for a service.
    result: type[StepResultModel[Any, Any]] | None = None
    #: The runbook a failure alert of this step's task links.
    runbook: Runbook = Runbook.STEP_FAILED
    needs_partition: bool = True
    #: A long-running service (no use case, no JSON result): its body returns the exit code.
    service: bool = False

    @property
    def result_model(self) -> type[StepResultModel[Any, Any]]:
        """The typed result the body returns (a service, which prints none, has no model: TypeError)."""
        if self.result is None:
            raise TypeError(f"mlcycle {self.name} is a service: it returns no result")
        return self.result


SPECS: tuple[CommandSpec, ...] = (
    CommandSpec(
        Step.INGEST,
        "copy a landing partition into an immutable raw snapshot with its digest",
        "Reads <root>/<usecase>/landing/ds=D/data.parquet or data.csv (UTF-8, comma-delimited, header) and "
        "commits <root>/<usecase>/raw/ds=D/: the original bytes, with a manifest recording digest and format. "
        "Re-running with unchanged landing data changes nothing. A missing landing partition is an error "
        "(retried: data may still arrive).",
        "mlcycle.steps.ingest.main",
        IngestOptions,
        IngestResult,
    ),
    CommandSpec(
        Step.VALIDATE,
        "check a raw partition against the use case's data contract (Great Expectations)",
        "Compiles the use case's contract into a Great Expectations suite and validates raw/ds=D, with the "
        "training profile (every rule) or, with --serving, the serving profile (no rules on the target). "
        "Passing data is committed to validated/ds=D (manifest: profile, summary, soft warnings); data failing "
        "a hard rule, or unreadable input, goes to quarantine/ds=D with reason.json (the refused file is kept "
        "without the contract's forbidden columns; reason.json names those dropped) and the step exits "
        "REJECTED (65). validation.json (the full GX result) and report.html are stored with the partition "
        "and logged to the DAG run's MLflow parent run under validation/<D>/ (without the offending values and "
        "sample rows they quote, unless usecase.yaml sets tracking.log_data_samples).",
        "mlcycle.steps.validate.main",
        ValidateOptions,
        ValidateResult,
        runbook=Runbook.DATA_REJECTED,
    ),
    CommandSpec(
        Step.FEATURES,
        "build the train/valid/test splits of the training window ending at the partition",
        "Reads the partitions of the window (usecase.yaml: split.window_days) validated with the training "
        "profile, keeps the "
        "model's columns and cuts them by time: the latest test_days are test, the valid_days before "
        "are valid, the rest train. Exits NOTHING_TO_DO (99) when fewer than split.min_partitions exist.",
        "mlcycle.steps.features.main",
        result=FeaturesResult,
    ),
    CommandSpec(
        Step.TUNE,
        "search the model's hyperparameters (usecase.yaml model.search) on the valid split, for train",
        "Samples model.search.trials parameter sets from the declared ranges with model.search.seed (random, or "
        "successive halving over train rows), fits each on the train split and scores it on the valid split with "
        "the gate's metric (never on test), within model.search.max_time. Logs one MLflow search run with a nested "
        "run per fit (params, valid metric, fit seconds) under the DAG run's parent run, and commits the best "
        "parameters to tuning/ds=D/best_params.json, which train fits with. A search run fewer than "
        "model.search.every partitions before D (same search space) is reused instead, unless --reuse off: the "
        "result says reused (exit 0: train needs tuning/ds=D either way). Without model.search: NOTHING_TO_DO (99).",
        "mlcycle.steps.tune.main",
        TuneOptions,
        TuneResult,
    ),
    CommandSpec(
        Step.TRAIN,
        "fit the use case's model on the splits, log it to MLflow and register it as @challenger",
        "Fits the model family of usecase.yaml (preprocessing inside the logged pipeline), with the tune "
        "step's best parameters over model.params when model.search is set, logs params, "
        "per-split metrics, datasets (with digests) and Airflow tags to one parent run per DAG run, and "
        "registers the model version with the @challenger alias. If a version was already trained on the "
        "same data digests, config and code, it is reused (a cache hit) unless --cache off.",
        "mlcycle.steps.train.main",
        TrainOptions,
        TrainResult,
    ),
    CommandSpec(
        Step.EVALUATE,
        "compare a candidate version with the current @champion on the same frozen test set",
        "Scores the candidate and the current champion on the partition's test split, applies the gate "
        "thresholds and writes a decision record (promote / reject) that pins the champion it saw.",
        "mlcycle.steps.evaluate.main",
        EvaluateOptions,
        EvaluateResult,
    ),
    CommandSpec(
        Step.PROMOTE,
        "move @champion (compare-and-set), from a gate decision or a manual promote/rollback",
        "With --decision: applies a gate decision record; skipped (99) unless it says promote. With "
        "--action promote --model-version V: promotes a reviewed version. With --action rollback: "
        "returns @champion to the version it replaced. The champion is only moved if it is still the one "
        "the decision saw (else REJECTED, 65).",
        "mlcycle.steps.promote.main",
        PromoteOptions,
        PromoteResult,
        runbook=Runbook.PROMOTION_REJECTED,
    ),
    CommandSpec(
        Step.SCORE,
        "score a validated partition with @champion, and shadow-score it with @challenger",
        "Resolves @champion (and @challenger, if it is another version) to versions at the start, streams "
        "validated/ds=D in chunks and commits predictions/ds=D/role=champion (served) and role=challenger "
        "(shadow, never served) with prediction_id, model name/version/role, score, decision and scored_for. "
        "Each version gets the columns of its own logged signature; a champion needing a column the data lacks, "
        "or returning a NaN or infinite score, is REJECTED (65) with nothing committed (a shadow is dropped and "
        "reported). A failing shadow is reported, not fatal. Exits NOTHING_TO_DO (99) when there is no champion "
        "yet. A model "
        "whose artifacts fail verification (docs/model-integrity.md) never runs: REJECTED (65), after committing the "
        "champion's predictions when only the shadow was refused.",
        "mlcycle.steps.score.main",
        result=ScoreResult,
    ),
    CommandSpec(
        Step.MONITOR,
        "Evidently reports: data drift, prediction drift and (once labels arrived) performance",
        "Compares validated/ds=D with the champion's training split (KS for numeric, chi-squared for "
        "categorical columns by default), the champion's served scores on D with its scores on that split, "
        "and, for D minus target.label_delay_days, the served predictions joined with the labels against the "
        "version's test metric at training time. Stores report.html/json, summary.json, prediction/, "
        "performance.html/json under monitoring/ds=D, logs them to the DAG run's MLflow run and returns the "
        "per-column verdicts, performance and new labelled rows (what the retraining policy reads).",
        "mlcycle.steps.monitor.main",
        result=MonitorResult,
    ),
    CommandSpec(
        Step.FRESHNESS,
        "alert when the champion is older than its budget or training has stopped",
        "Counts, in partitions up to --partition, the champion's age (days since the end of its training "
        "window) and the gap since the newest training window of any registered version, against "
        "usecase.yaml's freshness budgets; the age budget is the one measured by the newest staleness curve "
        "when it measured a decay, else freshness.max_model_age_days. Over budget: REJECTED (65) with a one-line reason, so the task "
        "fails without retry and its alert links docs/runbooks/model-stale.md.",
        "mlcycle.steps.freshness.main",
        result=FreshnessResult,
        runbook=Runbook.MODEL_STALE,
    ),
    CommandSpec(
        Step.CANARY,
        "promotion: shadow_canary: promote the gate-approved @challenger after K good labelled shadow days",
        "Reads the @challenger's shadow predictions of the labelled days after its training window up to D minus "
        "target.label_delay_days, each joined with the labels and the current @champion's served predictions on "
        "the same rows. canary.labelled_days such days on none of which it trails the champion's gate metric by "
        "more than canary.tolerance: @champion moves to it by compare-and-set (promoted by: canary, with the "
        "evidence). A trailing day: REJECTED (65), the version stays @challenger with the reason recorded. Fewer "
        "days: pending. Only a version the gate approved (mlcycle.canary=pending) is canaried; otherwise, and with "
        "promotion: immediate, NOTHING_TO_DO (99). See docs/canary.md.",
        "mlcycle.steps.canary.main",
        result=CanaryResult,
        runbook=Runbook.PROMOTION_REJECTED,
    ),
    CommandSpec(
        Step.STALENESS,
        "weekly: every champion's gate metric vs its age on the newest labelled days; the measured age budget",
        "On a partition falling on staleness.weekday (else NOTHING_TO_DO, 99), every version that held @champion "
        "scores the newest staleness.labelled_days labelled days after its training window; metric vs age is fitted "
        "and the age at which retraining.performance_drop is lost becomes the model-age budget `freshness` applies. "
        "Writes staleness/ds=D/curve.json and logs the curve to the DAG run's MLflow run. See docs/canary.md.",
        "mlcycle.steps.staleness.main",
        result=StalenessResult,
    ),
    CommandSpec(
        Tool.REPORT,
        "list every registered version of the use case's model and when it held @champion",
        "Reads the MLflow registry: versions, aliases, gate decisions, the Airflow run that trained each, "
        "the @champion periods, previous champions and approvers (the audit trail for rollbacks).",
        "mlcycle.steps.report.main",
        result=ReportResult,
        needs_partition=False,
    ),
    CommandSpec(
        Tool.RERUN,
        "re-run one day of a use case through Airflow's REST API, with the reason on record",
        "Triggers <usecase>_<dag> (scoring by default) for --partition as a manual DAG run whose conf carries "
        "the partition and the reason (recorded on the MLflow runs the rerun creates). Talks to "
        "AIRFLOW_API_URL with AIRFLOW_API_TOKEN, or AIRFLOW_USERNAME/AIRFLOW_PASSWORD. Every alert message "
        "ends with the rerun command that fits it. Airflow refusing the run (unknown DAG, run id exists) is "
        "REJECTED (65); Airflow unreachable is an error.",
        "mlcycle.rerun.main",
        RerunOptions,
        RerunResult,
    ),
    CommandSpec(
        Tool.ALERT_RECEIVER,
        "serve an Alertmanager webhook that turns firing alerts into DAG runs",
        "POST /alerts (Alertmanager webhook format, version 4) with `Authorization: Bearer "
        "$MLCYCLE_WEBHOOK_TOKEN`: each firing alert labelled with a known `usecase` becomes a run of "
        "<usecase>_<dag> (label `dag`, default by alert name) for label `partition` (default: the day before "
        "the alert started), the alert in the run's conf; a training alert becomes a retraining request "
        "under the retraining policy's guards. Repeats of an alert are deduplicated; malformed "
        "or unauthenticated requests are refused (400/401). GET /healthz (alive), /readyz (Airflow login).",
        "mlcycle.alert_receiver.main",
        AlertReceiverOptions,
        needs_partition=False,
        service=True,
    ),
    CommandSpec(
        Tool.GENERATE,
        "write synthetic YarnIt landing partitions (the demo data source)",
        "Generates deterministic daily partitions (seeded by --seed and the date) into "
        "landing/ds=D for D in [--start, --end], with optional scenarios switched on for date ranges.",
        "mlcycle.steps.generate.main",
        GenerateOptions,
        GenerateResult,
        needs_partition=False,
    ),
    CommandSpec(
        Tool.LINEAGE,
        "trace a prediction, a partition or a model version back to its data and forward to what used it",
        "Backward: prediction -> scoring DAG run -> model version (+ its role when it scored) -> training run -> "
        "its train/valid/test partitions with digests -> each partition's raw digest, contract result and "
        "ingest/validate DAG runs -> the gate decision and approver. Forward: from a data partition to every "
        "model trained on it and every prediction partition those models scored. Reads only what the steps "
        "wrote (manifests, registry tags, MLflow runs); a missing link is printed as unknown, with the reason. "
        "Text by default; --json prints the lineage as JSON. See docs/lineage.md.",
        "mlcycle.lineage.command.main",
        LineageOptions,
        LineageResult,
        needs_partition=False,
    ),
    CommandSpec(
        Tool.EXPLAIN,
        "explain one served prediction: its raw row, contract checks, features, contributions, reproduced score",
        "For --prediction-id ID (or --partition D --row N: row N of that day's predictions): the row as it landed "
        "in raw/, the contract's per-row rules evaluated on it (the rules only a whole partition can be judged on "
        "are listed with the partition's verdict), the model input in the columns of the version that served it "
        "(its signature), the feature vector after the pipeline's preprocessing, per-feature contributions "
        "(logistic regression: coef x value terms; other families: baseline deltas against a seeded sample of the "
        "version's training split), and the score and decision reproduced by the registered version, which must "
        "equal the served score to 1e-12 (else REJECTED, 65). A prediction, row or data that cannot be found is "
        "REJECTED (65) with the reason. Text by default; --json prints only the JSON result. See docs/explain.md.",
        "mlcycle.explain.command.main",
        ExplainOptions,
        ExplainResult,
        needs_partition=False,
    ),
)

_BY_NAME: dict[str, CommandSpec] = {spec.name.value: spec for spec in SPECS}
_untyped = [spec.name.value for spec in SPECS if (spec.result is None) != spec.service]
if _untyped:  # every command but a service prints a result, checked against its model before it is printed
    raise RuntimeError(f"mlcycle.specs.catalog: a result model is required for, and only for, non-services: {_untyped}")
_missing = sorted(set(Step) - set(_BY_NAME))
if _missing:  # every lifecycle step must be a command: the DAG factory builds its tasks from the catalog
    raise RuntimeError(f"mlcycle.specs.catalog: no spec for step(s) {_missing}")


class UnknownCommandError(KeyError):
    """A name that is neither a step nor a tool of the catalog."""


def spec_of(name: str) -> CommandSpec:
    """The spec of a step or tool by name (a task id of a step task is its step's name)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownCommandError(f"{name!r} is not an mlcycle command; expected one of {list(_BY_NAME)}") from None


def runbook_for_task(task_id: str) -> Runbook:
    """The runbook a failed task's alert links: its step's, or step-failed for any other task."""
    spec = _BY_NAME.get(task_id)
    return spec.runbook if spec is not None else Runbook.STEP_FAILED
