"""The parse-safe specs of mlcycle's commands: names, typed options, typed results (stdlib + pydantic only).

Below the orchestration layer and the step bodies, above nothing: config, the CLI, the DAG factory, alerts,
rerun and backfill import it; it imports no other part of mlcycle.
"""
