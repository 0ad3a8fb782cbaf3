"""Evidently snapshots as the bytes a partition keeps: the same data give the same files.

A partition's manifest records every file's sha256, so two runs over the same inputs (a retry, the local
launcher and a pod, two environments) must write the same bytes. Evidently (0.7) does not: its HTML names
every widget with a uuid7 (time and random bits) and the page's data with a uuid4 variable
(`metric_<hex>`). Both are renumbered here in order of first appearance, which keeps every reference
between the parts of one file intact. (The snapshot's timestamp is in neither file.)
"""

from __future__ import annotations

import re
from typing import Any

_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
#: The report's JavaScript variable: "metric_" + a uuid4 without dashes (evidently.core.metric_types.render_widgets).
_DASHBOARD = re.compile(r"metric_[0-9a-f]{32}\b")


def stable_ids(text: str) -> str:
    """`text` with each distinct UUID replaced by a fixed one numbered in order of first appearance."""
    seen: dict[str, str] = {}

    def number(match: re.Match[str]) -> str:
        found = match.group(0)
        if found not in seen:
            seen[found] = f"00000000-0000-7000-8000-{len(seen) + 1:012x}"
        return seen[found]

    dashboards: dict[str, str] = {}

    def dashboard(match: re.Match[str]) -> str:
        return dashboards.setdefault(match.group(0), f"metric_{len(dashboards) + 1:032x}")

    return _DASHBOARD.sub(dashboard, _UUID.sub(number, text))


def html_and_json(snapshot: Any) -> tuple[str, str]:
    """The snapshot's standalone HTML and its JSON, with stable widget ids."""
    return stable_ids(snapshot.get_html_str(as_iframe=False)), stable_ids(snapshot.json())
