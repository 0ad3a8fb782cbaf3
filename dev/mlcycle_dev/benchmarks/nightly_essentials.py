"""The essential call each nightly step wraps, timed on the data the step itself used (`benchmarks.nightly`).

Run in a fresh interpreter per step (`python -m mlcycle_dev.benchmarks.nightly_essentials STEP ...`, through
`harness.run_isolated`) on the storage root and MLflow store the nightly run left behind. Imports, model loading,
MLflow client set-up and GX suite compilation happen before the clock: what is timed is only the work no
implementation of the step can avoid (wall seconds, and this process's CPU seconds: steadier on a shared machine):

- ingest: copying the window's landing files (the bytes raw/ must hold);
- validate: per day, reading raw Parquet, the compiled GX suite run directly (`batch.validate`), writing Parquet;
- features: reading the window's validated columns, concatenating, writing the three splits (Arrow tables, as
  the step does since it stopped building pandas frames);
- train: the pipeline's `fit` (ordinal encoding + HistGradientBoostingClassifier) on the rows the step fits (the
  train split, or its `split.max_train_rows` sample);
- evaluate: `predict_proba` of the candidate on the test split and the recent window;
- promote: the registry calls alone (read the champion alias and version, tag the version, set the alias);
- score: reading the day, `predict_proba` on its rows, writing the scores;
- monitor: reading the reference (the step's seeded sample of at most 2M rows) and the day's columns, then the
  drift statistics alone (KS / chi-squared on
  the same sketch and sample the step tests, scipy), without Evidently's report.

Steps with nothing to do beyond a manifest check (scoring's ingest and validate of a day the training run
already validated, freshness) have no essential call: the whole step is fixed cost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlcycle.specs.names import Step

USECASE = "yarnit"


def _window(partition: dt.date, days: int) -> list[dt.date]:
    return [partition - dt.timedelta(days=back) for back in range(days - 1, -1, -1)]


def _folder(root: Path, dataset: str, day: dt.date | None = None) -> Path:
    from mlcycle.storage.layout import dataset_uri, partition_uri

    return Path(partition_uri(str(root), USECASE, dataset, day) if day else dataset_uri(str(root), USECASE, dataset))


def _raw_model(model: Any) -> Any:
    """The sklearn pipeline inside mlcycle's pyfunc: its own `predict_proba` is the essential call."""
    return model.get_raw_model() if hasattr(model, "get_raw_model") else model


def ingest(root: Path, partition: dt.date, days: int, **_: Any) -> dict[str, Any]:
    from mlcycle.storage.layout import DATA_FILE, Dataset

    files = [_folder(root, Dataset.LANDING, day) / DATA_FILE for day in _window(partition, days)]
    with tempfile.TemporaryDirectory(prefix="mlcycle-bench-nightly-") as scratch:
        started, cpu_started = time.perf_counter(), time.process_time()
        for index, path in enumerate(files):
            shutil.copyfile(path, Path(scratch) / f"{index}.parquet")
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "what": f"copy {len(files)} landing files",
        "bytes": sum(f.stat().st_size for f in files),
    }


def validate(root: Path, partition: dt.date, days: int, **_: Any) -> dict[str, Any]:
    import pandas as pd

    from mlcycle.config import get_usecase
    from mlcycle.contracts.compile import build_suite
    from mlcycle.contracts.gx_patch import disable_batch_fingerprint
    from mlcycle.contracts.gx_runner import _RESULT_FORMAT, _batch_definition, arrow_strings
    from mlcycle.schema import load_contract
    from mlcycle.storage.layout import DATA_FILE, Dataset

    contract = load_contract(get_usecase(USECASE).contract_path)
    window = _window(partition, days)
    suites = {day: build_suite(contract, partition=day) for day in window}  # compiled before the clock
    disable_batch_fingerprint()
    definition = _batch_definition()
    seconds, cpu, rows, evaluated = 0.0, 0.0, 0, 0
    with tempfile.TemporaryDirectory(prefix="mlcycle-bench-nightly-") as scratch:
        for day in window:
            started, cpu_started = time.perf_counter(), time.process_time()
            frame = pd.read_parquet(_folder(root, Dataset.RAW, day) / DATA_FILE)
            batch = definition.get_batch(batch_parameters={"dataframe": arrow_strings(frame, contract)})
            result = batch.validate(suites[day], result_format=_RESULT_FORMAT)
            frame.to_parquet(Path(scratch) / f"{day}.parquet", index=False)
            seconds += time.perf_counter() - started
            cpu += time.process_time() - cpu_started
            rows += len(frame)
            evaluated += len(result.results)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "what": f"read + GX suite + write, {len(window)} days",
        "rows": rows,
        "checks": evaluated,
    }


