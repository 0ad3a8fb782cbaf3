"""The lifecycle page as one self-contained HTML document: inline CSS, server-rendered SVG charts, no scripts
or fonts from anywhere else (Airflow may run where nothing outside can be reached).

Airflow's UI shows a plugin's page in an iframe sandboxed without `allow-popups` and `allow-top-navigation`: a
plain link could neither open MLflow in a new tab nor an Airflow page in the window. The one inline script lets
such a link be followed by an anchor in Airflow's own (same-origin) document; opened on its own, the page's
links work as they are.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence

from mlcycle.lifecycle.view import Approval, DayRow, LifecycleView, QuarantineRow, VersionRow

SECTION_TITLES = {
    "registry": "Model registry (MLflow)",
    "monitoring": "Monitoring partitions",
    "quarantine": "Quarantined partitions",
    "approvals": "Pending approvals (Airflow)",
}

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 16px 24px; color: #1a202c;
       background: #fff; font-size: 14px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 22px 0 8px; border-bottom: 1px solid #e2e8f0;
     padding-bottom: 4px; }
.muted { color: #4a5568; } .small { font-size: 12px; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: 5px 8px; vertical-align: top;
        border-bottom: 1px solid #edf2f7; } th { background: #f7fafc; font-weight: 600; }
.badge { display: inline-block; border-radius: 9px; padding: 1px 8px; font-size: 12px; font-weight: 600;
         margin-right: 4px; }
.champion { background: #c6f6d5; color: #22543d; } .challenger { background: #bee3f8; color: #2a4365; }
.promote { background: #c6f6d5; color: #22543d; } .reject { background: #fed7d7; color: #742a2a; }
.needs_manual_review, .pending, .waiting { background: #feebc8; color: #7b341e; }
.drift { background: #fed7d7; color: #742a2a; } .nodrift { background: #e2e8f0; color: #2d3748; }
.error { border: 1px solid #e53e3e; background: #fff5f5; color: #742a2a; padding: 8px 12px; border-radius: 6px;
         margin: 8px 0; }
.empty { color: #4a5568; font-style: italic; }
a { color: #2b6cb0; } ul.reasons { margin: 0; padding-left: 16px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 10px 0; }
.card { border: 1px solid #e2e8f0; border-radius: 8px; padding: 8px 14px; min-width: 150px; }
.card b { display: block; font-size: 18px; }
"""

# See the module doc: follow a link through an anchor in Airflow's document when framed by it.
_SCRIPT = """
document.addEventListener("click", function (event) {
  var link = event.target.closest ? event.target.closest("a[data-open]") : null;
  if (!link || window.top === window) return;
  try {
    var doc = window.top.document, anchor = doc.createElement("a");
    anchor.href = link.href;
    anchor.target = link.dataset.open === "window" ? "_top" : "_blank";
    anchor.rel = "noopener";
    doc.body.appendChild(anchor);
    anchor.click();
    anchor.remove();
    event.preventDefault();
  } catch (e) {}
});
"""


def e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def link(url: str, text: str, *, window: bool = False) -> str:
    """An outside link (MLflow: a new tab) or, with `window`, a page of Airflow's UI (the same window)."""
    if not url:
        return ""
    target = "_top" if window else "_blank"
    opener = "window" if window else "tab"
    return f'<a href="{e(url)}" target="{target}" rel="noopener" data-open="{opener}">{e(text)}</a>'


def document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>{body}"
        f"<script>{_SCRIPT}</script></body></html>"
    )


def index_page(usecases: Sequence[tuple[str, str]], errors: Sequence[str]) -> str:
    """The list of use cases: (name, description) each, and the use cases that do not load."""
    items = "".join(
        f'<li><a href="usecases/{e(name)}" data-testid="usecase-{e(name)}">{e(name)}</a> '
        f'<span class="muted">{e(description)}</span></li>'
        for name, description in usecases
    )
    broken = "".join(f'<div class="error">{e(error)}</div>' for error in errors)
    empty = "" if usecases else '<p class="empty">No use case loads.</p>'
    return document("ML lifecycle", f"<h1>ML lifecycle</h1><ul>{items}</ul>{empty}{broken}")


