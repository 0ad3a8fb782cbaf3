"""`mlcycle explain`: one served prediction, from the row as it landed to the score, reproduced from the registry.

The walk from the prediction to its partitions and version is `mlcycle lineage`'s (`Tracer`): the predictions
partition names the version that served it and the digests of the validated data it scored. On top of it:

1. the raw row as landed (raw/ds=D, read as `validate` reads it) and the contract's per-row rules on it, with the
   rules only a whole partition can be judged on listed as such (their verdict is the partition's);
2. the model input: the validated row, in the columns of the version's own signature; the feature vector after the
   pipeline's preprocessing; per-feature contributions (`mlcycle.explain.contributions`);
3. the score of the registered version (loaded verified, as `score` loads it) on that row, which must equal the
   served score to 1e-12; and the decision at the use case's threshold.

A question without an answer (an unknown id, a row past the end, data replaced since scoring) is REJECTED (65)
with the reason, like `mlcycle lineage`; a reproduced score that differs from the served one is REJECTED too.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mlcycle.contracts.profiles import SERVING, profile_of
from mlcycle.contracts.reading import UnreadableData, read_partition
from mlcycle.explain import contributions as contrib
from mlcycle.explain.contributions import plain
from mlcycle.explain.rowchecks import dataset_checks, row_checks
from mlcycle.lineage.trace import PREDICTION_ID, LineageQueryError, Tracer, is_unknown
from mlcycle.registry import tracking
from mlcycle.specs.catalog import ExplainOptions
from mlcycle.specs.names import ModelRole, Tool
from mlcycle.specs.results import ExplainResult
from mlcycle.steps.base import Rejected, StepContext
from mlcycle.steps.models import load_model
from mlcycle.storage.layout import DATA_FILE, Dataset, Split, raw_file, role_sub, split_file
from mlcycle.storage.partitions import sha256_file
from mlcycle.tags import Tag
from mlcycle.training.model_io import MissingModelInput, model_input, predict_score

#: How far the reproduced score may be from the served one.
TOLERANCE = 1e-12


class ExplainError(ValueError):
    """The prediction cannot be explained as served (its data or version is gone or changed); the message says why."""


def python_row(frame: pd.DataFrame) -> dict[str, Any]:
    """A one-row frame as column -> Python value (numpy scalars unwrapped; timestamps stay timestamps)."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in frame.iloc[0].to_dict().items()}


@dataclass(frozen=True)
class Served:
    """One served prediction: its row, and where it sits (its part file is the chunk `score` scored it in)."""

    day: dt.date
    role: ModelRole
    row: dict[str, Any]
    index: int  # 0-based, in the partition: the same row of the validated data scored
    chunk: tuple[int, int]  # [start, stop) of the rows scored together with it


def served_prediction(
    tracer: Tracer, day: dt.date, role: ModelRole, *, prediction_id: str | None = None, index: int | None = None
) -> Served:
    """The prediction with `prediction_id`, or row `index`, of predictions/ds=day/role=role."""
    uri = tracer.uri(Dataset.PREDICTIONS, day, role_sub(role))
    if tracer.storage.manifest(uri) is None:
        raise LineageQueryError(f"no committed predictions partition at {uri}")
    seen = 0
    with tracer.storage.local_copy(uri) as folder:
        for part in sorted(folder.glob("part-*.parquet")):
            rows = pq.ParquetFile(part).metadata.num_rows
            if prediction_id is not None:
                ids = pq.read_table(part, columns=[PREDICTION_ID]).column(0).to_pylist()
                offset = ids.index(prediction_id) if prediction_id in ids else None
            else:
                assert index is not None
                offset = index - seen if seen <= index < seen + rows else None
            if offset is not None:
                row = pq.read_table(part).slice(offset, 1).to_pylist()[0]
                return Served(day, role, dict(row), seen + offset, (seen, seen + rows))
            seen += rows
    if prediction_id is not None:
        raise LineageQueryError(f"prediction {prediction_id!r} is not in {uri}")
    raise LineageQueryError(f"{uri} has {seen} rows: --row {index} is past its end (rows 0..{seen - 1})")


def locate(tracer: Tracer, options: ExplainOptions) -> Served:
    """The served prediction the options ask about."""
    if options.prediction_id:
        day, role, _ = tracer.find_prediction(options.prediction_id, options.partition)
        return served_prediction(tracer, day, role, prediction_id=options.prediction_id)
    assert options.partition is not None and options.row is not None  # ExplainOptions asks exactly one question
    role = ModelRole(options.role or ModelRole.CHAMPION)
    return served_prediction(tracer, options.partition, role, index=options.row)


