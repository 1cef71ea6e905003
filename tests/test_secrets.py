"""Nothing secret leaks: canary values placed in ciphertexts, grant tokens,
encryption context values and credentials never appear in this library's
logs (any level), reprs, exception messages, reports or journals; the
library never calls Decrypt or Encrypt; and against the local KMS it
never opens or changes the user's AWS configuration.

botocore's own DEBUG logging prints request bodies; it is not ours to
silence, and docs/logging.md warns about it. These tests watch every
logger at DEBUG except ``botocore``, which stays at INFO (and one test
shows that at DEBUG it does print the canaries, so the watch works).
"""

from __future__ import annotations

import base64
import ctypes
import importlib.util
import json
import logging
import os
import re
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest

import kms_reencrypt
from kms_reencrypt import KmsReEncryptError, RotationItem
from kms_reencrypt._cli import main

CANARY_CONTEXT = "canary-context-value-7f3a"
CANARY_TOKEN = "CanaryGrantToken" + "Q" * 40
CANARY_SECRET = "canary-secret-access-key-9b1c"
CANARY_ACCESS = "AKIACANARY0000000000"
CANARY_BLOB_MARK = b"canary-ciphertext-bytes"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def ours_logged() -> Iterator[list[str]]:
    handler = _Collect()
    logger = logging.getLogger("kms_reencrypt")
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _secret_forms() -> list[str]:
    mark = CANARY_BLOB_MARK
    return [
        CANARY_CONTEXT,
        CANARY_TOKEN,
        CANARY_SECRET,
        CANARY_ACCESS,
        mark.decode(),
        repr(mark)[2:-1],
        base64.b64encode(mark).decode()[:16],
    ]


def _assert_clean(*texts: str) -> None:
    for text in texts:
        for secret in _secret_forms():
            assert secret not in text, f"{secret!r} leaked"


def _facade(local_kms: Any) -> kms_reencrypt.ReEncryptClient:
    session = botocore.session.Session()
    session.set_credentials(CANARY_ACCESS, CANARY_SECRET)
    return kms_reencrypt.client(
        session=session,
        region_name=local_kms.region,
        endpoint_url=local_kms.endpoint_url,
    )


def test_success_and_service_errors_leak_nothing(
    local_kms: Any, ours_logged: list[str]
) -> None:
    """A good call and a failing one, with every kind of secret in play."""
    kms = local_kms.kms_client()
    key = kms.create_key()["KeyMetadata"]["Arn"]
    grant = kms.create_grant(
        KeyId=key,
        GranteePrincipal="arn:aws:iam::111122223333:role/x",
        Operations=["ReEncryptFrom", "ReEncryptTo"],
    )["GrantToken"]
    context = {"tenant": CANARY_CONTEXT}
    blob = kms.encrypt(
        KeyId=key, Plaintext=CANARY_BLOB_MARK, EncryptionContext=context
    )["CiphertextBlob"]
    facade = _facade(local_kms)

    result = facade.re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext=context,
        DestinationKeyId=key,
        DestinationEncryptionContext=context,
        GrantTokens=[grant],
    )
    with pytest.raises(KmsReEncryptError) as wrong_context:
        facade.re_encrypt(
            CiphertextBlob=blob,
            SourceEncryptionContext={"tenant": CANARY_CONTEXT.upper()},
            DestinationKeyId=key,
        )
    with pytest.raises(KmsReEncryptError) as bad_token:
        facade.re_encrypt(
            CiphertextBlob=blob,
            SourceEncryptionContext=context,
            DestinationKeyId=key,
            GrantTokens=[CANARY_TOKEN],
        )

    _assert_clean(
        repr(result),
        str(result),
        repr(facade),
        str(wrong_context.value),
        repr(wrong_context.value),
        str(bad_token.value),
        repr(bad_token.value),
        "\n".join(ours_logged),
    )
    assert grant not in "\n".join(ours_logged)


@pytest.mark.parametrize(
    "request_",
    [
        {"GrantTokens": [CANARY_TOKEN] * 11},
        {"GrantTokens": [CANARY_TOKEN + "x" * 9000]},
        {"GrantTokens": CANARY_TOKEN},
        {"SourceEncryptionContext": {"k": CANARY_CONTEXT.encode()}},
        {"SourceEncryptionContext": {"k": CANARY_CONTEXT + "\ud800"}},
        {"CiphertextBlob": CANARY_BLOB_MARK.decode()},
        {"CiphertextBlob": CANARY_BLOB_MARK * 400},
        {"CiphertextBlob": base64.b64encode(b"\x01\x02\x02\x00" + b"x" * 60)},
    ],
    ids=lambda r: next(iter(r)),
)
def test_refusals_leak_nothing(
    request_: dict[str, Any], ours_logged: list[str]
) -> None:
    """Validation messages name parameters, never the values at fault."""
    kms = botocore.session.Session().create_client(
        "kms",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id=CANARY_ACCESS,
        aws_secret_access_key=CANARY_SECRET,
    )
    call: dict[str, Any] = {
        "CiphertextBlob": CANARY_BLOB_MARK,
        "DestinationKeyId": "alias/dest",
        **request_,
    }

    with pytest.raises(kms_reencrypt.RequestValidationError) as caught:
        kms_reencrypt.ReEncryptClient(kms).re_encrypt(**call)

    _assert_clean(
        str(caught.value), repr(caught.value), "\n".join(ours_logged)
    )


