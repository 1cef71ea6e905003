"""The HTML table a notebook shows for a rotation report.

Only what ``RotationReport.to_dict`` holds goes in: counts, error codes,
timings, the stop reason and failed item ids. Every piece of text is
HTML-escaped, because ids come from the caller's data and error codes
and reasons can carry text sent by a server.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._rotate import RotationReport

__all__ = ["MAX_FAILED_ROWS", "MAX_TEXT_CHARS", "report_html"]

#: Failed items listed by id at most; the rest are counted.
MAX_FAILED_ROWS = 10
#: Longer ids and codes are cut to this many characters.
MAX_TEXT_CHARS = 120

_LEFT = ' style="text-align: left"'
_RIGHT = ' style="text-align: right"'


def _text(value: object, *, limit: int | None = MAX_TEXT_CHARS) -> str:
    text = str(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"
    return escape(text, quote=True)


def _section(title: str) -> str:
    return f'<tr><th colspan="2"{_LEFT}>{_text(title)}</th></tr>'


def _row(label: object, value: object) -> str:
    return (
        f"<tr><td{_LEFT}>{_text(label)}</td>"
        f"<td{_RIGHT}>{_text(value)}</td></tr>"
    )


def report_html(report: RotationReport) -> str:
    """Render a report as one compact HTML table.

    Args:
        report: The report to show.

    Returns:
        A ``<table>`` element: items per status, failures per error code,
        the first failed items, KMS calls and timings, and why the run
        stopped early if it did. Never ciphertext, grant tokens or
        encryption context values.
    """
    if report.stopped_reason:
        state = "stopped early"
    elif report.not_attempted:
        state = "ended before every item was reported"
    else:
        state = "finished"
    rows = [_section("Items")]
    rows += [
        _row(label, f"{count:,}")
        for label, count in (
            ("total", report.total),
            ("ok", report.ok),
            ("failed", report.failed),
            ("dry run", report.dry_run),
            ("skipped (done before)", report.skipped),
            ("not attempted", report.not_attempted),
        )
        if count or label in ("total", "ok", "failed")
    ]

    if report.failures_by_code:
        rows.append(_section("Failures by error code"))
        by_count = sorted(
            report.failures_by_code.items(), key=lambda kv: (-kv[1], kv[0])
        )
        rows += [_row(code, f"{count:,}") for code, count in by_count]
    if report.failed_items:
        shown = report.failed_items[:MAX_FAILED_ROWS]
        rows.append(_section("Failed items (id, line: error code)"))
        for item_id, code, line in shown:
            label = "(no id)" if item_id is None else item_id
            if line is not None:
                label = f"{label}, line {line}"
            rows.append(_row(label, code))
        more = len(report.failed_items) - len(shown)
        if more > 0:
            rows.append(_row(f"and {more:,} more", ""))

    rows.append(_section("KMS calls"))
    rows += [
        _row("calls", f"{report.calls:,}"),
        _row("retries", f"{report.retries:,}"),
        _row("throttles", f"{report.throttles:,}"),
        _row("elapsed", f"{report.elapsed:.2f} s"),
        _row("calls per second", f"{report.calls_per_second:,.1f}"),
    ]
    if report.stopped_reason:
        rows.append(_section("Stopped early"))
        rows.append(
            f'<tr><td colspan="2"{_LEFT}>'
            f"{_text(report.stopped_reason, limit=None)}</td></tr>"
        )
    body = "\n".join(rows)

    return (
        '<table class="kms-reencrypt-report">\n'
        f"<caption>Rotation report: {state}</caption>\n"
        f"{body}\n</table>"
    )