def scored_rows(ctx: StepContext, served: Served, manifest: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the validated row that was scored, the rows scored with it), from the very data scored (digest checked)."""
    usecase = ctx.usecase
    source = manifest.get("source") or ctx.storage.partition_uri(usecase.name, Dataset.VALIDATED, served.day)
    scored_digest = manifest.get("source_digest")
    if ctx.storage.manifest(source) is None:
        raise ExplainError(f"the data scored, {source}, is no longer committed (withdrawn or deleted)")
    with ctx.storage.local_copy(source) as folder:
        now = sha256_file(folder / DATA_FILE)
        if scored_digest and now != scored_digest:
            raise ExplainError(
                f"{source} now holds other data (sha256 {now}) than the data scored (sha256 {scored_digest}): "
                "the day was validated again after scoring; score it again to explain its predictions"
            )
        start, stop = served.chunk
        chunk = pq.read_table(folder / DATA_FILE).slice(start, stop - start).to_pandas()
    row = chunk.iloc[[served.index - start]].reset_index(drop=True)
    key = served.row[usecase.key]
    if row[usecase.key].iloc[0] != key:
        raise ExplainError(
            f"row {served.index} of {source} has {usecase.key} = {row[usecase.key].iloc[0]!r}, but the prediction "
            f"was made for {key!r}: the predictions are not in the order of the data scored"
        )
    return row, chunk


def raw_row(ctx: StepContext, tracer: Tracer, day: dt.date, key: Any, manifest: dict[str, Any]) -> dict[str, Any]:
    """The row as it landed (raw/ds=D, read as `validate` reads it), or why it cannot be shown."""
    uri = tracer.uri(Dataset.RAW, day)
    raw_manifest = ctx.storage.manifest(uri)
    where = f"raw {day}"
    if raw_manifest is None:
        return tracer.gap(where, f"no committed partition at {uri}")
    scored_from = manifest.get("source_raw_digest")
    if scored_from and raw_manifest.get("digest") != scored_from:
        return tracer.gap(
            where,
            f"re-delivered after scoring (now sha256 {raw_manifest.get('digest')}, scored sha256 {scored_from}): "
            "the row as it landed then is no longer in raw/",
        )
    with ctx.storage.local_copy(uri) as folder:
        source, fmt = raw_file(folder, raw_manifest)
        try:
            frame = read_partition(source, fmt, ctx.usecase.data_contract)
        except UnreadableData as exc:
            return tracer.gap(where, str(exc))
    matches = frame[frame[ctx.usecase.key] == key]
    if len(matches) != 1:
        return tracer.gap(where, f"{len(matches)} rows with {ctx.usecase.key} = {key!r} in {uri}")
    return {
        "uri": uri,
        "file": source.name,
        "format": fmt,
        "digest": raw_manifest.get("digest"),
        "landing": raw_manifest.get("source"),
        "row": python_row(matches.reset_index(drop=True)),
    }


def contract_section(
    ctx: StepContext, day: dt.date, row: dict[str, Any], manifest: dict[str, Any], partition: dict[str, Any]
) -> dict[str, Any]:
    """The contract's per-row rules evaluated on the row; the dataset-level ones with the partition's verdict."""
    validated = ctx.storage.manifest(str(manifest.get("source"))) or {}
    profile = profile_of(validated) if validated else str(manifest.get("source_profile") or SERVING)
    contract = ctx.usecase.data_contract
    serving = profile == SERVING
    checks = [c.to_dict() for c in row_checks(contract, row, day, serving=serving)]
    failed = [c for c in checks if c["outcome"] == "failed"]
    summary = validated.get("summary") or {}
    recorded = {(f.get("rule"), f.get("column") or ""): f for f in summary.get("failed", [])}
    dataset = []
    for check in dataset_checks(contract, serving=serving):
        failure = recorded.get((check["rule"], check["column"]))
        verdict = (
            "passed" if failure is None else f"{failure.get('severity')} failure: observed {failure.get('observed')}"
        )
        dataset.append({**check, "partition_verdict": verdict})
    current = sha256_file(Path(ctx.usecase.contract_path))
    then = validated.get("contract_digest")
    return {
        "profile": profile,
        "contract": str(ctx.usecase.contract_path.name),
        "contract_changed_since_validation": bool(then and then != current),
        "row_verdict": "passed"
        if not failed
        else "failed: " + ", ".join(f"{c['rule']} on {c['column']} ({c['severity']})" for c in failed),
        "row_checks": checks,
        "dataset_checks": dataset,
        "partition": partition,
    }


def reference_frame(
    ctx: StepContext, tracer: Tracer, version: str, columns: list[str]
) -> pd.DataFrame | dict[str, str]:
    """The version's training split (its input columns): what the baseline deltas compare the row with."""
    tags = tracking.version_tags(ctx.usecase, version)
    uri = tags.get(Tag.FEATURES_URI)
    where = f"model version {version}"
    if not uri:
        return tracer.gap(where, "no mlcycle.features_uri tag: its training split is unknown")
    if ctx.storage.manifest(uri) is None:
        return tracer.gap(where, f"its features partition {uri} is no longer committed")
    with ctx.storage.local_copy(uri) as folder:
        return pd.read_parquet(folder / split_file(Split.TRAIN), columns=columns)


