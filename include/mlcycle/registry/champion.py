"""`@champion`: who holds it, and moving it by a locked compare-and-set.

MLflow has no conditional alias update, so the check ("does @champion still point where the caller
expects?") and the set run under the registry lock (`registry/lock.py`): of two racing promotions
exactly one wins. Every move records the replaced version (`mlcycle.previous_champion`) and the periods
each version held `@champion` (`PERIODS`), which `mlcycle report` prints and rollback follows.
"""

from __future__ import annotations

import datetime as dt
import json

from mlcycle.config import UseCase
from mlcycle.registry import tracking
from mlcycle.registry.lock import Lease, registry_lock
from mlcycle.specs.names import ModelRole
from mlcycle.storage.partitions import Storage
from mlcycle.tags import Tag

# The version tags promotions and reviews write (what each means: mlcycle.tags.Tag), by their registry names.
PERIODS = Tag.CHAMPION_PERIODS
PREVIOUS = Tag.PREVIOUS_CHAMPION
PROMOTED_BY = Tag.PROMOTED_BY
APPROVER = Tag.APPROVER
REASON = Tag.REASON
DECISION_URI = Tag.DECISION_URI
REVIEW = Tag.REVIEW
REVIEWED_BY = Tag.REVIEWED_BY
REVIEW_REASON = Tag.REVIEW_REASON
REVIEWED_AT = Tag.REVIEWED_AT
GATE_RECORD = Tag.GATE_RECORD


CANARY = Tag.CANARY


class CanaryState:
    """The values of a version's `mlcycle.canary` tag (`promotion: shadow_canary`)."""

    PENDING = "pending"  # the gate approved it against a champion; its labelled shadow days decide
    PASSED = "passed"  # promoted by the canary (`promoted by: canary`)
    REFUSED = "refused"  # trailed the champion on a labelled shadow day: stays @challenger


class NoRollbackTarget(Exception):
    """There is nothing to roll back to: no @champion, or the champion records no previous champion."""


class UnknownVersion(Exception):
    """The version to move @champion to is not a registered version of the use case's model."""


class ChampionChanged(Exception):
    """@champion no longer points at the version the caller compared against (the compare-and-set lost)."""

    def __init__(self, expected: str | None, found: str | None) -> None:
        super().__init__(
            f"champion changed since evaluation: expected version {expected}, registry has {found}; "
            "re-run evaluate against the new champion"
        )
        self.expected = expected
        self.found = found


def current_champion(usecase: UseCase) -> str | None:
    """The version @champion points at, or None when the use case has no champion yet."""
    champion = tracking.alias_version(usecase, ModelRole.CHAMPION)
    return None if champion is None else str(champion.version)


def rollback_target(usecase: UseCase) -> tuple[str, str]:
    """(current champion, the version it replaced): what a rollback moves @champion from and to."""
    current = current_champion(usecase)
    if current is None:
        raise NoRollbackTarget("rollback: there is no @champion to roll back")
    previous = tracking.version_tags(usecase, current).get(PREVIOUS, "")
    if not previous:
        raise NoRollbackTarget(f"rollback: champion version {current} has no previous champion recorded")
    return current, previous


def compare_and_set(storage: Storage, usecase: UseCase, new: str, expected: str | None, record: dict[str, str]) -> None:
    """Point @champion at `new` only if it still points at `expected` (None: no champion yet).

    `record` is written onto `new` as version tags. Raises ChampionChanged when another promotion won, and
    UnknownVersion when `new` is no registered version (checked before the lock is taken).
    """
    _check_exists(usecase, new)
    with registry_lock(storage, usecase.name) as lease:
        _compare_and_set(usecase, new, expected, record, lease)


def restore(storage: Storage, usecase: UseCase, version: str, expected: str, record: dict[str, str]) -> None:
    """Roll @champion back from `expected` to `version` by compare-and-set, keeping the lineage.

    The restored version keeps its own older previous champion (not `expected`), so repeated rollbacks
    walk further back instead of bouncing between two versions.
    """
    _check_exists(usecase, version)
    restored_previous = tracking.version_tags(usecase, version).get(PREVIOUS, "")
    compare_and_set(storage, usecase, version, expected, record)
    tracking.set_version_tags(usecase, version, {PREVIOUS: restored_previous})


def _check_exists(usecase: UseCase, version: str) -> None:
    name = usecase.registered_model_name
    # MLflow refuses a malformed number with INVALID_PARAMETER_VALUE (an error, not absence): refuse it here.
    if not version.isdigit():
        raise UnknownVersion(f"{version!r} is not a model version number (a positive whole number, e.g. 3)")
    if tracking.model_version(usecase, version) is None:
        raise UnknownVersion(
            f"version {version!r} of {name} does not exist in the registry (`mlcycle report` lists them)"
        )


def _compare_and_set(usecase: UseCase, new: str, expected: str | None, record: dict[str, str], lease: Lease) -> None:
    seen = current_champion(usecase)
    if seen != expected:
        raise ChampionChanged(expected, seen)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    tracking.set_version_tags(
        usecase,
        new,
        {**record, PREVIOUS: expected or "", PERIODS: _periods(usecase, new, opened=now)},
    )
    lease.ensure_held()  # a holder frozen past its lease (and taken over) must not move @champion
    tracking.client().set_registered_model_alias(usecase.registered_model_name, ModelRole.CHAMPION, new)
    _release_challenger(usecase, new)
    if seen is not None and seen != new:
        tracking.set_version_tags(usecase, seen, {PERIODS: _periods(usecase, seen, closed=now)})


def _release_challenger(usecase: UseCase, champion: str) -> None:
    """Drop `@challenger` from the version that now holds `@champion`: a version is one or the other.

    Were it kept, scoring would shadow-score the champion against itself and the lifecycle would show the
    serving model as the pending candidate. `train` points `@challenger` at every new version without the
    registry lock; MLflow has no conditional alias delete, so a version registered between the read and the
    delete would lose its alias (it is still registered, and the next training run points the alias again).
    """
    challenger = tracking.alias_version(usecase, ModelRole.CHALLENGER)
    if challenger is not None and str(challenger.version) == champion:
        tracking.client().delete_registered_model_alias(usecase.registered_model_name, ModelRole.CHALLENGER)


def champion_periods(tags: dict[str, str]) -> list[list[str | None]]:
    """The @champion periods recorded in a version's tags, [[from, to|null], ...] (empty: never champion)."""
    periods: list[list[str | None]] = json.loads(tags.get(PERIODS, "[]"))
    return periods


def _periods(usecase: UseCase, version: str, *, opened: str | None = None, closed: str | None = None) -> str:
    """The version's @champion periods with one opened or the last one closed, as the tag's JSON."""
    periods = champion_periods(tracking.version_tags(usecase, version))
    if opened:
        periods.append([opened, None])
    if closed and periods and periods[-1][1] is None:
        periods[-1][1] = closed
    return json.dumps(periods)
