"""Local services for tests and `make up`: processes that always stop completely, and Airflow 3's components.

See `mlcycle_dev.stack.airflow` for a usage example. Standard library only: importing this starts nothing and
imports no Airflow.
"""

from mlcycle.airflow_api import AirflowAPIError
from mlcycle_dev.stack.airflow import COMPONENTS, AirflowServices
from mlcycle_dev.stack.process import ManagedProcess, ServiceError, free_port, free_ports, wait_until

__all__ = [
    "COMPONENTS",
    "AirflowAPIError",
    "AirflowServices",
    "ManagedProcess",
    "ServiceError",
    "free_port",
    "free_ports",
    "wait_until",
]