def test_cli_debug_logging_never_turns_on_botocore_wire_logs() -> None:
    """`kms-reencrypt -vv` shows our DEBUG lines, not botocore's request
    bodies (which would carry the demo's data keys and ciphertexts)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "kms_reencrypt", "-vv", "demo", "--count", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert 0 == done.returncode, done.stderr
    assert "kms_reencrypt" in done.stderr
    assert "Plaintext" not in done.stderr
    assert "CiphertextBlob" not in done.stderr
    assert "botocore" not in done.stderr


# -- bulk rotation, reports and journals ---------------------------------


@pytest.fixture
def every_logger() -> Iterator[list[str]]:
    """Every log record of every logger at DEBUG, except botocore's own,
    held at INFO (its DEBUG output is request bodies, documented)."""
    handler = _Collect()
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    levels = {
        name: logging.getLogger(name).level
        for name in ("", "kms_reencrypt", "botocore", "urllib3")
    }
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("kms_reencrypt").setLevel(logging.DEBUG)
    logging.getLogger("urllib3").setLevel(logging.DEBUG)
    logging.getLogger("botocore").setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _canary_world(local_kms: Any) -> dict[str, Any]:
    """Ciphertexts bound to a canary context, a grant token, and a forged
    ciphertext that carries the canary bytes."""
    kms = local_kms.kms_client()
    source = local_kms.create_key()["Arn"]
    destination = local_kms.create_key()["Arn"]
    grant = kms.create_grant(
        KeyId=destination,
        GranteePrincipal="arn:aws:iam::111122223333:role/x",
        Operations=["ReEncryptTo"],
    )["GrantToken"]
    context = {"tenant": CANARY_CONTEXT}
    blobs = [
        kms.encrypt(
            KeyId=source,
            Plaintext=b"data key %d" % n,
            EncryptionContext=context,
        )["CiphertextBlob"]
        for n in range(6)
    ]
    forged = b"\x01\x02\x02\x00" + CANARY_BLOB_MARK * 3
    return {
        "source": source,
        "destination": destination,
        "grant": grant,
        "context": context,
        "blobs": blobs,
        "forged": forged,
    }


def _never(texts: list[str], secrets: list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"{secret[:24]!r}... leaked"


def _b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


def _journal_rows(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM items")]


def test_a_rotation_leaks_nothing_in_logs_reprs_reports_or_journal(
    local_kms: Any, every_logger: list[str], tmp_path: Path
) -> None:
    """A bulk rotation with canaries in contexts, a grant token, canary
    credentials and a forged ciphertext: logs (every logger at DEBUG but
    botocore's), reprs, errors, the report and the journal hold none of
    them. The journal keeps ids, statuses, key ids, lines and error codes;
    its output column (empty here) is where the command line keeps the
    output line, ciphertext and context included."""
    world = _canary_world(local_kms)
    items: list[Any] = [
        RotationItem(
            id=f"item-{n}",
            ciphertext_blob=blob,
            encryption_context=world["context"],
        )
        for n, blob in enumerate(world["blobs"])
    ]
    items.append(
        RotationItem(
            id="forged",
            ciphertext_blob=world["forged"],
            encryption_context=world["context"],
        )
    )
    items.append({"id": "text", "ciphertext_blob": _b64(world["forged"])})
    journal = tmp_path / "rotation.journal"
    written: list[Any] = []

    rotation = kms_reencrypt.rotate_iter(
        items,
        destination_key_id=world["destination"],
        client=_facade(local_kms),
        grant_tokens=[world["grant"]],
        journal=journal,
        writer=written.append,
    )
    with rotation:
        outcomes = list(rotation)
    report = rotation.report

    old = [_b64(blob) for blob in world["blobs"]]
    new = [_b64(o.ciphertext_blob) for o in outcomes if o.ciphertext_blob]
    secrets = [*_secret_forms(), world["grant"], *old, *new]
    assert 6 == report.ok
    assert 2 == report.failed
    errors = [o.error for o in outcomes if o.error is not None]
    _never(
        [
            "\n".join(every_logger),
            repr(rotation),
            repr(report),
            json.dumps(report.to_dict()),
            report._repr_html_(),
            *(repr(o) for o in outcomes),
            *(repr(i) for i in items if isinstance(i, RotationItem)),
            *(str(e) + repr(e) for e in errors),
        ],
        secrets,
    )
    rows = _journal_rows(journal)
    assert {"item-0", "forged", "text"} <= {row["id"] for row in rows}
    _never([json.dumps(rows)], [*secrets, CANARY_CONTEXT])
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("rotation.journal*"))
    for secret in secrets:
        assert secret.encode() not in raw


def test_the_command_line_leaks_no_credentials_tokens_or_old_ciphertext(
    local_kms: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``kms-reencrypt -vv rotate`` with canary credentials from the
    environment, then from a profile in a canary config file: standard
    error, the report and the journal hold no credentials, context values
    or ciphertexts. The output file and the journal's output column hold
    the new ciphertexts and their contexts, which is their job; never the
    old ciphertexts or the credentials."""
    world = _canary_world(local_kms)
    source = tmp_path / "in.jsonl"
    lines: list[dict[str, Any]] = [
        {
            "id": f"row-{n}",
            "ciphertext": _b64(blob),
            "encryption_context": world["context"],
        }
        for n, blob in enumerate(world["blobs"])
    ]
    lines.append({"id": "forged", "ciphertext": _b64(world["forged"])})
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    config = tmp_path / "canary-config"
    config.write_text(
        "[profile canary]\n"
        f"aws_access_key_id = {CANARY_ACCESS}\n"
        f"aws_secret_access_key = {CANARY_SECRET}\n"
        "region = us-east-1\n"
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    old = [_b64(blob) for blob in world["blobs"]]
    kept: list[str] = []

    for run, setup in enumerate(("environment", "profile")):
        if setup == "environment":
            monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", CANARY_ACCESS)
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY_SECRET)
            monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
            chosen: list[str] = []
        else:
            monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
            for name in (
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_DEFAULT_REGION",
            ):
                monkeypatch.delenv(name)
            chosen = ["--profile", "canary"]
        output = tmp_path / f"out-{run}.jsonl"
        report = tmp_path / f"report-{run}.json"
        capsys.readouterr()

        status = main(
            [
                "-vv",
                "rotate",
                "--to",
                world["destination"],
                "--input",
                str(source),
                "--output",
                str(output),
                "--report",
                str(report),
                "--endpoint-url",
                local_kms.endpoint_url,
                *chosen,
            ]
        )

        err = capsys.readouterr().err
        assert 1 == status, err
        assert "kms_reencrypt" in err  # -vv did log
        rows = _journal_rows(Path(f"{output}.journal"))
        outside_output = [
            {k: v for k, v in r.items() if k != "output"} for r in rows
        ]
        _never(
            [err, report.read_text(), json.dumps(outside_output)],
            [*_secret_forms(), *old],
        )
        _never(
            [output.read_text(), json.dumps(rows)],
            [CANARY_ACCESS, CANARY_SECRET, world["grant"], *old],
        )
        kept.append(output.read_text())
    assert all(CANARY_CONTEXT in text for text in kept)  # where it belongs


def test_the_canary_watch_sees_botocore_debug_bodies(
    local_kms: Any, every_logger: list[str]
) -> None:
    """The control for the tests above: with botocore at DEBUG (which
    docs/logging.md warns against), the canary context does show up in
    the captured logs, so a leak of ours would be seen too."""
    world = _canary_world(local_kms)
    logging.getLogger("botocore").setLevel(logging.DEBUG)

    _facade(local_kms).re_encrypt(
        CiphertextBlob=world["blobs"][0],
        SourceEncryptionContext=world["context"],
        DestinationKeyId=world["destination"],
    )

    assert CANARY_CONTEXT in "\n".join(every_logger)


# -- no Decrypt, no Encrypt ----------------------------------------------


def test_the_library_calls_only_reencrypt_and_describekey(
    local_kms: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every KMS operation the local KMS receives while the library works
    (single calls, a dry run, the pre-flight, bulk rotation on threads and
    in worker processes, a server dry run, both commands) is counted by
    the server itself: only ReEncrypt and DescribeKey. Plaintext never
    passes through the library."""
    world = _canary_world(local_kms)
    blob, context = world["blobs"][0], world["context"]
    settings = kms_reencrypt.ClientSettings.for_local_kms(local_kms)
    items = [
        RotationItem(id=f"i{n}", ciphertext_blob=b, encryption_context=context)
        for n, b in enumerate(world["blobs"])
    ]
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(
            json.dumps(
                {
                    "id": item.id,
                    "ciphertext": _b64(item.ciphertext_blob),
                    "encryption_context": context,
                }
            )
            + "\n"
            for item in items
        )
    )
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example")
    monkeypatch.setenv("AWS_DEFAULT_REGION", local_kms.region)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    facade = local_kms.client()
    before = dict(local_kms.stats.requests)

    call = {
        "CiphertextBlob": blob,
        "SourceEncryptionContext": context,
        "DestinationKeyId": world["destination"],
    }
    facade.re_encrypt(**call)
    facade.re_encrypt(**call, DryRun=True)
    facade.re_encrypt(**call, preflight=True)
    kms_reencrypt.kms_re_encrypt(**call, client=local_kms.kms_client())
    kms_reencrypt.rotate(
        items, destination_key_id=world["destination"], client=settings
    )
    kms_reencrypt.rotate(
        items,
        destination_key_id=world["destination"],
        client=settings,
        processes=2,
        workers=2,
    )
    kms_reencrypt.rotate(
        items,
        destination_key_id=world["destination"],
        client=facade,
        dry_run=True,
        server_dry_run=3,
    )
    endpoint = ["--endpoint-url", local_kms.endpoint_url]
    main(
        [
            "rotate",
            "--to",
            world["destination"],
            "--input",
            str(source),
            "--output",
            str(tmp_path / "out.jsonl"),
            *endpoint,
        ]
    )
    main(
        [
            "re-encrypt",
            "--to",
            world["destination"],
            "--ciphertext-b64",
            _b64(blob),
            "--source-encryption-context",
            json.dumps(context),
            *endpoint,
        ]
    )
    capsys.readouterr()

    # 4 single calls, 6 + 6 rotated, 3 server dry runs, 6 + 1 by the
    # commands; one DescribeKey for the pre-flight's destination (the
    # call names no source key).
    assert {"ReEncrypt": 4 + 12 + 3 + 7, "DescribeKey": 1} == _called(
        local_kms, before
    )


def _called(local_kms: Any, before: dict[str, int]) -> dict[str, int]:
    """The operations the local KMS received since ``before``, counted."""
    after = local_kms.stats.requests
    return {
        name: after.get(name, 0) - before.get(name, 0)
        for name in set(after) | set(before)
        if after.get(name, 0) != before.get(name, 0)
    }


def _dask_inputs(world: dict[str, Any], rows: int) -> tuple[Any, Any]:
    """A frame of ``rows`` rows (ids, binary ciphertexts, the context's
    tenant column) in two partitions, and a Bag of as many base64
    records in two partitions."""
    import dask.bag as db
    import dask.dataframe as dd
    import pandas as pd
    import pyarrow as pa

    blobs = [world["blobs"][n % len(world["blobs"])] for n in range(rows)]
    frame = dd.from_pandas(
        pd.DataFrame(
            {
                "id": [f"row-{n}" for n in range(rows)],
                "blob": pd.array(blobs, dtype=pd.ArrowDtype(pa.binary())),
                "tenant": [CANARY_CONTEXT] * rows,
            }
        ),
        npartitions=2,
        sort=False,
    )
    bag = db.from_sequence(
        [
            {
                "id": f"record-{n}",
                "ciphertext": _b64(blob),
                "encryption_context": world["context"],
            }
            for n, blob in enumerate(blobs)
        ],
        npartitions=2,
    )
    return frame, bag


def _rotate_dask(
    world: dict[str, Any],
    settings: kms_reencrypt.ClientSettings,
    rows: int,
    journal_dir: Path,
    scheduler: str | None = None,
    *,
    frame: bool = True,
) -> list[str]:
    """Rotate a frame (with a journal), dry-run it, and rotate a Bag (only
    the Bag when not ``frame``); return every status."""
    from kms_reencrypt.dask import rotate_bag, rotate_dataframe

    rows_frame, bag = _dask_inputs(world, rows)
    common: dict[str, Any] = {
        "destination_key_id": world["destination"],
        "client": settings,
        "workers": 2,
    }
    statuses: list[str] = []
    for dry_run in (False, True) if frame else ():
        rotated = rotate_dataframe(
            rows_frame,
            id_column="id",
            ciphertext_column="blob",
            context_columns={"tenant": "tenant"},
            journal_dir=None if dry_run else journal_dir,
            dry_run=dry_run,
            **common,
        ).compute(scheduler=scheduler)
        statuses += rotated["rotation_status"].tolist()
    records = rotate_bag(
        bag, ciphertext_field="ciphertext", base64=True, **common
    ).compute(scheduler=scheduler)
    statuses += [record["rotation_status"] for record in records]
    return statuses


def test_a_dask_rotation_leaks_nothing_in_logs_results_or_journals(
    local_kms: Any,
    every_logger: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``rotate_dataframe`` (with a journal directory) and ``rotate_bag``
    on threads, clients built from canary credentials in the environment,
    a canary grant token, the canary context in a column and a forged
    ciphertext: the logs (every logger at DEBUG but botocore's), the
    error columns and records, the reprs of the settings and the
    partition journals hold no credential, token, old ciphertext or
    context value. The journals keep ids, key ARNs and the new
    ciphertexts, which the result holds too."""
    pytest.importorskip("dask.dataframe")
    pytest.importorskip("pyarrow")
    import dask.bag as db
    import dask.dataframe as dd
    import pandas as pd

    from kms_reencrypt.dask import rotate_bag, rotate_dataframe

    world = _canary_world(local_kms)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CANARY_ACCESS)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY_SECRET)
    settings = kms_reencrypt.ClientSettings(
        region_name=local_kms.region, endpoint_url=local_kms.endpoint_url
    )
    blobs = [*world["blobs"], world["forged"]]
    ids = [f"row-{n}" for n in range(len(blobs) - 1)] + ["forged"]
    frame = dd.from_pandas(
        pd.DataFrame(
            {
                "id": ids,
                "blob": [_b64(blob) for blob in blobs],
                "tenant": [CANARY_CONTEXT] * len(blobs),
            }
        ),
        npartitions=2,
        sort=False,
    )
    bag = db.from_sequence(
        [
            {"id": i, "ciphertext_blob": b, "encryption_context": ctx}
            for i, b, ctx in zip(
                ids, blobs, [world["context"]] * len(blobs), strict=True
            )
        ],
        npartitions=2,
    )
    journal = tmp_path / "journal"
    common: dict[str, Any] = {
        "destination_key_id": world["destination"],
        "client": settings,
        "grant_tokens": [world["grant"]],
        "workers": 2,
    }

    rotated = rotate_dataframe(
        frame,
        id_column="id",
        ciphertext_column="blob",
        base64=True,
        context_columns={"tenant": "tenant"},
        journal_dir=journal,
        **common,
    ).compute(scheduler="threads")
    records = rotate_bag(bag, **common).compute(scheduler="threads")

    statuses = rotated.set_index("id")["rotation_status"].to_dict()
    assert ["ok"] * 6 + ["failed"] == [statuses[i] for i in ids]
    assert ["ok"] * 6 + ["failed"] == [r["rotation_status"] for r in records]
    old = [_b64(blob) for blob in world["blobs"]]
    new = rotated["rotation_ciphertext"].dropna().tolist()
    secrets = [*_secret_forms(), world["grant"], *old]
    errors = rotated[["rotation_error", "rotation_error_message"]]
    failed = [
        {k: v for k, v in r.items() if k.startswith("rotation_error")}
        for r in records
    ]
    _never(
        [
            "\n".join(every_logger),
            repr(settings),
            errors.to_json(),
            json.dumps(failed, default=str),
        ],
        [*secrets, *new],
    )
    files = [p for p in journal.rglob("*") if p.is_file()]
    raw = b"".join(p.read_bytes() for p in files)
    assert files
    for secret in secrets:
        assert secret.encode() not in raw, f"{secret[:24]!r} in a journal"
    assert all(c.encode() in raw for c in new)  # where they belong


