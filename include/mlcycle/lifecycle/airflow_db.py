"""Pending approvals: Airflow's human-in-the-loop requests, read with the api-server's own DB session.

Generic on purpose: any HITL operator (ApprovalOperator, HITLBranchOperator, ...) of the use case's DAGs whose
request has no response yet, whatever its task is called. Airflow is imported inside the function: this module
is only called in the api-server, where Airflow's ORM is already loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlcycle.lifecycle.view import Approval, ApprovalsUnavailable, Links, approvals_from_rows


def pending_approvals(dag_ids: Sequence[str], links: Links) -> list[Approval]:
    """The unanswered HITL requests of task instances of `dag_ids` (ApprovalsUnavailable if the DB fails)."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    query = (
        select(
            TaskInstance.dag_id,
            TaskInstance.run_id,
            TaskInstance.task_id,
            TaskInstance.map_index,
            TaskInstance.state,
            HITLDetail.subject,
            HITLDetail.body,
            HITLDetail.options,
            HITLDetail.assignees,
            HITLDetail.created_at,
        )
        .join(TaskInstance, HITLDetail.ti_id == TaskInstance.id)
        .where(TaskInstance.dag_id.in_(list(dag_ids)), HITLDetail.responded_at.is_(None))
        .order_by(HITLDetail.created_at)
    )
    try:
        with create_session() as session:
            rows: list[dict[str, Any]] = [dict(row._mapping) for row in session.execute(query)]
    except SQLAlchemyError as exc:
        raise ApprovalsUnavailable(f"Airflow's metadata DB did not answer the human-in-the-loop query: {exc}") from None
    # A request whose task no longer waits (ended by a timeout, cleared, failed) is not pending.
    waiting = [row for row in rows if str(row["state"] or "") in WAITING_STATES]
    return approvals_from_rows(waiting, links)


#: Task instance states in which a HITL request still waits for a person (Airflow 3.3: `deferred` while its
#: trigger waits, `awaiting_input` when parked without one).
WAITING_STATES = frozenset({"deferred", "awaiting_input"})