def features(root: Path, partition: dt.date, days: int, **_: Any) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcycle.config import get_usecase
    from mlcycle.steps.features import model_columns, split_of
    from mlcycle.storage.layout import DATA_FILE, SPLITS, Dataset, split_file

    usecase = get_usecase(USECASE)
    window = _window(partition, days)
    columns = model_columns(usecase)
    with tempfile.TemporaryDirectory(prefix="mlcycle-bench-nightly-") as scratch:
        started, cpu_started = time.perf_counter(), time.process_time()
        tables: dict[str, list[Any]] = {s: [] for s in SPLITS}
        for day in window:
            table = pq.read_table(_folder(root, Dataset.VALIDATED, day) / DATA_FILE, columns=columns)
            tables[split_of(day, window, usecase)].append(table)
        for split in SPLITS:
            pq.write_table(pa.concat_tables(tables[split]), Path(scratch) / split_file(split))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {"seconds": seconds, "cpu_seconds": cpu, "what": f"read {len(window)} days, concat, write 3 splits (Arrow)"}


def _features_split(root: Path, partition: dt.date, split: str, columns: list[str] | None = None) -> Any:
    import pandas as pd

    from mlcycle.storage.layout import Dataset, split_file

    return pd.read_parquet(_folder(root, Dataset.FEATURES, partition) / split_file(split), columns=columns)


def train(root: Path, partition: dt.date, **_: Any) -> dict[str, Any]:
    from mlcycle.config import get_usecase
    from mlcycle.storage.layout import Dataset, Split, split_file
    from mlcycle.training.model_io import feature_frame
    from mlcycle.training.sampling import read_sample
    from mlcycle.training.trainers import build_model

    usecase = get_usecase(USECASE)
    # The rows the step fits: the train split, cut to the use case's `split.max_train_rows` as the step cuts it.
    path = _folder(root, Dataset.FEATURES, partition) / split_file(Split.TRAIN)
    table, sample = read_sample(path, usecase.split.max_train_rows, usecase.model.seed)
    X, y = feature_frame(usecase, table), table[usecase.target.name]
    model = build_model(usecase)
    started, cpu_started = time.perf_counter(), time.process_time()
    model.fit(X, y)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    what = "pipeline fit (HGB) on the train split" + (f"'s {sample.rows:,}-row sample" if sample.sampled else "")
    return {"seconds": seconds, "cpu_seconds": cpu, "what": what, "rows": len(table)}


def _recent(root: Path, partition: dt.date) -> Any:
    """The evaluate step's recent window: the labelled days before the partition that were validated."""
    import pandas as pd

    from mlcycle.config import get_usecase
    from mlcycle.storage.layout import DATA_FILE, Dataset

    usecase = get_usecase(USECASE)
    last = partition - dt.timedelta(days=usecase.target.label_delay_days)
    days = [last - dt.timedelta(days=i) for i in range(usecase.thresholds.gate.recent_days)]
    paths = [p for p in (_folder(root, Dataset.VALIDATED, d) / DATA_FILE for d in sorted(days)) if p.is_file()]
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def evaluate(root: Path, partition: dt.date, version: str, **_: Any) -> dict[str, Any]:
    from mlcycle.config import get_usecase
    from mlcycle.steps.models import load_model
    from mlcycle.storage.layout import Split
    from mlcycle.training.model_io import feature_frame

    usecase = get_usecase(USECASE)
    model = _raw_model(load_model(usecase, version))
    frames = [
        feature_frame(usecase, _features_split(root, partition, Split.TEST)),
        feature_frame(usecase, _recent(root, partition)),
    ]
    started, cpu_started = time.perf_counter(), time.process_time()
    for frame in frames:
        model.predict_proba(frame)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "what": "predict_proba on test + recent rows",
        "rows": sum(len(f) for f in frames),
    }


