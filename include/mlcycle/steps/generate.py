"""generate: synthetic YarnIt landing partitions (the demo's data source)."""

from __future__ import annotations

import datetime as dt

from mlcycle.specs.catalog import GenerateOptions
from mlcycle.specs.names import Tool
from mlcycle.specs.results import GenerateResult
from mlcycle.steps.base import StepContext
from mlcycle.storage.layout import DATA_FILE, Dataset, dataset_uri
from mlcycle.storage.partitions import parse_partition
from mlcycle.synthetic.yarnit import active_scenarios, generate_day, parse_scenario


def main(ctx: StepContext, options: GenerateOptions) -> GenerateResult:
    start, end = parse_partition(options.start), parse_partition(options.end)
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    scenarios = [parse_scenario(spec) for spec in options.scenario]
    written: dict[str, int] = {}
    day = start
    while day <= end:
        frame = generate_day(day, seed=options.seed, scenarios=scenarios, base_rows=options.rows)
        manifest = {"step": "generate", "seed": options.seed, "scenarios": active_scenarios(day, scenarios)}
        with ctx.storage.writer(ctx.uri(Dataset.LANDING, day), manifest) as staging:
            frame.to_parquet(staging / DATA_FILE, index=False)
        written[day.isoformat()] = len(frame)
        day += dt.timedelta(days=1)
    return GenerateResult.of(
        Tool.GENERATE,
        ctx.usecase.name,
        f"{start}..{end}",
        outputs={"landing": dataset_uri(ctx.storage.root, ctx.usecase.name, Dataset.LANDING)},
        metrics={"rows": written, "scenarios": options.scenario},
    )