def test_dask_on_the_local_schedulers_calls_only_reencrypt(
    local_kms: Any, tmp_path: Path
) -> None:
    """``rotate_dataframe`` and ``rotate_bag`` without a cluster, on
    threads, and the Bag again on the processes scheduler (whose worker
    processes build their own clients); a dry run too. The local KMS
    receives one ReEncrypt per row and nothing else."""
    pytest.importorskip("dask.dataframe")
    pytest.importorskip("pyarrow")
    world = _canary_world(local_kms)
    settings = kms_reencrypt.ClientSettings.for_local_kms(local_kms)
    before = dict(local_kms.stats.requests)

    threads = _rotate_dask(world, settings, 8, tmp_path / "j", "threads")
    processes = _rotate_dask(
        world, settings, 4, tmp_path / "k", "processes", frame=False
    )

    assert ["ok"] * 8 + ["dry-run"] * 8 + ["ok"] * 8 == threads
    assert ["ok"] * 4 == processes
    assert {"ReEncrypt": 8 + 8 + 4} == _called(local_kms, before)


def test_dask_workers_and_rotate_parquet_call_only_reencrypt(
    local_kms: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a LocalCluster of two worker processes, each building its own
    clients: ``rotate_dataframe``, ``rotate_bag`` and ``kms-reencrypt
    rotate-parquet --dask-scheduler ... --endpoint-url ...`` (the
    command's workers use the standard credential chain, given dummy
    canary credentials in their environment). The local KMS receives
    one ReEncrypt per row and nothing else; the command's standard error
    (at ``-vv``), its report and its partition journals hold no
    credential, grant token, old ciphertext or context value."""
    pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("distributed")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    world = _canary_world(local_kms)
    settings = kms_reencrypt.ClientSettings.for_local_kms(local_kms)
    dummies = {
        "AWS_ACCESS_KEY_ID": CANARY_ACCESS,
        "AWS_SECRET_ACCESS_KEY": CANARY_SECRET,
        "AWS_DEFAULT_REGION": local_kms.region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in dummies.items():
        monkeypatch.setenv(name, value)
    frame, _ = _dask_inputs(world, 6)
    source = tmp_path / "in"
    source.mkdir()
    pq.write_table(
        pa.Table.from_pandas(frame.compute(), preserve_index=False),
        source / "part.parquet",
    )
    before = dict(local_kms.stats.requests)

    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            env=dummies,
        ) as cluster,
        distributed.Client(cluster),
    ):
        statuses = _rotate_dask(world, settings, 6, tmp_path / "j")
        status = main(
            [
                "-vv",
                "rotate-parquet",
                "--to",
                world["destination"],
                "--input",
                str(source),
                "--output",
                str(tmp_path / "out"),
                "--column",
                "blob",
                "--id-column",
                "id",
                "--context-field",
                "tenant=tenant",
                "--dask-scheduler",
                cluster.scheduler_address,
                "--endpoint-url",
                local_kms.endpoint_url,
                "--region",
                local_kms.region,
                "--report",
                str(tmp_path / "report.json"),
            ]
        )
    err = capsys.readouterr().err

    assert 0 == status, err
    assert ["ok"] * 6 + ["dry-run"] * 6 + ["ok"] * 6 == statuses
    assert {"ReEncrypt": 6 + 6 + 6} == _called(local_kms, before)
    assert "kms_reencrypt" in err  # -vv did log
    secrets = [*_secret_forms(), world["grant"]]
    secrets += [_b64(blob) for blob in world["blobs"]]
    _never([err, (tmp_path / "report.json").read_text()], secrets)
    files = [p for p in (tmp_path / "out.journal").rglob("*") if p.is_file()]
    assert files
    raw = b"".join(p.read_bytes() for p in files)
    for secret in secrets:
        assert secret.encode() not in raw, f"{secret[:24]!r} in a journal"


# -- the user's AWS configuration ----------------------------------------

# Loaded by every Python process started with ``hooks`` on PYTHONPATH: the
# command, and the worker processes it spawns (which inherit the
# environment). Each event goes to the log as it happens, as
# ``[pid, event, path]``, so a worker killed at the end loses nothing;
# ``start`` (with the command line) and ``exit`` mark each process.
_AUDIT_HOOK = """\
import atexit
import json
import os
import sys

_LOG = os.environ.get("KMS_REENCRYPT_AUDIT_LOG")
_EVENTS = {
    "open", "os.listdir", "os.scandir", "os.mkdir", "os.rename",
    "os.remove", "os.rmdir", "os.chmod", "os.utime", "os.truncate",
    "os.symlink", "os.link", "shutil.rmtree", "sqlite3.connect",
}


def _write(event, path):
    line = json.dumps([os.getpid(), event, path]) + "\\n"
    os.write(_FD, line.encode())


def _hook(event, args):
    if event in _EVENTS and args:
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if isinstance(path, str):
            _write(event, os.path.abspath(path))


if _LOG:
    _FD = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    _write("start", " ".join(sys.orig_argv))
    sys.addaudithook(_hook)
    atexit.register(_write, "exit", "")
"""

# inotify(7) event bits: access, modify, attrib, open, moves, create,
# delete, delete and move of the watched path itself.
_IN_WATCH = 0x1 | 0x2 | 0x4 | 0x20 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400
_IN_WATCH |= 0x800


class _Inotify:
    """Every open, read or change of the watched paths, by any process
    and any code. The audit hook sees Python's own file calls only; a
    library opening files from C or C++ (pyarrow, for one) would pass it
    by. Linux only: elsewhere it sees nothing."""

    def __init__(self, paths: list[Path]) -> None:
        self._fd = -1
        self._names: dict[int, str] = {}
        if not sys.platform.startswith("linux"):
            return
        libc = ctypes.CDLL(None, use_errno=True)
        fd: int = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._fd = fd
        for path in paths:
            wd: int = libc.inotify_add_watch(fd, os.fsencode(path), _IN_WATCH)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"cannot watch {path}")
            self._names[wd] = str(path)

    def events(self) -> list[tuple[str, int, str]]:
        """(watched path, event mask, name inside it) of each event so
        far; an overflowed queue shows as a path of ``?``."""
        if self._fd < 0:
            return []
        data = b""
        while True:
            try:
                data += os.read(self._fd, 65536)
            except BlockingIOError:
                break
        found, offset = [], 0
        while offset < len(data):
            wd, mask, _, size = struct.unpack_from("iIII", data, offset)
            name = data[offset + 16 : offset + 16 + size].rstrip(b"\0")
            found.append((self._names.get(wd, "?"), mask, os.fsdecode(name)))
            offset += 16 + size
        return found

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _tree(*roots: Path) -> dict[str, tuple[int, int, bytes]]:
    state = {}
    for root in roots:
        paths = [root, *root.rglob("*")] if root.is_dir() else [root]
        for path in paths:
            info = path.lstat()
            content = path.read_bytes() if path.is_file() else b""
            state[str(path)] = (info.st_mode, info.st_mtime_ns, content)
    return state


class _Run:
    """One audited subprocess: its result, and the events of every
    process the audit hook ran in (the first is the subprocess itself)."""

    def __init__(
        self, done: subprocess.CompletedProcess[str], log: Path
    ) -> None:
        self.done = done
        self.events: list[tuple[int, str, str]] = []
        for line in log.read_text().splitlines():
            pid, event, path = json.loads(line)
            self.events.append((pid, event, path))
        self.main = self.events[0][0]

    def starts(self) -> dict[int, str]:
        """Each process the hook ran in, with its command line."""
        return {
            pid: cmd for pid, event, cmd in self.events if event == "start"
        }

    def spawned(self) -> set[int]:
        """The multiprocessing children (Dask workers, rotation worker
        processes) the hook ran in."""
        return {
            pid
            for pid, command in self.starts().items()
            if "spawn_main" in command and pid != self.main
        }

    def touched(self, *roots: Path) -> list[tuple[int, str, str]]:
        """Every event on a path at or under one of ``roots``."""
        real = [os.path.realpath(root) for root in roots]
        found = []
        for pid, event, path in self.events:
            if event in ("start", "exit"):
                continue
            resolved = os.path.realpath(path)
            if any(
                resolved == root or resolved.startswith(root + os.sep)
                for root in real
            ):
                found.append((pid, event, path))
        return found

    def server_operations(self) -> set[str]:
        """The operations the command's in-process local KMS answered,
        from its DEBUG log (``-vv``) on standard error."""
        pattern = r"kms_reencrypt\.local\._server: (\w+) -> "
        return set(re.findall(pattern, self.done.stderr))


CANARY_PROFILE = "canary-profile-that-does-not-exist"
CANARY_SESSION = "canary-session-token-3d5e"


class _CanaryAws:
    """A HOME, AWS config and credentials files, and an environment that
    name canary credentials, a canary profile and an unreachable KMS
    endpoint; subprocesses run there with the audit hook, and inotify
    watches the files from the moment this is made."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.config = root / "config"
        self.credentials = root / "credentials"
        self.work = root / "work"
        (self.home / ".aws").mkdir(parents=True)
        self.work.mkdir()
        canary = (
            "[default]\n"
            f"aws_access_key_id = {CANARY_ACCESS}\n"
            f"aws_secret_access_key = {CANARY_SECRET}\n"
            f"aws_session_token = {CANARY_SESSION}\n"
            f"[profile {CANARY_PROFILE}]\n"
            f"aws_access_key_id = {CANARY_ACCESS}\n"
        )
        aws = self.home / ".aws"
        for path in (aws / "config", aws / "credentials"):
            path.write_text(canary)
        self.config.write_text(canary)
        self.credentials.write_text(canary)
        hooks = root / "hooks"
        hooks.mkdir()
        (hooks / "sitecustomize.py").write_text(_AUDIT_HOOK)
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "AWS_CONFIG_FILE": str(self.config),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.credentials),
            "AWS_PROFILE": CANARY_PROFILE,
            "AWS_ACCESS_KEY_ID": CANARY_ACCESS,
            "AWS_SECRET_ACCESS_KEY": CANARY_SECRET,
            "AWS_SESSION_TOKEN": CANARY_SESSION,
            "AWS_ENDPOINT_URL_KMS": "http://127.0.0.1:9",
            "PYTHONPATH": str(hooks),
        }
        self.watched = [self.home, self.config, self.credentials]
        self._before = _tree(*self.watched)
        self._inotify = _Inotify(
            [self.home, aws, self.config, self.credentials]
        )
        self._runs = 0

    def run(self, argv: list[str], timeout: float = 120) -> _Run:
        """Run ``python ARGV`` in the work directory, audited."""
        self._runs += 1
        log = self.root / f"audit-{self._runs}.jsonl"
        done = subprocess.run(
            [sys.executable, *argv],
            cwd=self.work,
            env={**self.env, "KMS_REENCRYPT_AUDIT_LOG": str(log)},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return _Run(done, log)

    def file_events(self) -> list[tuple[str, int, str]]:
        """What inotify saw on the canary files so far."""
        return self._inotify.events()

    def assert_untouched(self, run: _Run) -> None:
        """No process of the run opened, listed or changed a canary
        path (audit hook), no code at all did (inotify), nothing there
        changed, and no canary reached the run's output; the hook ran in
        the run's own process from start to exit."""
        assert [] == run.touched(*self.watched)
        assert [] == self.file_events()
        assert self._before == _tree(*self.watched)
        _never(
            [run.done.stdout, run.done.stderr],
            [CANARY_ACCESS, CANARY_SECRET, CANARY_SESSION, CANARY_PROFILE],
        )
        assert (run.main, "exit", "") in run.events

    def close(self) -> None:
        self._inotify.close()


@pytest.fixture
def canary_aws(tmp_path: Path) -> Iterator[_CanaryAws]:
    canary = _CanaryAws(tmp_path)
    try:
        yield canary
    finally:
        canary.close()


_LOCAL_COMMANDS = {
    "demo": ["demo", "--count", "3", "--workers", "2"],
    "rotate": [
        "rotate",
        "--local",
        "--to",
        "alias/x",
        "--input",
        "in.jsonl",
        "--output",
        "out.jsonl",
    ],
    "re-encrypt": [
        "re-encrypt",
        "--local",
        "--to",
        "alias/x",
        "--ciphertext-b64",
        _b64(b"\x01\x02\x02\x00" * 20),
    ],
    "rotate-parquet": [
        "rotate-parquet",
        "--local",
        "--to",
        "alias/x",
        "--input",
        "in",
        "--output",
        "out",
        "--column",
        "blob",
        "--id-column",
        "id",
        "--context-field",
        "tenant=tenant",
    ],
}


@pytest.mark.parametrize("command", list(_LOCAL_COMMANDS))
def test_a_local_command_never_reads_or_changes_the_users_aws_setup(
    canary_aws: _CanaryAws, command: str
) -> None:
    """``kms-reencrypt -vv demo``, and ``rotate``, ``re-encrypt`` and
    ``rotate-parquet`` with ``--local``, in a subprocess whose HOME,
    AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE,
    credentials and KMS endpoint are canaries: no process of the command
    (rotate-parquet's Dask workers included) opens, lists or changes any
    of the files, nothing there changes, and no canary reaches the
    output. Beside the demo, which encrypts its own data, the local KMS
    answered ReEncrypt (and DescribeKey) only."""
    work = canary_aws.work
    blob = b"\x01\x02\x02\x00" * 20
    (work / "in.jsonl").write_text(
        json.dumps({"id": "a", "ciphertext": _b64(blob)}) + "\n"
    )
    if command == "rotate-parquet":
        pytest.importorskip("distributed")
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        table = pa.table(
            {
                "id": ["r0", "r1", "r2", "r3"],
                "blob": pa.array([blob] * 4, pa.binary()),
                "tenant": ["t"] * 4,
            }
        )
        (work / "in").mkdir()
        pq.write_table(table.slice(0, 2), work / "in" / "a.parquet")
        pq.write_table(table.slice(2), work / "in" / "b.parquet")

    run = canary_aws.run(
        ["-m", "kms_reencrypt", "-vv", *_LOCAL_COMMANDS[command]]
    )

    # The demo verifies; the others ran, each item failing on alias/x.
    assert (0 if command == "demo" else 1) == run.done.returncode, (
        run.done.stderr
    )
    canary_aws.assert_untouched(run)
    if command != "demo":
        assert {"ReEncrypt"} <= run.server_operations()
        assert run.server_operations() <= {"ReEncrypt", "DescribeKey"}
    if command == "rotate":
        # The hook was on: it saw the journal being opened.
        journal = str(work / "out.jsonl.journal")
        assert (run.main, "sqlite3.connect", journal) in run.events
    if command == "rotate-parquet":
        # The hook ran in the Dask workers, and saw them write the
        # partition journals.
        workers = run.spawned()
        assert len(workers) >= 1, run.starts()
        journal = work / "out.journal"
        assert {pid for pid, _, _ in run.touched(journal)} & workers


_LOCAL_KMS_API = """\
import json
import sys

import kms_reencrypt
from kms_reencrypt import ClientSettings, RotationItem
from kms_reencrypt.local import LocalKms

context = {"tenant": "t"}
with LocalKms() as local:
    kms = local.kms_client()
    source = local.create_key()["Arn"]
    destination = local.create_key()["Arn"]
    blobs = [
        kms.encrypt(
            KeyId=source, Plaintext=b"key %d" % n, EncryptionContext=context
        )["CiphertextBlob"]
        for n in range(4)
    ]
    one = local.client().re_encrypt(
        CiphertextBlob=blobs[0],
        SourceEncryptionContext=context,
        DestinationKeyId=destination,
    )
    items = [
        RotationItem(id=str(n), ciphertext_blob=b, encryption_context=context)
        for n, b in enumerate(blobs)
    ]
    settings = ClientSettings.for_local_kms(local)
    ok = [
        kms_reencrypt.rotate(
            items, destination_key_id=destination, client=local.client()
        ).ok,
        kms_reencrypt.rotate(
            items,
            destination_key_id=destination,
            client=settings,
            processes=2,
            workers=2,
        ).ok,
    ]
    if "dask" in sys.argv:
        import dask.bag as db
        import dask.dataframe as dd
        import pandas as pd
        import pyarrow as pa

        from kms_reencrypt.dask import rotate_bag, rotate_dataframe

        frame = pd.DataFrame(
            {
                "id": [str(n) for n in range(4)],
                "blob": pd.array(blobs, dtype=pd.ArrowDtype(pa.binary())),
                "tenant": ["t"] * 4,
            }
        )
        rotated = rotate_dataframe(
            dd.from_pandas(frame, npartitions=2),
            destination_key_id=destination,
            id_column="id",
            ciphertext_column="blob",
            context_columns={"tenant": "tenant"},
            client=settings,
            journal_dir="dask.journal",
        ).compute()
        ok.append(int((rotated["rotation_status"] == "ok").sum()))
        records = rotate_bag(
            db.from_sequence(
                [
                    {"id": str(n), "ciphertext_blob": b, "encryption_context": context}
                    for n, b in enumerate(blobs)
                ],
                npartitions=2,
            ),
            destination_key_id=destination,
            client=settings,
        ).compute(scheduler="processes")
        ok.append(sum(r["rotation_status"] == "ok" for r in records))
    print(
        json.dumps(
            {
                "one": one.key_id == destination,
                "ok": ok,
                "requests": dict(local.stats.requests),
            }
        )
    )
"""


def test_the_local_kms_api_never_reads_or_changes_the_users_aws_setup(
    canary_aws: _CanaryAws,
) -> None:
    """``LocalKms()`` started in a program, its ``kms_client()`` and
    ``client()``, ``rotate`` through a client and through
    ``ClientSettings.for_local_kms`` in two worker processes, and (with
    Dask) ``rotate_dataframe`` on threads and ``rotate_bag`` on the
    processes scheduler, in a subprocess among canaries as above: no
    process opens, lists or changes the canary files, no canary reaches
    the output, and the local KMS received the program's own Encrypts
    and ReEncrypt, nothing else."""
    dask = importlib.util.find_spec("distributed") is not None
    run = canary_aws.run(
        ["-c", _LOCAL_KMS_API, *(["dask"] if dask else [])], timeout=180
    )

    assert 0 == run.done.returncode, run.done.stderr
    result = json.loads(run.done.stdout)
    canary_aws.assert_untouched(run)
    assert result["one"]
    assert [4] * (4 if dask else 2) == result["ok"]
    rotated = 1 + 4 * len(result["ok"])
    assert {"Encrypt": 4, "ReEncrypt": rotated} == result["requests"]
    # The hook ran in rotate's two worker processes (and in the processes
    # scheduler's, with Dask).
    assert len(run.spawned()) >= (3 if dask else 2), run.starts()


def test_the_audit_sees_a_client_of_the_standard_chain_read_the_config(
    canary_aws: _CanaryAws,
) -> None:
    """The control for the two tests above: ``kms_reencrypt.client()``
    (botocore's standard chain, as against AWS) in the same setting is
    seen opening the canary config file, by the audit hook and by
    inotify."""
    run = canary_aws.run(
        [
            "-c",
            "import kms_reencrypt\n"
            "try:\n"
            "    kms_reencrypt.client(region_name='us-east-1')\n"
            "except kms_reencrypt.ConfigurationError:\n"
            "    pass\n",
        ],
        timeout=60,
    )

    assert 0 == run.done.returncode, run.done.stderr
    assert (run.main, "open", str(canary_aws.config)) in run.events
    opened = 0x20
    assert any(
        path == str(canary_aws.config) and mask & opened
        for path, mask, _ in canary_aws.file_events()
    )