def model_section(
    ctx: StepContext, tracer: Tracer, version: str, served: Served, validated: pd.DataFrame, batch: pd.DataFrame
) -> dict[str, Any]:
    """The model input, feature vector, contributions, and the score and decision reproduced from the registry.

    The score is reproduced on the rows `score` scored together with this one (its part file): a model may compute
    one row alone with other floating-point rounding than in a batch (float32 matrix products: ~1e-7 for the
    torch MLP), and the served score is the batch's. The row's score alone is reported next to it.
    """
    usecase = ctx.usecase
    what = f"{usecase.registered_model_name} v{version}"
    model = load_model(usecase, version)
    try:
        row, rows = model_input(model, validated, what), model_input(model, batch, what)
    except MissingModelInput as exc:
        raise ExplainError(str(exc)) from None
    score = float(predict_score(model, rows)[served.index - served.chunk[0]])
    alone = float(predict_score(model, row)[0])
    served_score = float(served.row["score"])
    difference = abs(score - served_score)
    threshold = usecase.model.decision_threshold
    pipeline = contrib.fitted_pipeline(model)
    vector = contrib.feature_vector(pipeline, row)
    contributions: dict[str, Any] | None = contrib.linear_terms(pipeline, vector)
    if contributions is None:
        reference = reference_frame(ctx, tracer, version, list(row.columns))
        if isinstance(reference, pd.DataFrame):
            contributions = contrib.baseline_deltas(model, row, reference, usecase.model.seed)
        else:
            contributions = reference
    return {
        "model": {
            "registered_model": usecase.registered_model_name,
            "version": version,
            "uri": tracking.model_uri(usecase, version),
        },
        # Lists, not mappings: the order is the model's (the JSON result's keys are sorted).
        "input": [{"column": column, "value": plain(value)} for column, value in python_row(row).items()],
        "feature_vector": [{"column": column, "value": value} for column, value in vector.items()],
        "contributions": contributions,
        "score": {
            "served": served_score,
            "reproduced": score,
            "difference": difference,
            "tolerance": TOLERANCE,
            "equal": difference <= TOLERANCE,
            "scored_with": f"rows {served.chunk[0]}..{served.chunk[1] - 1} of the partition, as served",
            "alone": alone,
        },
        "decision": {
            "served": int(served.row["decision"]),
            "threshold_now": threshold,
            "reproduced": int(score >= threshold),
        },
    }


def explain(ctx: StepContext, tracer: Tracer, served: Served) -> dict[str, Any]:
    """The explanation document of one served prediction."""
    usecase, day, role = ctx.usecase, served.day, served.role
    uri = tracer.uri(Dataset.PREDICTIONS, day, role_sub(role))
    manifest = ctx.storage.manifest(uri) or {}
    version = str(served.row.get("model_version") or manifest.get("model_version") or "")
    if not version:
        raise ExplainError(f"neither the prediction nor {uri}/_SUCCESS names the model version that served it")
    key = served.row[usecase.key]
    predictions = tracer.predictions(day, role)
    validated, batch = scored_rows(ctx, served, manifest)
    landed = raw_row(ctx, tracer, day, key, manifest)
    checked_row = landed["row"] if not is_unknown(landed) else python_row(validated)
    return {
        "prediction": {
            PREDICTION_ID: served.row[PREDICTION_ID],
            "partition": day.isoformat(),
            "role": role.value,
            "row": served.index,
            usecase.key: plain(key),
            "predictions": uri,
            "scored_by": predictions["scored_by"],
            "scored_data": predictions["scored_data"],
        },
        "raw": landed if is_unknown(landed) else {**landed, "row": {k: plain(v) for k, v in landed["row"].items()}},
        "contract": contract_section(ctx, day, checked_row, manifest, predictions["data"]["contract"]),
        **model_section(ctx, tracer, version, served, validated, batch),
    }