def promote(version: str, **_: Any) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    from mlcycle.config import get_usecase
    from mlcycle.specs.names import ModelRole

    name = get_usecase(USECASE).registered_model_name
    client = MlflowClient()
    client.search_registered_models(max_results=1)  # the client's lazy store set-up is not a registry call
    started, cpu_started = time.perf_counter(), time.process_time()
    client.get_model_version(name, version)
    client.get_model_version_by_alias(name, ModelRole.CHAMPION)
    client.set_model_version_tag(name, version, "mlcycle.bench.nightly", "essential")
    client.set_registered_model_alias(name, ModelRole.CHAMPION, version)  # already there: the state stays
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {"seconds": seconds, "cpu_seconds": cpu, "what": "registry: read version + alias, tag, set alias"}


def score(root: Path, partition: dt.date, version: str, **_: Any) -> dict[str, Any]:
    import pandas as pd

    from mlcycle.config import get_usecase
    from mlcycle.steps.models import load_model
    from mlcycle.storage.layout import DATA_FILE, Dataset
    from mlcycle.training.model_io import feature_frame

    usecase = get_usecase(USECASE)
    model = _raw_model(load_model(usecase, version))
    with tempfile.TemporaryDirectory(prefix="mlcycle-bench-nightly-") as scratch:
        started, cpu_started = time.perf_counter(), time.process_time()
        table = pd.read_parquet(_folder(root, Dataset.VALIDATED, partition) / DATA_FILE)
        scores = model.predict_proba(feature_frame(usecase, table))[:, 1]
        pd.DataFrame({usecase.key: table[usecase.key], "score": scores}).to_parquet(Path(scratch) / "s.parquet")
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "what": "read day + predict_proba + write scores",
        "rows": len(table),
    }


def monitor(root: Path, partition: dt.date, **_: Any) -> dict[str, Any]:
    import pandas as pd
    from scipy import stats

    from mlcycle.config import get_usecase
    from mlcycle.monitoring.drift import DEFAULT_SEED, build_reference_profile, current_sample_size, sample_current
    from mlcycle.steps.monitor import REFERENCE_MAX_ROWS
    from mlcycle.storage.layout import DATA_FILE, Dataset, Split, split_file
    from mlcycle.training.sampling import read_sample

    usecase = get_usecase(USECASE)
    numeric, categorical = list(usecase.numeric_features), list(usecase.categorical_features)
    columns = [c.name for c in usecase.features]
    sample_rows = usecase.thresholds.drift.sample_rows
    started, cpu_started = time.perf_counter(), time.process_time()
    # As the step: a seeded sample of at most REFERENCE_MAX_ROWS of the train split, drawn before pandas.
    path = _folder(root, Dataset.FEATURES, partition) / split_file(Split.TRAIN)
    reference, _sample = read_sample(path, REFERENCE_MAX_ROWS, usecase.model.seed, columns=columns)
    current = pd.read_parquet(_folder(root, Dataset.VALIDATED, partition) / DATA_FILE, columns=columns)
    # As the step: a sketch of the reference and a seeded sample of the day, or (no sample_rows) every row.
    if sample_rows is None:
        ref, cur = reference, current
    else:
        ref = build_reference_profile(reference, numeric=numeric, categorical=categorical, size=sample_rows).frame
        cur = sample_current(current, columns, current_sample_size(len(reference), sample_rows), DEFAULT_SEED)
    for column in numeric:
        stats.ks_2samp(ref[column].dropna(), cur[column].dropna())
    for column in categorical:
        table = pd.crosstab(
            pd.concat([ref[column], cur[column]], ignore_index=True),
            [0] * len(ref) + [1] * len(cur),
        )
        stats.chi2_contingency(table.to_numpy())
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "what": "read ref (its 2M-row sample) + day, sketch/sample, KS + chi2",
        "columns": len(columns),
    }


ESSENTIALS: dict[str, Callable[..., dict[str, Any]]] = {
    Step.INGEST: ingest,
    Step.VALIDATE: validate,
    Step.FEATURES: features,
    Step.TRAIN: train,
    Step.EVALUATE: evaluate,
    Step.PROMOTE: promote,
    Step.SCORE: score,
    Step.MONITOR: monitor,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=sorted(ESSENTIALS))
    parser.add_argument("--root", type=Path, required=True, help="the nightly run's storage root (a local folder)")
    parser.add_argument("--partition", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--days", type=int, required=True, help="the training window's days")
    parser.add_argument("--version", default="", help="the model version the nightly trained")
    args = parser.parse_args(argv)
    result = ESSENTIALS[args.step](root=args.root, partition=args.partition, days=args.days, version=args.version)
    print(json.dumps({"step": args.step, **result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
