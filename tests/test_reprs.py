"""Result, outcome, report and config objects read well in a notebook:
a short repr everywhere, an HTML table for a rotation report, and never
ciphertext bytes, encryption context values or grant tokens."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest

import kms_reencrypt
from kms_reencrypt import (
    ClientSettings,
    DryRunResult,
    ReEncryptResult,
    RotationConfig,
    RotationItem,
    RotationOutcome,
    RotationReport,
    RotationStatus,
    parse_key_id,
)
from kms_reencrypt._report_html import MAX_FAILED_ROWS, MAX_TEXT_CHARS
from kms_reencrypt._rotate import SAME_CONTEXT, _Job
from kms_reencrypt.local import Faults

CANARY_CONTEXT = "canary-context-value-51d0"
CANARY_BLOB = b"\x01\x02\x02\x00canary-ciphertext-bytes"
HOSTILE = '<script>alert("x")</script>&<img src=x onerror=y>'


def _assert_hidden(text: str) -> None:
    assert CANARY_CONTEXT not in text
    assert "canary-ciphertext-bytes" not in text
    assert "CanaryToken" not in text
    assert " object at 0x" not in text


class _Table(HTMLParser):
    """Collects the tags and the text of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(
        self, tag: str, attrs: list[tuple[str, str | None]]
    ) -> None:
        self.tags.add(tag)
        self.attributes |= {name for name, _ in attrs}
        if tag in ("td", "th", "caption"):
            self.cells.append("")
            self._in_cell = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th", "caption"):
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells[-1] += data


def _parse(html: str) -> _Table:
    table = _Table()
    table.feed(html)
    table.close()
    return table


def test_value_objects_show_byte_counts_and_context_keys_only() -> None:
    """Each value object's repr names its class and fields, with a byte
    count for ciphertext and the keys of a context; str is as safe."""
    context = {"tenant": CANARY_CONTEXT}
    objects: list[object] = [
        ReEncryptResult(ciphertext_blob=CANARY_BLOB, key_id="arn:k"),
        DryRunResult(destination_key_id="alias/new"),
        RotationItem(
            id="a", ciphertext_blob=CANARY_BLOB, encryption_context=context
        ),
        RotationOutcome(
            id="a",
            status=RotationStatus.OK,
            ciphertext_blob=CANARY_BLOB,
            encryption_context=context,
        ),
        RotationReport(total=1, ok=1),
        RotationConfig(rate=10),
        ClientSettings(region_name="eu-west-1"),
        parse_key_id("alias/new"),
        Faults(latency=0.01),
    ]

    for obj in objects:
        _assert_hidden(str(obj))
        _assert_hidden(repr(obj))
        assert repr(obj).startswith(type(obj).__name__ + "("), repr(obj)
    shown = repr(objects[3])
    assert f"<{len(CANARY_BLOB)} bytes>" in shown
    assert "<keys ['tenant']>" in shown


def test_the_job_sent_to_workers_hides_tokens_and_context_values() -> None:
    """Worker processes receive a job whose repr counts grant tokens and
    shows context keys only."""
    job = _Job(
        destination_key_id="alias/new",
        destination_context={"tenant": CANARY_CONTEXT},
        destination_encryption_algorithm=None,
        grant_tokens=("CanaryToken1", "CanaryToken2"),
        dry_run=False,
        engine_retries=True,
        max_attempts=3,
        backoff_base=0.05,
        backoff_cap=1.0,
    )

    text = repr(job)

    _assert_hidden(text)
    assert "<2 grant tokens>" in text
    assert "<keys ['tenant']>" in text
    assert "SAME_CONTEXT" in repr(
        _Job(**{**_job_fields(job), "destination_context": SAME_CONTEXT})
    )


def _job_fields(job: _Job) -> dict[str, Any]:
    return {name: getattr(job, name) for name in job.__getstate__()}


def test_a_report_repr_lists_a_few_failed_items_and_counts_the_rest() -> None:
    """A report of many failures keeps a short repr."""
    failed = tuple(
        (f"id-{n}", "InvalidCiphertextException", n) for n in range(1000)
    )
    report = RotationReport(
        total=1000,
        failed=1000,
        failures_by_code={"InvalidCiphertextException": 1000},
        failed_items=failed,
        elapsed=12.3456789,
    )

    text = repr(report)

    assert "<995 more>" in text
    assert "id-4'" in text
    assert "id-5'" not in text
    assert "failures_by_code={'InvalidCiphertextException': 1000}" in text
    assert "elapsed=12.346," in text
    assert len(text) < 700


