"""report: every version ever registered for a use case, and when it held @champion."""

from __future__ import annotations

from typing import Any

from mlcycle.monitoring.offline_online import offline_online, offline_online_table
from mlcycle.registry import tracking
from mlcycle.registry.champion import PREVIOUS, champion_periods
from mlcycle.specs.names import Tool
from mlcycle.specs.options import Options
from mlcycle.specs.results import ReportResult
from mlcycle.steps.base import StepContext
from mlcycle.tags import Tag


def main(ctx: StepContext, options: Options) -> ReportResult:
    usecase = ctx.usecase
    name = usecase.registered_model_name
    rows: list[dict[str, Any]] = []
    for version in tracking.all_versions(usecase):
        number = version.version
        tags = version.tags
        periods = champion_periods(tags)
        rows.append(
            {
                "version": str(number),
                "aliases": list(version.aliases),
                "partition": tags.get(Tag.PARTITION),
                "airflow_run": f"{tags.get('airflow.dag_id', '')}/{tags.get('airflow.run_id', '')}",
                "gate": tags.get(Tag.GATE_DECISION),
                "champion_periods": periods,
                "previous_champion": tags.get(PREVIOUS) or None,
                "approver": tags.get(Tag.APPROVER),
            }
        )
    print(f"{name}: {len(rows)} versions", flush=True)
    for row in rows:
        held = ", ".join(f"{start} -> {end or 'now'}" for start, end in row["champion_periods"]) or "never champion"
        print(
            f"  v{row['version']:<4} {','.join(row['aliases']) or '-':22s} gate={row['gate'] or '-':20s} "
            f"partition={row['partition']}  champion: {held}",
            flush=True,
        )
    # Offline test metric vs online (labelled live) metric per version, logged by monitoring: does offline predict?
    table = offline_online(usecase)
    print(offline_online_table(table), flush=True)
    return ReportResult.of(
        Tool.REPORT, usecase.name, "", outputs={}, metrics={"versions": rows, "offline_online": table}
    )