def usecase_page(view: LifecycleView) -> str:
    parts = [
        '<p class="small"><a href="../">All use cases</a></p>',
        f'<h1 data-testid="lifecycle-title">{e(view.usecase)}: ML lifecycle</h1>',
        f'<div class="muted">{e(view.description)}</div>',
        _cards(view),
        _section("Pending approvals", "approvals", view, _approvals(view.approvals)),
        _section(
            "Drift and performance by day",
            "monitoring",
            view,
            _chart(view.days, view.quarantine, view.metric, view.label_delay_days) + _days_table(view.days),
        ),
        _section("Champion timeline", "registry", view, _timeline(view.versions) + _versions_table(view.versions)),
        _section("Quarantined partitions", "quarantine", view, _quarantine_table(view.quarantine)),
    ]
    return document(f"{view.usecase}: ML lifecycle", "".join(parts))


def _section(title: str, key: str, view: LifecycleView, content: str) -> str:
    error = view.errors.get(key)
    shown = (
        f'<div class="error" role="alert" data-testid="error-{key}"><b>{e(SECTION_TITLES[key])} could not be read:</b> '
        f"{e(error)}</div>"
        if error
        else content
    )
    return f'<section data-testid="section-{key}"><h2>{e(title)}</h2>{shown}</section>'


def _cards(view: LifecycleView) -> str:
    if "registry" in view.errors:
        champion = '<span class="badge reject">unknown: MLflow unreadable</span>'
    else:
        champion = f"v{e(view.champion)}" if view.champion else '<span class="muted">none yet</span>'
    challenger = f"v{e(view.challenger)}" if view.challenger else "-"
    last = view.days[-1] if view.days else None
    drift = _drift_badge(last.dataset_drift) + e(last.day) if last else "-"
    cards = [
        ("@champion", champion),
        ("@challenger", challenger),
        ("registered model", e(view.registered_model)),
        ("last monitored day", drift),
        ("pending approvals", str(len(view.approvals)) if "approvals" not in view.errors else "?"),
        ("quarantined days", str(len(view.quarantine)) if "quarantine" not in view.errors else "?"),
    ]
    body = "".join(
        f'<div class="card" data-testid="card-{e(k.strip("@").replace(" ", "-"))}"><span class="muted small">{e(k)}</span>'
        f"<b>{v}</b></div>"
        for k, v in cards
    )
    experiment = link(view.experiment_url, "MLflow experiment") if view.experiment_url else ""
    return f'<div class="cards" data-testid="cards">{body}</div><div class="small">{experiment}</div>'


def _approvals(approvals: Sequence[Approval]) -> str:
    if not approvals:
        return '<p class="empty" data-testid="no-approvals">No approval is waiting.</p>'
    rows = "".join(
        "<tr>"
        f'<td><b>{e(a.subject)}</b><div class="small muted" style="white-space: pre-wrap">{e(a.body[:1500])}</div></td>'
        f"<td>{e(a.dag_id)}<div class='small muted'>{e(a.run_id)}</div></td>"
        f"<td>{e(a.task_id)}</td><td>{e(a.created_at)}</td>"
        f"<td>{e(', '.join(a.options))}</td><td>{e(', '.join(a.assignees) or 'anyone allowed')}</td>"
        f"<td>{link(a.url, 'Review in Airflow', window=True)}</td>"
        "</tr>"
        for a in approvals
    )
    head = "<tr><th>request</th><th>DAG run</th><th>task</th><th>waiting since</th><th>options</th>"
    return f'<table data-testid="approvals">{head}<th>who</th><th></th></tr>{rows}</table>'


