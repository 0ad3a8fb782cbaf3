"""The model card: a markdown page logged with every evaluated version (MLflow artifact `model_card.md`)."""

from __future__ import annotations

from typing import Any

from mlcycle.config import UseCase


def _table(rows: dict[str, Any], header: tuple[str, str]) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    for key, value in rows.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {shown} |")
    return lines


def model_card(usecase: UseCase, record: dict[str, Any]) -> str:
    """Render the card from a gate decision record (see steps/evaluate.py)."""
    candidate = record["evidence"]["candidate"]
    champion = record["evidence"]["champion"]
    gate = usecase.thresholds.gate
    lines = [
        f"# {record['registered_model']} version {record['candidate_version']}",
        "",
        f"**Use case:** {usecase.name} — {usecase.description}",
        f"**Model family:** `{usecase.model.family}` · decision threshold {usecase.model.decision_threshold}",
        f"**Trained for partition:** {record['partition']} · Airflow run `{record['airflow'].get('airflow.run_id')}` "
        f"of `{record['airflow'].get('airflow.dag_id')}` · trigger: {record['airflow'].get('mlcycle.trigger') or '-'}",
        "",
        "## Data",
        f"- Frozen test set: `{record['test_set']}`",
        f"- Recent labelled window: {', '.join(record['recent_window']) or 'none available'}",
        "",
        "## Gate decision",
        f"**{record['decision']}** (metric `{record['metric']}`; champion at evaluation: "
        f"version {record['champion_version'] or 'none'})",
        "",
        *[f"- {reason}" for reason in record["reasons"]],
        *[f"- flag: {flag}" for flag in record["flags"]],
        *[f"- warning: {warning}" for warning in record.get("warnings", [])],
        "",
        *_table({k: "pass" if v else "FAIL" for k, v in record["checks"].items()}, ("check", "result")),
        "",
        "## Metrics on the frozen test set",
        *_table(
            {
                k: f"{v:.4f}" + (f" (champion {champion['metrics'][k]:.4f})" if champion else "")
                for k, v in candidate["metrics"].items()
            },
            ("metric", "candidate"),
        ),
        "",
        "## Baselines (same frozen split)",
        *_baselines(record),
        "",
        "## Slices (ROC AUC)",
        *_table(candidate["slices"], ("slice", "candidate")),
        "",
        "## Fairness",
        (
            f"Selection rates across `{gate.fairness_group}` (80 % rule, minimum ratio {gate.fairness_min_ratio}): "
            f"{candidate['selection_rates']}"
            if gate.fairness_group
            else "No fairness group is configured for this use case (`thresholds.gate.fairness_group`)."
        ),
        "",
        "## Latency",
        f"p95 single-row predict time: {candidate['latency_p95_ms']:.2f} ms (budget {gate.latency_p95_ms} ms)"
        if candidate.get("latency_p95_ms") is not None
        else "not measured",
        "",
        "## Computing performance (candidate vs champion)",
        *_compute(record),
        "",
        "## Feature value and cost",
        *_features(record, candidate.get("latency_p95_ms")),
        "",
        "## Intended use and limitations",
        f"Batch scoring of `{usecase.name}` partitions by the `{usecase.name}_scoring` DAG. Valid only for data that "
        "passes the use case's data contract; drift is watched daily by the monitoring DAG. Not validated for "
        "online serving, for other markets than those in the training window, or for decisions about individuals "
        "without human review.",
    ]
    return "\n".join(lines) + "\n"


def _baselines(record: dict[str, Any]) -> list[str]:
    metric, evidence = record["metric"], record["evidence"]
    rows = {"candidate": record["candidate"], "rule (training positive rate)": evidence["baseline"][metric]}
    simple = evidence.get("simple_model")
    if simple:
        rows[f"simple model `{simple['family']}`"] = simple["metrics"][metric]
    return _table(rows, ("model", metric))


def _compute(record: dict[str, Any]) -> list[str]:
    figures = record.get("compute") or {}
    candidate, champion = figures.get("candidate") or {}, figures.get("champion") or {}
    if not candidate:
        return ["not measured"]
    lines = ["| figure | candidate | champion |", "|---|---|---|"]
    for name, new in candidate.items():
        old = champion.get(name)
        lines.append(f"| {name} | {'-' if new is None else f'{new:.4g}'} | {'-' if old is None else f'{old:.4g}'} |")
    lines.append(f"\nA figure worse than {figures['factor']}x the champion's is a {figures['mode']} regression.")
    return lines


def _features(record: dict[str, Any], latency_ms: float | None) -> list[str]:
    features = record.get("feature_value")
    if not features:
        return ["not measured"]
    shares = features.get("predict_work_share") or {}
    lines = [
        f"Permutation importance: the drop of `{record['metric']}` when the feature is shuffled "
        f"({features['rows']} test rows, {features['repeats']} shuffles). Cost: the feature's share of the per-row "
        "predict work (and of the p95 latency).",
        "",
        "| feature | importance | predict work share | p95 latency part (ms) |",
        "|---|---|---|---|",
    ]
    for name, importance in sorted(features["importance"].items(), key=lambda item: -item[1]):
        share = shares.get(name)
        part = "-" if share is None or latency_ms is None else f"{share * latency_ms:.3f}"
        lines.append(f"| {name} | {importance:+.4f} | {'-' if share is None else f'{share:.3f}'} | {part} |")
    return lines
