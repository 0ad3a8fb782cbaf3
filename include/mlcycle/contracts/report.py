"""A small, self-contained HTML page of one validation: every expectation with its status.

Rendered from :class:`~mlcycle.contracts.results.ContractResult` with the standard library only.
GX Data Docs are deliberately not built: they need a GX project, and building them costs more than
the validation itself.

Everything the page quotes from the data (the offending values in the ``observed`` cells, the sample of
offending rows) sits inside an element marked as data, so :func:`without_data` can cut it out of a stored
page: data is HTML-escaped, so it can never close such an element itself.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

from mlcycle.contracts.results import FIRST_VALUES_LABEL, ContractResult

__all__ = ["render_html", "without_data"]

_DATA_VALUES = '<span class="data">'
_DATA_SAMPLES = '<section class="data">'
_DATA = re.compile(r'<span class="data">.*?</span>|<section class="data">.*?</section>', flags=re.DOTALL)
_LEFT_OUT = "<p><em>Quoted data left out of this copy; the quarantine folder in storage keeps it.</em></p>"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
h1 { font-size: 1.3rem; } h2 { font-size: 1.1rem; margin-top: 1.5rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
tr.failed td.status { background: #f8d7da; font-weight: bold; }
tr.warning td.status { background: #fff3cd; font-weight: bold; }
tr.passed td.status { background: #d4edda; }
.verdict-rejected { color: #a71d2a; } .verdict-passed { color: #1e7b34; }
code, pre { font-size: 0.8rem; }
"""


def _status(check: Mapping[str, Any]) -> tuple[str, str]:
    """(css class, label) of one check."""
    if check.get("success"):
        return "passed", "passed"
    if check.get("severity") == "hard":
        return "failed", "FAILED"
    return "warning", "warning"


def _cell(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _observed(text: Any) -> str:
    """An ``observed`` cell: its offending values, if any, marked as data."""
    observed = "" if text is None else str(text)
    head, label, values = observed.partition(FIRST_VALUES_LABEL)
    return _cell(head) + (f"{_DATA_VALUES}{_cell(label + values)}</span>" if label else "")


def without_data(page: str) -> str:
    """A page rendered by :func:`render_html` without anything it quotes from the data (values, rows)."""
    redacted, count = _DATA.subn("", page)
    return redacted.replace("</body>", f"{_LEFT_OUT}\n</body>", 1) if count else redacted


def render_html(result: ContractResult, *, title: str, facts: Mapping[str, Any] | None = None) -> str:
    """The report page: a header (verdict, counts, ``facts`` such as partition and profile), the
    failures with their sample rows, then a table of every expectation in suite order."""
    verdict = "passed" if result.success else "rejected"
    rows = []
    for check in result.checks:
        css, label = _status(check)
        rows.append(
            f'<tr class="{css}"><td class="status">{label}</td><td>{_cell(check.get("severity"))}</td>'
            f"<td>{_cell(check.get('rule'))}</td><td>{_cell(check.get('column') or '(table)')}</td>"
            f"<td>{_cell(check.get('expected'))}</td><td>{_observed(check.get('observed'))}</td>"
            f"<td><code>{_cell(check.get('expectation'))}</code></td></tr>"
        )
    fact_rows = "".join(f"<tr><th>{_cell(k)}</th><td>{_cell(v)}</td></tr>" for k, v in (facts or {}).items())
    samples = []
    for failure in result.failures:
        if failure.rows:
            samples.append(
                f"<h3>{_cell(failure.column or '(table)')}: {_cell(failure.rule)}</h3>"
                f"<pre>{_cell(json.dumps(failure.rows, indent=1, default=str))}</pre>"
            )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{_cell(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n"
        f'<h1>{_cell(title)}: <span class="verdict-{verdict}">{verdict.upper()}</span></h1>\n'
        f"<table>{fact_rows}"
        f"<tr><th>expectations</th><td>{result.evaluated}</td></tr>"
        f"<tr><th>hard failures</th><td>{len(result.hard_failures)}</td></tr>"
        f"<tr><th>soft failures (warnings)</th><td>{len(result.soft_failures)}</td></tr></table>\n"
        "<h2>Expectations</h2>\n"
        "<table><tr><th>status</th><th>severity</th><th>rule</th><th>column</th><th>expected</th>"
        "<th>observed</th><th>GX expectation</th></tr>\n"
        + "\n".join(rows)
        + "</table>\n"
        + (f"{_DATA_SAMPLES}<h2>Sample of offending rows</h2>\n" + "\n".join(samples) + "</section>" if samples else "")
        + "\n</body></html>\n"
    )
