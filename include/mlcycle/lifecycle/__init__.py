"""The lifecycle page's data and rendering (Airflow UI plugin `plugins/mlcycle_lifecycle.py`).

Light by contract (import-linter `light-commands`): it runs in Airflow's api-server, so it reads the MLflow
registry through MLflow's REST API with the standard library, partition files with the standard library (boto3,
imported lazily, only for an S3 storage root), and Airflow's own DB for pending approvals.
"""
