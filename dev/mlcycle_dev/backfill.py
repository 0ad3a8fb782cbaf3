"""`make backfill USECASE=u FROM=d1 TO=d2 [DAGS=scoring,monitoring] [REPROCESS=completed]` on any Airflow.

The runtime command (`python -m mlcycle.backfill`) only talks to the Airflow named by AIRFLOW_API_URL. This
wrapper adds the embedded default: without AIRFLOW_API_URL it starts the embedded Airflow's api-server,
scheduler and dag-processor for the duration (stop `make ui` first: one scheduler per SQLite database), then
runs the same backfills against it. With AIRFLOW_API_URL set (`make up`, production) it is the runtime command.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from mlcycle import backfill
from mlcycle.airflow_api import URL_ENV, AirflowClient
from mlcycle.settings import embedded_environment
from mlcycle_dev.stack.airflow import AirflowServices

EMBEDDED_COMPONENTS = ("api-server", "scheduler", "dag-processor")


def main(argv: Sequence[str] | None = None) -> int:
    # Arguments are checked before anything starts: a typo should not cost an Airflow start-up.
    args = backfill.build_parser(prog="python -m mlcycle_dev.backfill").parse_args(argv)
    backfill.check_request(args.start, args.end, backfill.families_of(args))
    if os.environ.get(URL_ENV):
        return backfill.run(args, AirflowClient.from_env())
    env = {**os.environ, **embedded_environment()}
    print("starting the embedded Airflow (api-server, scheduler, dag-processor) for the backfill...", flush=True)
    with AirflowServices(env, components=EMBEDDED_COMPONENTS) as services:
        client = AirflowClient(services.base_url, username=services.username, password=services.password)
        return backfill.run(args, client)


if __name__ == "__main__":
    sys.exit(main())
