"""Which Airflow run a step process belongs to (standard library only).

The launcher (local subprocess or pod) passes the run's identity as MLCYCLE_AIRFLOW_* variables; steps
carry it in their context and the registry writes it onto MLflow runs. It lives at the bottom of the
package so that both can import it without the registry depending on the step layer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mlcycle.tags import Tag


@dataclass(frozen=True)
class AirflowRun:
    """The Airflow run a step belongs to, passed by the launcher as MLCYCLE_AIRFLOW_* variables."""

    dag_id: str = ""
    run_id: str = ""
    logical_date: str = ""
    try_number: str = ""
    trigger: str = ""

    @classmethod
    def from_env(cls) -> AirflowRun:
        get = os.environ.get
        return cls(
            dag_id=get("MLCYCLE_AIRFLOW_DAG_ID", ""),
            run_id=get("MLCYCLE_AIRFLOW_RUN_ID", ""),
            logical_date=get("MLCYCLE_AIRFLOW_LOGICAL_DATE", ""),
            try_number=get("MLCYCLE_AIRFLOW_TRY_NUMBER", ""),
            trigger=get("MLCYCLE_TRIGGER", ""),
        )

    def tags(self) -> dict[str, str]:
        """MLflow tags that answer "which Airflow run made this?"."""
        return {
            "airflow.dag_id": self.dag_id,
            "airflow.run_id": self.run_id,
            "airflow.logical_date": self.logical_date,
            "airflow.try_number": self.try_number,
            Tag.TRIGGER: self.trigger,
        }
