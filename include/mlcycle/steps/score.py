"""score: validated/ds=D -> predictions/ds=D/role=champion, by the champion version resolved once."""

from __future__ import annotations

import argparse
import logging

import mlflow
import pandas as pd
import pyarrow.parquet as pq

from mlcycle.evaluation.evidence import feature_frame, predict_score
from mlcycle.registry import tracking
from mlcycle.steps.base import NothingToDo, StepContext, StepResult
from mlcycle.steps.ingest import DATA_FILE

log = logging.getLogger(__name__)

# Rows per chunk: memory stays flat however large a day grows.
CHUNK_ROWS = 50_000


def main(ctx: StepContext, args: argparse.Namespace) -> StepResult:
    usecase, partition = ctx.usecase, ctx.partition.isoformat()
    champion = tracking.alias_version(usecase, tracking.CHAMPION)
    if champion is None:
        raise NothingToDo(f"{usecase.registered_model_name} has no @champion yet: nothing can score")
    version = str(champion.version)  # resolved once: the whole partition is scored by one version
    model = mlflow.pyfunc.load_model(tracking.model_uri(usecase, version))
    threshold = usecase.model.decision_threshold
    source, target = ctx.uri("validated"), ctx.uri("predictions", sub="role=champion")

    rows, positives = 0, 0
    manifest = {"step": "score", "model_version": version, "source": source}
    with ctx.storage.local_copy(source) as folder, ctx.storage.writer(target, manifest) as staging:
        parquet = pq.ParquetFile(folder / DATA_FILE)
        for index, batch in enumerate(parquet.iter_batches(batch_size=CHUNK_ROWS)):
            chunk = batch.to_pandas()
            score = predict_score(model, feature_frame(usecase, chunk))
            out = pd.DataFrame(
                {
                    "prediction_id": chunk[usecase.key].astype(str) + f":{usecase.registered_model_name}:{version}",
                    usecase.key: chunk[usecase.key],
                    "event_ts": chunk[usecase.timestamp],
                    "model_name": usecase.registered_model_name,
                    "model_version": version,
                    "model_role": "champion",
                    "score": score,
                    "decision": (score >= threshold).astype("int8"),
                    # The partition's end, not now(): re-scoring a day yields identical files.
                    "scored_for": pd.Timestamp(ctx.partition, tz="UTC") + pd.Timedelta(days=1),
                }
            )
            out.to_parquet(staging / f"part-{index:05d}.parquet", index=False)
            rows += len(out)
            positives += int(out["decision"].sum())
    log.info("scored %d rows of %s with version %s", rows, source, version)
    return StepResult(
        "score",
        usecase.name,
        partition,
        outputs={"predictions": target},
        metrics={"rows": rows, "positive_decisions": positives, "model_version": version},
    )
