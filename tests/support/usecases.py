"""Use-case folders edited for a test: a copy of the shipped folder, its usecase.yaml changed as data."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter

from mlcycle.config import DEFAULT_USECASES_DIR

#: A p95 latency budget no machine misses: the gate then decides on the model alone.
LENIENT_LATENCY_P95_MS = 60_000


def lenient_usecases(folder: Path, usecase: str = "yarnit") -> Path:
    """A copy of the use case folders whose gate ignores latency; returns the folder for MLCYCLE_USECASES_DIR.

    The gate's p95 latency budget measures the machine as much as the model: on a loaded CI machine it can
    reject the only candidate. Tests about something else (backfills, UIs) need a champion every time.
    """
    target = folder / "usecases"
    shutil.copytree(DEFAULT_USECASES_DIR / usecase, target / usecase)
    config = target / usecase / "usecase.yaml"
    data: dict[str, Any] = yaml.safe_load(config.read_text())
    gate = data.get("thresholds", {}).get("gate")
    if not isinstance(gate, dict) or "latency_p95_ms" not in gate:
        raise ValueError(f"{config}: no thresholds.gate.latency_p95_ms to relax")
    gate["latency_p95_ms"] = LENIENT_LATENCY_P95_MS
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


#: A cron with no tick between a use case's start_date (2026-09-01) and the tests: unpaused DAGs get no cron run
#: (for a day without data), while the scheduler still creates Asset-triggered runs (`use_job_schedule` must stay
#: on for those: monitoring runs on scoring's predictions, ADR 0010). 29 February: the next tick is 2028-02-29
#: (a plain "1 January" ticked on 2027-01-01 and would have broken these tests from that day on).
NO_TICK_YET = "0 0 29 2 *"


def without_cron_runs(usecases: Path, usecase: str = "yarnit") -> Path:
    """Edit the copy made by `lenient_usecases` so that training and scoring have no cron tick yet; returns it."""
    config = usecases / usecase / "usecase.yaml"
    data: dict[str, Any] = yaml.safe_load(config.read_text())
    start = dt.datetime.combine(data["schedule"]["start_date"], dt.time(), dt.UTC)
    tick = croniter(NO_TICK_YET, start).get_next(dt.datetime)
    if tick <= dt.datetime.now(dt.UTC):
        raise RuntimeError(f"NO_TICK_YET {NO_TICK_YET!r} ticked on {tick} (after {start}): pick a later day")
    data["schedule"].update(training=NO_TICK_YET, scoring=NO_TICK_YET)
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return usecases


#: A small seeded search over yarnit's gradient boosting (3 trials: tests stay fast).
TUNED_SEARCH: dict[str, Any] = {
    "strategy": "random",
    "trials": 3,
    "seed": 7,
    "max_time": "10m",
    "every": "7d",
    "params": {
        "max_iter": {"type": "int", "low": 10, "high": 30},
        "learning_rate": {"type": "float", "low": 0.03, "high": 0.3, "log": True},
        "max_leaf_nodes": {"type": "choice", "values": [7, 15, 31]},
    },
}


def tuned_usecase(folder: Path, name: str = "yarnit", search: dict[str, Any] | None = None) -> Path:
    """A copy of yarnit named `name` whose training is tuned (`model.search`); returns its usecase.yaml."""
    target = folder / name
    shutil.copytree(DEFAULT_USECASES_DIR / "yarnit", target)
    config = target / "usecase.yaml"
    data: dict[str, Any] = yaml.safe_load(config.read_text())
    data["name"] = name
    data["model"] = {**data["model"], "search": search or TUNED_SEARCH}
    data["thresholds"]["gate"]["latency_p95_ms"] = LENIENT_LATENCY_P95_MS
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config
