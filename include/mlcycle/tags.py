"""The MLflow tag keys mlcycle writes on runs and registered versions: one vocabulary for the steps that write them
and the readers (`mlcycle report`, `mlcycle lineage`, the lifecycle page, the registry's promotion code).

A light module (no MLflow import): the lifecycle page reads these tags in Airflow's api-server.
"""

from __future__ import annotations


class Tag:
    """Tag keys. Runs: the step's run context and its inputs. Versions: the same, plus the gate and promotions."""

    # The Airflow run and data a run or version belongs to (registry.tracking, runinfo).
    USECASE = "mlcycle.usecase"
    OWNER = "mlcycle.owner"
    PARTITION = "mlcycle.partition"
    CODE_VERSION = "mlcycle.code_version"
    IMAGE = "mlcycle.image"
    ROLE = "mlcycle.role"  # a parent run's role in the lifecycle (training, evaluation, monitoring)
    TRIGGER = "mlcycle.trigger"  # why the DAG run happened (schedule, asset event, manual, backfill)
    # Training (steps/train.py): where the model came from.
    RUN_ID = "mlcycle.run_id"  # on a version: the MLflow run that trained it
    PARENT_RUN_ID = "mlcycle.parent_run_id"
    FEATURES_URI = "mlcycle.features_uri"
    CACHE_KEY = "mlcycle.cache_key"
    CACHE_HIT = "mlcycle.cache_hit"
    CACHE_VERSION = "mlcycle.cache_version"
    RESUMED_FROM_EPOCH = "mlcycle.resumed_from_epoch"
    # The tune step (steps/tune.py): on a trained run and its version, the search run its parameters came from;
    # on a search run and its trials, what they are.
    TUNED_FROM = "mlcycle.tuned_from"
    TUNE_REUSED_FROM = "mlcycle.tune.reused_from"
    TRIAL = "mlcycle.tune.trial"
    # Set by registry.integrity: the sha256 of every artifact file, checked before a version is loaded.
    ARTIFACT_SHA256 = "mlcycle.artifact_sha256"
    # Set by the train step: the sha256 of the version's reference scores (monitoring.reference_scores), which the
    # monitor reads instead of re-scoring the version's splits every day. Absent on versions registered before.
    REFERENCE_SCORES = "mlcycle.reference_scores"
    # The gate (steps/evaluate.py): its decision, why, and where its decision record lies.
    GATE_DECISION = "mlcycle.gate.decision"
    GATE_REASONS = "mlcycle.gate.reasons"
    GATE_RECORD = "mlcycle.gate.record"
    # Promotions and reviews (registry/champion.py, steps/promote.py): when the version held @champion
    # ([[from, to|null], ...]), the version it replaced (what rollback restores), who approved (a manual
    # promotion's approver, or the user who answered the review in Airflow), why, the decision record applied, the
    # DAG run that moved @champion, and the review's answer (`Review`).
    CHAMPION_PERIODS = "mlcycle.champion_periods"
    PREVIOUS_CHAMPION = "mlcycle.previous_champion"
    PROMOTED_BY = "mlcycle.promoted_by"
    PROMOTED_AT = "mlcycle.promoted_at"
    PROMOTED_IN = "mlcycle.promoted_in"
    ROLLED_BACK_FROM = "mlcycle.rolled_back_from"
    APPROVER = "mlcycle.approver"
    REASON = "mlcycle.reason"
    DECISION_URI = "mlcycle.decision_uri"
    REVIEW = "mlcycle.review"
    REVIEWED_BY = "mlcycle.reviewed_by"
    REVIEW_REASON = "mlcycle.review_reason"
    REVIEWED_AT = "mlcycle.reviewed_at"
    # The shadow canary (`promotion: shadow_canary`, steps/promote.py and steps/canary.py): its state (`Canary`),
    # since when, why it ended as it did, and its evidence (the labelled days, champion vs challenger).
    CANARY = "mlcycle.canary"
    CANARY_SINCE = "mlcycle.canary.since"
    CANARY_REASON = "mlcycle.canary.reason"
    CANARY_EVIDENCE = "mlcycle.canary.evidence"

    @staticmethod
    def days(split: str) -> str:
        """The days of one split (train/valid/test) a version was trained and evaluated on, comma-separated."""
        return f"mlcycle.days.{split}"

    @staticmethod
    def data_digest(split: str) -> str:
        """The raw digests of one split's days, in the order of `days(split)`."""
        return f"mlcycle.data_digest.{split}"
