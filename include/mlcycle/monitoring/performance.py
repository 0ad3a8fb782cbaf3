"""Model performance of the served predictions once labels have arrived, with an Evidently 0.7 report.

Labels arrive `target.label_delay_days` after a day ends, so the monitoring run for day D measures the
champion on day L = D - delay: the predictions committed for L (by the version that served L) joined on
the entity key with L's labels. The figure is compared with the same version's metric at training time
(its frozen test split, logged to MLflow), which is also the Evidently report's reference.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.monitoring.offline_online import shortfall
from mlcycle.monitoring.report_text import html_and_json
from mlcycle.storage.layout import PERFORMANCE_FILE, PERFORMANCE_REPORT_FILE, PERFORMANCE_REPORT_JSON_FILE
from mlcycle.training.metrics import classification_metrics

# Fewer labelled rows than this give an AUC too noisy to act on: report, do not judge.
MIN_LABELLED_ROWS = 200


@dataclass(frozen=True)
class Performance:
    """The champion's quality on one labelled day against its quality at training time."""

    status: str  # "computed" | "pending"
    partition: str
    metric: str = ""
    value: float = math.nan
    reference: float = math.nan
    drop: float = math.nan
    rows: int = 0
    model_version: str = ""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def labelled(predictions: pd.DataFrame, labels: pd.DataFrame, key: str, target: str) -> pd.DataFrame:
    """Predictions joined with the labels that have arrived (rows without a label are left out)."""
    joined = predictions[[key, "score", "decision"]].merge(labels[[key, target]], on=key, how="inner")
    return joined[joined[target].notna()].rename(columns={target: "target"}).astype({"target": "int64"})


def metric_of(current: pd.DataFrame, metric: str, threshold: float) -> float:
    """The gate metric of labelled rows (`target`, `score` columns)."""
    return float(classification_metrics(current["target"].to_numpy(), current["score"].to_numpy(), threshold)[metric])


def measure(
    current: pd.DataFrame, *, metric: str, reference_value: float, threshold: float, partition: str, version: str
) -> Performance:
    """Performance of a labelled day (`target`, `score` columns) vs the reference metric."""
    if len(current) < MIN_LABELLED_ROWS or current["target"].nunique() < 2:
        return Performance(
            "pending",
            partition,
            metric=metric,
            rows=len(current),
            model_version=version,
            reason=f"{len(current)} labelled rows on {partition} (need {MIN_LABELLED_ROWS} with both classes)",
        )
    value = metric_of(current, metric, threshold)
    drop = shortfall(metric, reference=reference_value, value=value)
    return Performance(
        "computed",
        partition,
        metric=metric,
        value=round(float(value), 6),
        reference=round(float(reference_value), 6),
        drop=round(float(drop), 6),
        rows=len(current),
        model_version=version,
    )


def classification_report(reference: pd.DataFrame, current: pd.DataFrame, threshold: float) -> Any:
    """Evidently ClassificationPreset snapshot: reference = test split at training time, current = the day."""
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    definition = DataDefinition(
        classification=[BinaryClassification(target="target", prediction_probas="score", pos_label=1)],
        numerical_columns=["score"],
    )

    def dataset(frame: pd.DataFrame) -> Any:
        return Dataset.from_pandas(frame[["target", "score"]].astype({"score": np.float64}), data_definition=definition)

    report = Report([ClassificationPreset(probas_threshold=threshold)])
    return report.run(current_data=dataset(current), reference_data=dataset(reference))


def save_performance(snapshot: Any | None, performance: Performance, directory: Path) -> None:
    """performance.json always; performance.html / performance_report.json when a report was made."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / PERFORMANCE_FILE).write_text(json.dumps(performance.to_dict(), indent=2) + "\n")
    if snapshot is not None:
        html, json_text = html_and_json(snapshot)
        (directory / PERFORMANCE_REPORT_FILE).write_text(html, encoding="utf-8")
        (directory / PERFORMANCE_REPORT_JSON_FILE).write_text(json_text, encoding="utf-8")