def render(document: dict[str, Any]) -> list[str]:
    """The explanation as text: what a person reads first (score, decision), then the row, checks and features."""
    p, score, decision = document["prediction"], document["score"], document["decision"]
    model = document["model"]
    lines = [
        f"prediction {p[PREDICTION_ID]} ({p['partition']}, role={p['role']})",
        f"  served by {model['registered_model']} v{model['version']}: score {score['served']!r}, "
        f"decision {decision['served']}",
        f"  reproduced from the registered version: score {score['reproduced']!r} "
        f"(|difference| {score['difference']:.3g}, {'equal' if score['equal'] else 'NOT equal'} within "
        f"{score['tolerance']:g}; {score['scored_with']}); decision {decision['reproduced']} at threshold "
        f"{decision['threshold_now']}",
        f"  the row scored alone: {score['alone']!r}",
        "",
    ]
    raw = document["raw"]
    if is_unknown(raw):
        lines.append(f"raw row: UNKNOWN ({raw['unknown']})")
    else:
        lines.append(f"raw row as landed ({raw['uri']}/{raw['file']}, sha256 {raw['digest']}):")
        lines += [f"  {k} = {v!r}" for k, v in raw["row"].items()]
    contract = document["contract"]
    lines += ["", f"contract checks on this row ({contract['profile']} profile): {contract['row_verdict']}"]
    if contract["contract_changed_since_validation"]:
        lines.append("  (the contract file changed since the partition was validated: checked with today's)")
    for check in contract["row_checks"]:
        lines.append(
            f"  [{check['outcome']}] {check['rule']} {check['column']} ({check['severity']}): expected "
            f"{check['expected']}; observed {check['observed']}"
        )
    lines.append("  judged on the whole partition, not on one row:")
    for check in contract["dataset_checks"]:
        column = f" {check['column']}" if check["column"] else ""
        lines.append(f"    {check['rule']}{column} ({check['why']}): {check['partition_verdict']}")
    lines += ["", f"model input (the version's signature, {len(document['input'])} columns):"]
    lines += [f"  {c['column']} = {c['value']!r}" for c in document["input"]]
    lines += ["", f"feature vector after preprocessing ({len(document['feature_vector'])} columns):"]
    lines += [f"  {c['column']} = {c['value']!r}" for c in document["feature_vector"]]
    contributions = document["contributions"]
    lines.append("")
    if is_unknown(contributions):
        lines.append(f"contributions: UNKNOWN ({contributions['unknown']})")
    elif contributions["method"] == contrib.LINEAR:
        lines.append(
            f"contributions ({contributions['method']}, {contributions['unit']}): intercept "
            f"{contributions['intercept']:+.6f}, logit {contributions['logit']:+.6f}"
        )
        lines += [
            f"  {t['term']:+.6f}  {t['feature']} = {t['value']:g} (coef {t['coef']:+.6f})"
            for t in contributions["terms"]
        ]
    else:
        lines.append(
            f"contributions ({contributions['method']}, {contributions['unit']}; against {contributions['reference_rows']} "
            f"training rows, seed {contributions['seed']}; baseline score {contributions['baseline_score']:.6f}):"
        )
        lines += [f"  {d['delta']:+.6f}  {d['feature']} = {d['value']!r}" for d in contributions["deltas"]]
    return lines


def main(ctx: StepContext, options: ExplainOptions) -> ExplainResult:
    tracer = Tracer(ctx.usecase, ctx.storage)
    query = options.model_dump(mode="json", exclude_none=True, exclude={"as_json"})
    try:
        served = locate(tracer, options)
        document = explain(ctx, tracer, served)
    except (LineageQueryError, ExplainError) as exc:  # the question has no answer: a person must ask another one
        raise Rejected(str(exc), query=query) from None
    if not options.as_json:
        text = render(document)
        if tracer.unknown:
            text += ["", f"{len(tracer.unknown)} link(s) unknown:", *(f"  - {u}" for u in tracer.unknown)]
        sys.stdout.write("\n".join(text) + "\n\n")
        sys.stdout.flush()
    score = document["score"]
    if not score["equal"]:
        raise Rejected(
            f"the registered version v{document['model']['version']} scores {score['reproduced']!r} on this row, "
            f"not the served {score['served']!r} (|difference| {score['difference']:.3g} > {TOLERANCE:g})",
            query=query,
            explanation=json.loads(json.dumps(document, default=str)),
        )
    return ExplainResult.of(
        Tool.EXPLAIN,
        ctx.usecase.name,
        served.day.isoformat(),
        outputs={},
        metrics={
            "query": query,
            "explanation": json.loads(json.dumps(document, default=str)),
            "reproduced": score["equal"],
            "unknown": tracer.unknown,
        },
    )
