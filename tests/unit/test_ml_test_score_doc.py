"""docs/ml-test-score.md adds up: each section's total is the sum of its seven tests, the final is their minimum."""

from __future__ import annotations

import re

from mlcycle.settings import REPO_ROOT

DOC = REPO_ROOT / "docs" / "ml-test-score.md"
SECTIONS = ("Data", "Model", "Infrastructure", "Monitoring")
ALLOWED = {0.0, 0.5, 1.0}


def _rows(text: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|")
    ]


def test_section_totals_and_the_final_score_follow_from_the_rows() -> None:
    text = DOC.read_text()
    totals: dict[str, float] = {}
    for section in SECTIONS:
        body = re.search(rf"^## {section}\n(.*?)(?=^## )", text, re.S | re.M)
        assert body, f"no '## {section}' section in {DOC.name}"
        rows = _rows(body.group(1))
        tests = [r for r in rows if r[0].isdigit()]
        assert [int(r[0]) for r in tests] == list(range(1, 8)), f"{section}: tests numbered {[r[0] for r in tests]}"
        scores = [float(r[2]) for r in tests]
        assert set(scores) <= ALLOWED, f"{section}: scores {scores} (each 0, 0.5 or 1)"
        stated = [r for r in rows if r[1] == f"**{section}**"]
        assert stated, f"{section}: no total row"
        totals[section] = float(stated[0][2].strip("*"))
        assert totals[section] == sum(scores), f"{section}: total {totals[section]} but its tests sum to {sum(scores)}"
    score = re.search(r"^## Score\n(.*)", text, re.S | re.M)
    assert score
    summary = {r[0].strip("*"): r[2].strip("*") for r in _rows(score.group(1)) if len(r) >= 3}
    for section in SECTIONS:
        assert float(summary[section]) == totals[section], f"the Score table says {section} {summary[section]}"
    assert float(summary["Final (minimum)"]) == min(totals.values())
