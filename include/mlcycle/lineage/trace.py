"""Walk the recorded links between partitions, model versions, MLflow runs, decisions and DAG runs.

Every answer is a JSON-able dict. A link that is not recorded is `{"unknown": "<reason>"}` (and the reason, with
where it was looked for, is collected in `Tracer.unknown`), so a reader can always tell "none" from "not known".
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from mlcycle.config import UseCase
from mlcycle.registry import tracking
from mlcycle.registry.champion import PERIODS, PREVIOUS, champion_periods
from mlcycle.specs.names import ModelRole
from mlcycle.storage.layout import DATA_FILE, DECISION_FILE, REASON_FILE, SPLITS, Dataset, role_sub
from mlcycle.storage.partitions import Storage
from mlcycle.tags import Tag

#: The key of a missing link: `{"unknown": reason}`.
UNKNOWN = "unknown"
PREDICTION_ID = "prediction_id"


class LineageQueryError(ValueError):
    """The question cannot be asked (a prediction id of another model, one found nowhere, no such version)."""


def is_unknown(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {UNKNOWN}


def parse_prediction_id(prediction_id: str) -> tuple[str, str, str]:
    """`<key>:<registered model>:<version>` (as `score` writes it) -> (key, model, version)."""
    parts = prediction_id.rsplit(":", 2)
    if len(parts) != 3 or not all(parts):
        raise LineageQueryError(f"{prediction_id!r} is not a prediction id (<key>:<registered model>:<version>)")
    return parts[0], parts[1], parts[2]


@dataclass
class Tracer:
    """One lineage question's walk over one use case's storage and registry."""

    usecase: UseCase
    storage: Storage
    unknown: list[str] = field(default_factory=list)

    # ---- recording what is not known ----
    def gap(self, where: str, reason: str) -> dict[str, str]:
        self.unknown.append(f"{where}: {reason}")
        return {UNKNOWN: reason}

    def uri(self, dataset: Dataset, day: dt.date, sub: str | None = None) -> str:
        return self.storage.partition_uri(self.usecase.name, dataset, day, sub)

    def dag_run(self, manifest: dict[str, Any], where: str) -> dict[str, str]:
        """The DAG run that wrote a partition, from its manifest."""
        run = manifest.get("airflow")
        if not isinstance(run, dict):
            return self.gap(where, "the manifest records no DAG run (written before DAG run ids were recorded)")
        if not run.get("run_id"):
            return self.gap(where, "written outside Airflow (the step had no MLCYCLE_AIRFLOW_RUN_ID)")
        return {"dag_id": str(run.get("dag_id", "")), "run_id": str(run["run_id"])}

    # ---- data partitions, backward ----
    def data_partition(self, day: dt.date) -> dict[str, Any]:
        """landing -> raw (digest, ingest DAG run) -> validated or quarantined (contract result, validate DAG run)."""
        name = day.isoformat()
        raw_uri = self.uri(Dataset.RAW, day)
        raw_manifest = self.storage.manifest(raw_uri)
        document: dict[str, Any] = {"partition": name}
        if raw_manifest is None:
            document["raw"] = self.gap(f"raw {name}", f"no committed partition at {raw_uri}")
        else:
            document["raw"] = {
                "uri": raw_uri,
                "digest": raw_manifest.get("digest") or self.gap(f"raw {name}", "the manifest records no digest"),
                "landing": raw_manifest.get("source") or self.gap(f"raw {name}", "the manifest names no source"),
                "ingested_by": self.dag_run(raw_manifest, f"raw {name}"),
            }
        document["contract"] = self.contract(day, raw_manifest)
        return document

    def contract(self, day: dt.date, raw_manifest: dict[str, Any] | None) -> dict[str, Any]:
        """The data contract's verdict on a day: passed (validated/, soft warnings) or quarantined (the reason)."""
        name = day.isoformat()
        validated_uri, quarantine_uri = self.uri(Dataset.VALIDATED, day), self.uri(Dataset.QUARANTINE, day)
        validated = self.storage.manifest(validated_uri)
        quarantined = self.storage.manifest(quarantine_uri)
        if validated is None and quarantined is None:
            return self.gap(f"contract {name}", f"neither {validated_uri} nor {quarantine_uri} is committed")
        document: dict[str, Any] = {}
        if validated is not None:
            summary = validated.get("summary") or {}
            document["validated"] = {
                "uri": validated_uri,
                "verdict": "passed",
                "profile": validated.get("profile", "training"),
                "soft_warnings": [_failure(f) for f in summary.get("failed", []) if f.get("severity") == "soft"],
                "data_digest": _file_digest(validated, DATA_FILE)
                or self.gap(f"validated {name}", f"the manifest lists no {DATA_FILE} digest"),
                "validated_from_raw": validated.get("raw_digest")
                or self.gap(f"validated {name}", "the manifest records no raw digest"),
                "contract_digest": validated.get("contract_digest"),
                "validated_by": self.dag_run(validated, f"validated {name}"),
            }
            raw_now = (raw_manifest or {}).get("digest")
            if raw_now and validated.get("raw_digest") and raw_now != validated.get("raw_digest"):
                document["validated"]["warning"] = f"raw was re-delivered since (now sha256 {raw_now})"
        if quarantined is not None:
            summary = quarantined.get("summary") or {}
            document["quarantined"] = {
                "uri": quarantine_uri,
                "verdict": "quarantined",
                "profile": quarantined.get("profile", "training"),
                "failed": [_failure(f) for f in summary.get("failed", []) if f.get("severity") != "soft"],
                "reason_file": f"{quarantine_uri}/{REASON_FILE}",
                "raw_digest": quarantined.get("raw_digest"),
                "validated_by": self.dag_run(quarantined, f"quarantine {name}"),
            }
        return document

    # ---- predictions ----
    def predictions(self, day: dt.date, role: ModelRole) -> dict[str, Any]:
        """A predictions partition: the version that wrote it (and its role then), the scoring DAG run, the exact
        validated data it scored, and the monitoring run that read it."""
        name = f"predictions {day.isoformat()} {role.value}"
        uri = self.uri(Dataset.PREDICTIONS, day, role_sub(role))
        manifest = self.storage.manifest(uri)
        if manifest is None:
            raise LineageQueryError(f"no committed predictions partition at {uri}")
        version = manifest.get("model_version")
        source = manifest.get("source")
        document: dict[str, Any] = {
            "uri": uri,
            "partition": day.isoformat(),
            "model_version": str(version) if version else self.gap(name, "the manifest names no model version"),
            "role_when_scored": manifest.get("model_role") or self.gap(name, "the manifest names no model role"),
            "scored_by": self.dag_run(manifest, name),
            "scored_data": {
                "uri": source or self.gap(name, "the manifest names no source partition"),
                "data_digest": manifest.get("source_digest")
                or self.gap(name, "the manifest records no digest of the validated data scored"),
                "raw_digest": manifest.get("source_raw_digest")
                or self.gap(name, "the manifest records no raw digest of the data scored"),
                "profile": manifest.get("source_profile"),
            },
            "data": self.data_partition(day),
        }
        document["monitored"] = self.monitoring(day, uri)
        return document

    def monitoring(self, day: dt.date, predictions_uri: str) -> dict[str, Any]:
        uri = self.uri(Dataset.MONITORING, day)
        manifest = self.storage.manifest(uri)
        if manifest is None:
            return {"uri": uri, "status": "not monitored yet (no committed monitoring partition)"}
        read = manifest.get("predictions", UNKNOWN)
        return {
            "uri": uri,
            "read_these_predictions": (read == predictions_uri)
            if read != UNKNOWN
            else self.gap(f"monitoring {day}", "the manifest does not say which predictions it read"),
            "monitored_by": self.dag_run(manifest, f"monitoring {day}"),
        }

    def find_prediction(self, prediction_id: str, day: dt.date | None) -> tuple[dt.date, ModelRole, dict[str, Any]]:
        """The predictions partition (day, role) holding `prediction_id`, and its row."""
        import pyarrow.parquet as pq

        _, model, version = parse_prediction_id(prediction_id)
        if model != self.usecase.registered_model_name:
            raise LineageQueryError(
                f"{prediction_id!r} was made by {model!r}, not {self.usecase.registered_model_name!r} "
                f"(use case {self.usecase.name})"
            )
        for candidate, role, manifest in self.prediction_partitions(days=[day] if day else None):
            if str(manifest.get("model_version", version)) != version:
                continue  # written by another version: the id names its version
            with self.storage.local_copy(self.uri(Dataset.PREDICTIONS, candidate, role_sub(role))) as folder:
                for part in sorted(folder.glob("part-*.parquet")):
                    rows = pq.read_table(part, filters=[(PREDICTION_ID, "==", prediction_id)]).to_pylist()
                    if rows:
                        return candidate, role, rows[0]
        where = f"predictions/ds={day}" if day else "any predictions partition"
        raise LineageQueryError(f"prediction {prediction_id!r} is in no committed partition ({where})")

    def prediction_partitions(
        self, days: list[dt.date] | None = None
    ) -> list[tuple[dt.date, ModelRole, dict[str, Any]]]:
        """(day, role, manifest) of every committed predictions partition (of `days` only, if given)."""
        found = []
        for role in ModelRole:
            listed = days or self.storage.list_partitions(self.usecase.name, Dataset.PREDICTIONS, role_sub(role))
            for day in listed:
                manifest = self.storage.manifest(self.uri(Dataset.PREDICTIONS, day, role_sub(role)))
                if manifest is not None:
                    found.append((day, role, manifest))
        return sorted(found, key=lambda item: (item[0], item[1].value))

    # ---- model versions ----
    def model(self, version: str) -> dict[str, Any]:
        """A version: the DAG run and MLflow run that trained it, its partitions (with digests, each traced back),
        the gate's decision record, and who promoted it when."""
        where = f"model version {version}"
        found = tracking.model_version(self.usecase, version)
        if found is None:
            raise LineageQueryError(f"{self.usecase.registered_model_name} has no version {version}")
        tags = dict(found.tags)
        run_id = tags.get(Tag.RUN_ID, "")
        run = tracking.client().get_run(run_id) if run_id else None
        document: dict[str, Any] = {
            "registered_model": self.usecase.registered_model_name,
            "version": str(version),
            "aliases_now": sorted(found.aliases),
            "trained_by": self._tag_run(tags, where),
            # Why the training run started (a schedule, a person's reason, or the retraining request's Asset event
            # with the monitoring run that sent it): `mlcycle.orchestration.macros.mlcycle_trigger`.
            "trigger": tags.get(Tag.TRIGGER)
            or self.gap(where, "the version records no trigger (trained outside Airflow)"),
            "training_run": self._training_run(run, tags, where),
            "features": tags.get(Tag.FEATURES_URI) or self.gap(where, "no mlcycle.features_uri tag"),
            "training_data": self._training_data(tags, run, where),
            "gate": self._gate(tags, where),
            "promotion": self._promotion(tags, where),
        }
        return document

    def _tag_run(self, tags: dict[str, str], where: str) -> dict[str, str]:
        if not tags.get("airflow.run_id"):
            return self.gap(where, "the version records no Airflow run (trained outside Airflow)")
        return {"dag_id": tags.get("airflow.dag_id", ""), "run_id": tags["airflow.run_id"]}

    def _training_run(self, run: Any, tags: dict[str, str], where: str) -> dict[str, Any]:
        if run is None:
            return self.gap(where, "the version records no training run (no mlcycle.run_id tag)")
        datasets = [
            {
                "context": next((t.value for t in d.tags if t.key == "mlflow.data.context"), ""),
                "name": d.dataset.name,
                "digest": d.dataset.digest,
                "source": _source_uri(d.dataset.source),
            }
            for d in (run.inputs.dataset_inputs if run.inputs else [])
        ]
        return {
            "run_id": run.info.run_id,
            "parent_run_id": tags.get(Tag.PARENT_RUN_ID, ""),
            "experiment_id": run.info.experiment_id,
            "datasets": datasets or self.gap(where, "the training run logged no dataset inputs"),
        }

    def training_days(self, tags: dict[str, str], run: Any) -> dict[str, list[str]] | None:
        """The days of each split (version tags; versions registered before they were tagged: the run's tags)."""
        sources = [tags, dict(run.data.tags) if run is not None else {}]
        for source in sources:
            if all(Tag.days(s) in source for s in SPLITS):
                return {s: [d for d in source[Tag.days(s)].split(",") if d] for s in SPLITS}
        return None

    def _training_data(self, tags: dict[str, str], run: Any, where: str) -> list[dict[str, Any]] | dict[str, str]:
        days = self.training_days(tags, run)
        if days is None:
            return self.gap(where, "neither the version nor its training run records the days of its splits")
        rows: list[dict[str, Any]] = []
        for split in SPLITS:
            digests = tags.get(Tag.data_digest(split), "").split(",")
            aligned = len(digests) == len(days[split])
            for index, name in enumerate(days[split]):
                traced = self.data_partition(dt.date.fromisoformat(name))
                trained_on = (
                    digests[index]
                    if aligned and digests[index]
                    else self.gap(f"{where} {split} {name}", "no raw digest recorded for this day of the split")
                )
                row: dict[str, Any] = {"split": split, "partition": name, "trained_on_raw_digest": trained_on}
                raw_now = traced["raw"].get("digest") if isinstance(traced["raw"], dict) else None
                if isinstance(trained_on, str) and isinstance(raw_now, str) and raw_now != trained_on:
                    row["warning"] = f"raw/ds={name} was re-delivered after training (now sha256 {raw_now})"
                rows.append({**row, **traced})
        return rows

    def _gate(self, tags: dict[str, str], where: str) -> dict[str, Any]:
        record_uri = tags.get(Tag.GATE_RECORD)
        if not record_uri:
            return self.gap(where, "the version was never evaluated (no mlcycle.gate.record tag)")
        try:
            with self.storage.local_copy(record_uri) as folder:
                record = json.loads((folder / DECISION_FILE).read_text())
        except FileNotFoundError:
            return self.gap(where, f"its decision record {record_uri} is gone")
        airflow = record.get("airflow") or {}
        return {
            "record": record_uri,
            "decision": record.get("decision"),
            "reasons": record.get("reasons", []),
            "champion_when_evaluated": record.get("champion_version"),
            "test_set": record.get("test_set"),
            "evaluated_by": {"dag_id": airflow.get("airflow.dag_id", ""), "run_id": airflow["airflow.run_id"]}
            if airflow.get("airflow.run_id")
            else self.gap(where, "the decision record names no Airflow run (evaluated outside Airflow)"),
        }

    def _promotion(self, tags: dict[str, str], where: str) -> dict[str, Any]:
        periods = champion_periods(tags) if PERIODS in tags else []
        if not periods:
            return {"status": "never held @champion"}
        by = tags.get(Tag.PROMOTED_BY)
        document: dict[str, Any] = {
            "champion_periods": periods,
            "previous_champion": tags.get(PREVIOUS) or None,
            "promoted_by": by or self.gap(where, "no mlcycle.promoted_by tag (promoted by a rollback?)"),
            "promoted_in": tags.get(Tag.PROMOTED_IN)
            or self.gap(
                where, "the promotion records no DAG run (promoted outside Airflow, or before it was recorded)"
            ),
        }
        if by == "gate":
            document["approver"] = "the gate (automatic: its decision record)"
            document["decision"] = tags.get(Tag.DECISION_URI)
        elif tags.get(Tag.APPROVER):
            document["approver"] = tags[Tag.APPROVER]
            document["reason"] = tags.get(Tag.REASON, "")
        else:
            document["approver"] = self.gap(where, "a manual promotion without mlcycle.approver")
        return document

    # ---- forward ----
    def models_trained_on(self, day: dt.date) -> dict[str, Any]:
        """Every version whose splits include `day` (and every version for which that cannot be told)."""
        trained, untold = [], []
        for found in tracking.all_versions(self.usecase):
            tags = dict(found.tags)
            run_id = tags.get(Tag.RUN_ID, "")
            run = None
            if not all(Tag.days(s) in tags for s in SPLITS) and run_id:
                run = tracking.client().get_run(run_id)
            days = self.training_days(tags, run)
            if days is None:
                untold.append(
                    self.gap(f"model version {found.version}", "records no training days: cannot tell if it used it")
                )
                continue
            for split in SPLITS:
                if day.isoformat() in days[split]:
                    trained.append(
                        {"version": str(found.version), "split": split, "aliases_now": sorted(found.aliases)}
                    )
        return {"models": trained, "not_determined": untold}

    def predictions_by(self, versions: set[str]) -> list[dict[str, Any]]:
        """Every predictions partition written by one of `versions`."""
        return [
            {
                "uri": self.uri(Dataset.PREDICTIONS, day, role_sub(role)),
                "partition": day.isoformat(),
                "role": role.value,
                "model_version": str(manifest["model_version"]),
            }
            for day, role, manifest in self.prediction_partitions()
            if str(manifest.get("model_version")) in versions
        ]


def _failure(failure: dict[str, Any]) -> str:
    column = f" on {failure['column']}" if failure.get("column") else ""
    return f"{failure.get('rule') or failure.get('expectation')}{column} (observed {failure.get('observed')})"


def _file_digest(manifest: dict[str, Any], name: str) -> str | None:
    entry = (manifest.get("files") or {}).get(name)
    return str(entry["sha256"]) if isinstance(entry, dict) and entry.get("sha256") else None


def _source_uri(source: Any) -> str:
    """An MLflow dataset source (JSON text `{"uri": ...}` for file and S3 sources) as its URI."""
    text = str(source)
    try:
        loaded = json.loads(text)
    except ValueError:
        return text
    return str(loaded.get("uri", text)) if isinstance(loaded, dict) else text