def _drift_badge(drift: bool | None) -> str:
    if drift is None:
        return '<span class="badge pending">no verdict</span>'
    return '<span class="badge drift">drift</span>' if drift else '<span class="badge nodrift">no drift</span>'


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _days_table(days: Sequence[DayRow]) -> str:
    if not days:
        return '<p class="empty">No day has been monitored yet.</p>'
    rows = []
    for d in days:
        if d.performance_status == "computed":
            performance = (
                f"{e(d.metric)} {_number(d.value)} vs {_number(d.reference)} at training "
                f"(drop {_number(d.drop)}, {d.rows} rows of {e(d.performance_day)})"
            )
        elif d.performance_status:
            performance = (
                f'<span class="badge pending">pending</span><span class="small">{e(d.performance_reason)}</span>'
            )
        else:
            performance = "-"
        links = " ".join(
            x
            for x in (
                link(d.report_url, "Evidently drift report"),
                link(d.performance_report_url, "performance report"),
                link(d.run_url, "MLflow run"),
            )
            if x
        )
        share = "" if d.drift_share is None else f" share {d.drift_share:.2f}"
        rows.append(
            f'<tr data-testid="day-{e(d.day)}"><td>{e(d.day)}</td><td>v{e(d.champion)}</td>'
            f"<td>{_drift_badge(d.dataset_drift)}<span class='small'>{e(share)}</span>"
            f"<div class='small muted'>{e(', '.join(d.drifted_columns))}</div></td>"
            f"<td>{_drift_badge(d.prediction_drift)}</td><td>{performance}</td><td>{links}</td></tr>"
        )
    head = "<tr><th>day</th><th>champion</th><th>data drift</th><th>prediction drift</th>"
    return f'<table data-testid="days">{head}<th>performance (after the label delay)</th><th>reports</th></tr>{"".join(rows)}</table>'


def _versions_table(versions: Sequence[VersionRow]) -> str:
    if not versions:
        return '<p class="empty">No version is registered yet.</p>'
    rows = []
    for v in reversed(versions):  # newest first
        aliases = "".join(f'<span class="badge {e(a)}">@{e(a)}</span>' for a in v.aliases)
        gate = f'<span class="badge {e(v.gate)}">{e(v.gate)}</span>' if v.gate else '<span class="muted">-</span>'
        reasons = "".join(f"<li>{e(r)}</li>" for r in v.gate_reasons)
        promoted = []
        if v.promoted_by:
            promoted.append(f"by {e(v.promoted_by)}")
        if v.rolled_back_from:
            promoted.append(f"rollback from v{e(v.rolled_back_from)}")
        if v.approver:
            promoted.append(f"approver <b>{e(v.approver)}</b>")
        if v.reason:
            promoted.append(f"reason: {e(v.reason)}")
        if v.review:
            who = f" by <b>{e(v.reviewed_by)}</b>" if v.reviewed_by else ""
            why = f": {e(v.review_reason)}" if v.review_reason else ""
            promoted.append(f'review <span class="badge {e(v.review)}">{e(v.review)}</span>{who}{why}')
        if v.promoted_at:
            promoted.append(f"at {e(v.promoted_at)}")
        periods = "<br>".join(f"{e(p.start)} &rarr; {e(p.end or 'now')}" for p in v.periods) or "never champion"
        links = " ".join(
            x
            for x in (
                link(v.run_url, "MLflow run"),
                link(v.model_card_url, "model card"),
                link(v.decision_url, "decision record"),
            )
            if x
        )
        rows.append(
            f'<tr data-testid="version-{e(v.version)}"><td><b>v{e(v.version)}</b> {aliases}'
            f"<div class='small muted'>trained on {e(v.trained_on)}<br>{e(v.airflow_run)}</div></td>"
            f"<td>{gate}<ul class='reasons small'>{reasons}</ul></td><td class='small'>{'<br>'.join(promoted) or '-'}</td>"
            f"<td class='small'>{periods}</td><td>{e('v' + v.previous_champion if v.previous_champion else '-')}</td>"
            f"<td>{links}</td></tr>"
        )
    head = "<tr><th>version</th><th>gate decision</th><th>promotion</th><th>@champion periods</th>"
    return f'<table data-testid="versions">{head}<th>previous champion</th><th>links</th></tr>{"".join(rows)}</table>'


def _quarantine_table(rows: Sequence[QuarantineRow]) -> str:
    if not rows:
        return '<p class="empty" data-testid="no-quarantine">No partition is quarantined.</p>'
    body = "".join(
        f'<tr data-testid="quarantine-{e(q.day)}"><td>{e(q.day)}</td><td>{e(q.profile)}</td><td>{e(q.rows)}</td>'
        f"<td><ul class='reasons small'>{''.join(f'<li>{e(f)}</li>' for f in q.failed[:8])}</ul>"
        f"{f'<span class=small>(+{len(q.failed) - 8} more)</span>' if len(q.failed) > 8 else ''}"
        f"<span class='small muted'>{q.warnings} warning(s); {e(q.uri)}</span></td></tr>"
        for q in rows
    )
    return (
        f'<table data-testid="quarantine"><tr><th>day</th><th>profile</th><th>rows</th><th>why</th></tr>{body}</table>'
    )