def test_a_rotation_and_its_report_read_well_after_a_real_run(
    local_kms: Any,
) -> None:
    """A run with a context, grant tokens and one corrupt item: reprs hide
    the secrets, and the HTML table has the counts and the failure."""
    kms = local_kms.kms_client()
    source = local_kms.create_key()["Arn"]
    destination = local_kms.create_key()["Arn"]
    token = kms.create_grant(
        KeyId=destination,
        GranteePrincipal="arn:aws:iam::111122223333:role/x",
        Operations=["ReEncryptTo"],
    )["GrantToken"]
    context = {"tenant": CANARY_CONTEXT}
    items: list[Any] = [
        {
            "id": f"row-{n}",
            "ciphertext_blob": kms.generate_data_key_without_plaintext(
                KeyId=source, KeySpec="AES_256", EncryptionContext=context
            )["CiphertextBlob"],
            "encryption_context": context,
        }
        for n in range(3)
    ]
    items.append(
        {
            "id": HOSTILE,
            "ciphertext_blob": CANARY_BLOB,
            "encryption_context": context,
        }
    )

    with kms_reencrypt.rotate_iter(
        items,
        destination_key_id=destination,
        client=ClientSettings.for_local_kms(local_kms),
        grant_tokens=[token],
    ) as rotation:
        outcomes = list(rotation)
    report = rotation.report
    table = _parse(report._repr_html_())

    for text in [repr(rotation), repr(report), *map(repr, outcomes)]:
        _assert_hidden(text)
        assert token not in text
    assert repr(rotation).startswith(f"<Rotation to {destination!r}: ")
    assert "finished, 4 read, 3 ok, 1 failed, 0 skipped>" in repr(rotation)
    assert {"table", "caption", "tr", "th", "td"} == table.tags
    assert "Rotation report: finished" == table.cells[0]
    cells = table.cells
    assert ["ok", "3"] == cells[cells.index("ok") : cells.index("ok") + 2]
    assert "InvalidCiphertextException" in cells
    assert HOSTILE in cells
    assert token not in report._repr_html_()
    assert CANARY_CONTEXT not in report._repr_html_()
    assert rotation._repr_html_() == report._repr_html_()


@pytest.mark.parametrize(
    "field",
    ["failed_id", "error_code", "stopped_reason"],
)
def test_hostile_text_in_a_report_is_escaped_in_its_html(field: str) -> None:
    """Ids come from the caller's data and codes and reasons can carry a
    server's text: none of it becomes markup."""
    report = RotationReport(
        total=2,
        failed=1,
        failures_by_code={HOSTILE if field == "error_code" else "Code": 1},
        failed_items=(
            (
                HOSTILE if field == "failed_id" else "id",
                HOSTILE if field == "error_code" else "Code",
                7,
            ),
        ),
        stopped_reason=HOSTILE if field == "stopped_reason" else None,
    )

    html = report._repr_html_()
    table = _parse(html)

    assert "<script" not in html
    assert "<img" not in html
    assert {"colspan", "style", "class"} >= table.attributes
    assert {"table", "caption", "tr", "th", "td"} >= table.tags
    expected = f"{HOSTILE}, line 7" if field == "failed_id" else HOSTILE
    assert expected in table.cells


def test_the_html_lists_the_first_failed_items_and_cuts_long_text() -> None:
    """A report of many failures stays a compact table."""
    long_id = "x" * (MAX_TEXT_CHARS * 3)
    failed = (
        (long_id, "C", None),
        *((f"id-{n}", "C", None) for n in range(499)),
    )
    report = RotationReport(
        total=500,
        failed=500,
        failures_by_code={"C": 500},
        failed_items=failed,
        calls=1000,
        retries=500,
        throttles=20,
        elapsed=4.0,
    )

    cells = _parse(report._repr_html_()).cells

    assert f"and {500 - MAX_FAILED_ROWS} more" in cells
    assert f"id-{MAX_FAILED_ROWS - 2}" in cells
    assert f"id-{MAX_FAILED_ROWS - 1}" not in cells
    assert "x" * (MAX_TEXT_CHARS - 1) + "\N{HORIZONTAL ELLIPSIS}" in cells
    for label, value in [
        ("calls", "1,000"),
        ("retries", "500"),
        ("throttles", "20"),
        ("elapsed", "4.00 s"),
        ("calls per second", "250.0"),
    ]:
        assert value == cells[cells.index(label) + 1]
