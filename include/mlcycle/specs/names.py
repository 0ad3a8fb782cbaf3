"""The names shared across processes: steps, other commands, DAG families (and their dag ids), runbooks, model roles.

Every process that names a step or a DAG (the CLI, the DAG factory, alerts, rerun, the alert receiver,
backfill, config validation) imports these enums, so a name is spelt once. Standard library only.
"""

from __future__ import annotations

from enum import StrEnum


class Step(StrEnum):
    """A lifecycle step: one CLI sub-command that runs as a DAG task (its task id is the step name)."""

    INGEST = "ingest"
    VALIDATE = "validate"
    FEATURES = "features"
    TUNE = "tune"  # only in the training DAG of a use case with `model.search`
    TRAIN = "train"
    EVALUATE = "evaluate"
    PROMOTE = "promote"
    SCORE = "score"
    MONITOR = "monitor"
    FRESHNESS = "freshness"
    CANARY = "canary"  # promotion: shadow_canary: the @challenger's labelled shadow days decide its promotion
    STALENESS = "staleness"  # weekly: the gate metric of every champion vs its age on the newest labelled days


#: The steps a use case with `engine: spark` runs on Apache Spark (a SparkApplication in kubernetes mode, Spark's local
#: mode in a local subprocess): the heavy, row-parallel ones. Training stays single-node on a sample of its window.
SPARK_STEPS: frozenset[Step] = frozenset({Step.VALIDATE, Step.SCORE, Step.MONITOR})


class Tool(StrEnum):
    """A CLI sub-command that is not a DAG task: reports, operations and the demo data source."""

    REPORT = "report"
    RERUN = "rerun"
    ALERT_RECEIVER = "alert-receiver"
    GENERATE = "generate"
    LINEAGE = "lineage"
    EXPLAIN = "explain"


class ModelRole(StrEnum):
    """The role a registered model version holds: its MLflow alias (`@champion`) and its predictions'
    sub-partition (`predictions/ds=D/role=champion`), spelt once for the registry, score, monitor and backfill."""

    CHAMPION = "champion"  # serves: its predictions are the ones consumers read
    CHALLENGER = "challenger"  # the latest trained candidate: shadow-scored, never served


class Review(StrEnum):
    """The answer a `needs_manual_review` gate decision got from its human review (the training DAG's
    `REVIEW_TASK`): what `promote --review` applies, and what the version records as `mlcycle.review`."""

    APPROVED = "approved"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"  # nobody answered in time: the use case's `approval.on_timeout` decides


#: The training DAG's human review (an Airflow human-in-the-loop task), between `evaluate` and `promote`.
REVIEW_TASK = "review_candidate"


class Runbook(StrEnum):
    """An alert name; each has its page, docs/runbooks/<name>.md."""

    DATA_REJECTED = "data-rejected"
    STEP_FAILED = "step-failed"
    MODEL_STALE = "model-stale"
    DRIFT_DETECTED = "drift-detected"
    PROMOTION_REJECTED = "promotion-rejected"
    DATA_LATE = "data-late"  # the landing partition was not complete by the use case's data deadline
    DEADLINE_MISSED = "deadline-missed"  # a DAG run had not finished by its deadline (usecase.yaml `deadlines:`)
    # evaluate found the candidate's training time, peak memory, latency or throughput worse than the champion's
    # beyond `thresholds.gate.compute_regression_factor` (sent by the training DAG's evaluate task on success)
    COMPUTE_REGRESSION = "compute-regression"


class UnknownDagError(ValueError):
    """A DAG family or dag id that mlcycle does not build."""


class DagFamily(StrEnum):
    """The four DAGs of every use case; a dag id is `<usecase>_<family>`."""

    TRAINING = "training"
    SCORING = "scoring"
    MONITORING = "monitoring"
    PROMOTION = "promotion"

    def dag_id(self, usecase: str) -> str:
        return f"{usecase}_{self.value}"

    @classmethod
    def parse(cls, name: str) -> DagFamily:
        """The family called `name`; an error naming the known families otherwise."""
        try:
            return cls(name)
        except ValueError:
            raise UnknownDagError(f"{name!r} is not a DAG family; expected one of {[f.value for f in cls]}") from None


def parse_dag_id(dag_id: str) -> tuple[str, DagFamily]:
    """`yarnit_scoring` -> ("yarnit", SCORING): use case names may contain underscores, families do not."""
    usecase, _, family = dag_id.rpartition("_")
    if not usecase:
        raise UnknownDagError(f"dag id {dag_id!r} is not <usecase>_<family>")
    try:
        return usecase, DagFamily.parse(family)
    except UnknownDagError as exc:
        raise UnknownDagError(f"dag id {dag_id!r}: {exc}") from None


#: The families an operator (or an alert) may re-run for one day, in the CLI's `--dag` choice order.
#: The Alertmanager label that says whether an alert may become an automatic rerun: Alertmanager routes only
#: "true" to mlcycle's alert receiver, and the receiver ignores any other value. mlcycle's own alerts (failures,
#: rejections, staleness) always carry "false": a failing step must never rerun itself into a loop.
AUTO_RERUN_LABEL = "mlcycle_auto_rerun"
RERUNNABLE: tuple[DagFamily, ...] = (DagFamily.SCORING, DagFamily.MONITORING, DagFamily.TRAINING)
#: The order a backfill runs families in: training first, so scoring finds the champion it produces.
BACKFILL_ORDER: tuple[DagFamily, ...] = (DagFamily.TRAINING, DagFamily.SCORING, DagFamily.MONITORING)

#: How many runs of a family may be active at once: the DAG's `max_active_runs`, and each backfill's.
MAX_ACTIVE_RUNS: dict[DagFamily, int] = {
    # Two trainings racing for @champion would make one of them lose the compare-and-set.
    DagFamily.TRAINING: 1,
    # Days are independent: each run scores its own partition with the champion it resolved at its start.
    DagFamily.SCORING: 3,
    # Retraining requests must be decided in day order (cooldown, weekly budget).
    DagFamily.MONITORING: 1,
    # A promotion is a compare-and-set on one alias; two at once would only make one of them fail.
    DagFamily.PROMOTION: 1,
}