# ---- charts (SVG, server-rendered) ----

_W, _LEFT, _RIGHT = 960, 56, 16


def _x_positions(days: Sequence[str]) -> dict[str, float]:
    width = _W - _LEFT - _RIGHT
    step = width / max(len(days), 1)
    return {day: _LEFT + step * (i + 0.5) for i, day in enumerate(days)}


def _calendar(first: str, last: str) -> list[str]:
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def _chart(days: Sequence[DayRow], quarantine: Sequence[QuarantineRow], metric: str, delay: int) -> str:
    """Two panels over the same days: the drift share (bars, red when the day drifted, the threshold dashed), and
    the champion's metric on each labelled day against its training-time value."""
    labelled = [d for d in days if d.performance_status == "computed" and d.performance_day]
    known = [d.day for d in days] + [d.performance_day for d in labelled] + [q.day for q in quarantine]
    if not known:
        return ""
    calendar = _calendar(min(known), max(known))
    x = _x_positions(calendar)
    step = (_W - _LEFT - _RIGHT) / max(len(calendar), 1)
    parts: list[str] = []
    # Panel 1: drift share, 0..1.
    top, height = 24, 120
    parts.append(_axis(top, height, "drift share", (0.0, 1.0)))
    for d in days:
        if d.drift_share is None:
            continue
        h = height * min(max(d.drift_share, 0.0), 1.0)
        colour = "#e53e3e" if d.dataset_drift else "#a0aec0"
        bar = min(step * 0.6, 48.0)  # a few days must not make bars wider than the chart is readable
        parts.append(
            f'<rect x="{x[d.day] - bar / 2:.1f}" y="{top + height - h:.1f}" width="{bar:.1f}" '
            f'height="{h:.1f}" fill="{colour}"><title>{e(d.day)}: drift share {d.drift_share:.2f}</title></rect>'
        )
    thresholds = {d.drift_share_threshold for d in days if d.drift_share_threshold is not None}
    for threshold in thresholds:
        y = top + height * (1 - threshold)
        parts.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e53e3e" stroke-dasharray="4 3"/>'
            f'<text x="{_LEFT + 4}" y="{y - 3:.1f}" font-size="10" fill="#c53030">'
            f"drift threshold {threshold:.2f}</text>"
        )
    for q in quarantine:
        parts.append(
            f'<text x="{x[q.day]:.1f}" y="{top + height - 4}" font-size="14" text-anchor="middle" fill="#c05621">'
            f"&#x2716;<title>{e(q.day)}: quarantined</title></text>"
        )
    # Panel 2: the metric on labelled days.
    top2, height2 = top + height + 40, 120
    values = [v for d in labelled for v in (d.value, d.reference) if v is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if values:  # room around the points; the empty panel keeps the metric's natural 0..1
        pad = max((high - low) * 0.15, 0.01)
        low, high = low - pad, high + pad
    parts.append(_axis(top2, height2, f"{metric} (labels after {delay} d)", (low, high)))

    def y_of(value: float) -> float:
        return top2 + height2 * (1 - (value - low) / (high - low))

    for series, colour, dash, key in (
        ("value", "#2b6cb0", "", "served"),
        ("reference", "#718096", "5 3", "at training"),
    ):
        points = [
            (x[d.performance_day], y_of(getattr(d, series)))
            for d in labelled
            if getattr(d, series) is not None and d.performance_day in x
        ]
        if points:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>'
            )
            parts.extend(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{colour}"><title>{key}</title></circle>'
                for px, py in points
            )
    if not labelled:
        parts.append(
            f'<text x="{_W / 2}" y="{top2 + height2 / 2}" font-size="12" text-anchor="middle" fill="#4a5568">'
            "no labelled day yet: performance is pending</text>"
        )
    # Day labels under both panels.
    base = top2 + height2 + 14
    every = max(1, len(calendar) // 14)
    for i, day in enumerate(calendar):
        if i % every == 0:
            parts.append(
                f'<text x="{x[day]:.1f}" y="{base}" font-size="10" text-anchor="middle" fill="#4a5568">{day[5:]}</text>'
            )
    legend = (
        f'<g font-size="11" fill="#2d3748" transform="translate({_LEFT},{base + 16})">'
        '<rect width="10" height="10" fill="#e53e3e"/><text x="14" y="9">drifted day</text>'
        '<rect x="100" width="10" height="10" fill="#a0aec0"/><text x="114" y="9">no drift</text>'
        '<text x="190" y="9" fill="#c05621">&#x2716; quarantined</text>'
        '<line x1="290" x2="310" y1="5" y2="5" stroke="#2b6cb0" stroke-width="2"/>'
        f'<text x="314" y="9">{e(metric)} of the champion on the labelled day</text>'
        '<line x1="620" x2="640" y1="5" y2="5" stroke="#718096" stroke-width="2" stroke-dasharray="5 3"/>'
        '<text x="644" y="9">its value at training</text></g>'
    )
    total = base + 32
    return (
        f'<svg role="img" aria-label="drift and performance by day" data-testid="chart" width="{_W}" '
        f'height="{total}" viewBox="0 0 {_W} {total}">{"".join(parts)}{legend}</svg>'
    )


def _axis(top: float, height: float, label: str, bounds: tuple[float, float]) -> str:
    low, high = bounds
    ticks = "".join(
        f'<text x="{_LEFT - 6}" y="{top + height * (1 - f) + 3:.1f}" font-size="10" text-anchor="end" '
        f'fill="#4a5568">{low + (high - low) * f:.2f}</text>'
        f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{top + height * (1 - f):.1f}" y2="{top + height * (1 - f):.1f}" '
        'stroke="#edf2f7"/>'
        for f in (0.0, 0.5, 1.0)
    )
    return (
        f'<text x="{_LEFT}" y="{top - 8}" font-size="12" font-weight="600" fill="#2d3748">{e(label)}</text>{ticks}'
        f'<line x1="{_LEFT}" x2="{_LEFT}" y1="{top}" y2="{top + height}" stroke="#a0aec0"/>'
    )


def _timeline(versions: Sequence[VersionRow]) -> str:
    """Each version's @champion periods as bars on one time axis (the champion timeline at a glance)."""
    held = [(v.version, p) for v in versions for p in v.periods]
    if not held:
        return '<p class="empty">No version has held @champion yet.</p>'
    now = dt.datetime.now(dt.UTC)
    spans = [(version, _when(p.start), _when(p.end) if p.end else now) for version, p in held]
    start, end = min(s for _, s, _ in spans), max(x for _, _, x in spans)
    total = max((end - start).total_seconds(), 1.0)
    order = list(dict.fromkeys(version for version, _, _ in spans))
    row_h = 22
    parts = []
    for version, s, f in spans:
        y = 8 + order.index(version) * row_h
        x0 = _LEFT + (_W - _LEFT - _RIGHT) * (s - start).total_seconds() / total
        x1 = _LEFT + (_W - _LEFT - _RIGHT) * (f - start).total_seconds() / total
        parts.append(
            f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 3):.1f}" height="14" fill="#48bb78" rx="3">'
            f"<title>v{e(version)}: {e(s.isoformat())} to {e(f.isoformat())}</title></rect>"
        )
    labels = "".join(
        f'<text x="{_LEFT - 6}" y="{19 + i * row_h}" font-size="11" text-anchor="end">v{e(v)}</text>'
        for i, v in enumerate(order)
    )
    height = 16 + len(order) * row_h
    axis = (
        f'<text x="{_LEFT}" y="{height + 10}" font-size="10" fill="#4a5568">{e(_short(start))}</text>'
        f'<text x="{_W - _RIGHT}" y="{height + 10}" font-size="10" text-anchor="end" fill="#4a5568">'
        f"{e(_short(end))}</text>"
    )
    return (
        f'<svg role="img" aria-label="champion periods" data-testid="timeline" width="{_W}" height="{height + 16}" '
        f'viewBox="0 0 {_W} {height + 16}">{labels}{"".join(parts)}{axis}</svg>'
    )


def _when(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _short(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
