"""mlcycle's dev tooling, kept out of the runtime package (and so out of the task image).

- `mlcycle_dev.stack`: the local production-like stack of `make up` (PostgreSQL, an S3 API, the MLflow
  server, Airflow's services) and the process supervisor that tests use to start services;
- `mlcycle_dev.demo`: `make demo` / `make ui`;
- `mlcycle_dev.backfill`: `make backfill`, which starts the embedded Airflow when no AIRFLOW_API_URL is set;
- `mlcycle_dev.benchmarks`: `make bench`.

It imports the runtime package (`mlcycle`); the runtime never imports it. The YarnIt data generator stays in
the runtime (`mlcycle generate`): the pod smoke tests run it from the task image.
"""
