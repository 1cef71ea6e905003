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
import json
import logging
import os
import sqlite3
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

    after = local_kms.stats.requests
    called = {
        name: after.get(name, 0) - before.get(name, 0)
        for name in set(after) | set(before)
        if after.get(name, 0) != before.get(name, 0)
    }
    # 4 single calls, 6 + 6 rotated, 3 server dry runs, 6 + 1 by the
    # commands; one DescribeKey for the pre-flight's destination (the
    # call names no source key).
    assert {"ReEncrypt": 4 + 12 + 3 + 7, "DescribeKey": 1} == called


# -- the user's AWS configuration ----------------------------------------

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
_seen = []


def _hook(event, args):
    if event in _EVENTS and args:
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if isinstance(path, str):
            _seen.append([event, os.path.abspath(path)])


def _dump():
    seen = list(_seen)
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps(seen) + "\\n")


if _LOG:
    sys.addaudithook(_hook)
    atexit.register(_dump)
"""


def _tree(*roots: Path) -> dict[str, tuple[int, int, bytes]]:
    state = {}
    for root in roots:
        paths = [root, *root.rglob("*")] if root.is_dir() else [root]
        for path in paths:
            info = path.lstat()
            content = path.read_bytes() if path.is_file() else b""
            state[str(path)] = (info.st_mode, info.st_mtime_ns, content)
    return state


def _touched(log: Path, watched: list[Path]) -> list[list[str]]:
    roots = [os.path.realpath(p) for p in watched]
    touched = []
    for line in log.read_text().splitlines():
        for event, path in json.loads(line):
            real = os.path.realpath(path)
            if any(real == r or real.startswith(r + os.sep) for r in roots):
                touched.append([event, path])
    return touched


def test_the_local_kms_never_reads_or_changes_the_users_aws_setup(
    tmp_path: Path,
) -> None:
    """``kms-reencrypt demo``, ``rotate --local`` and ``re-encrypt
    --local`` in subprocesses whose HOME, AWS_CONFIG_FILE and
    AWS_SHARED_CREDENTIALS_FILE point at canary files (with canary
    credentials, and AWS_PROFILE naming a profile that does not exist):
    an audit hook on open, listdir, sqlite3.connect and the like sees no
    access to any of them, nothing there changes, and no canary reaches
    standard error. The control run, a client built from the standard
    configuration, is seen opening the config file."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    canary = (
        "[default]\n"
        f"aws_access_key_id = {CANARY_ACCESS}\n"
        f"aws_secret_access_key = {CANARY_SECRET}\n"
    )
    for path in (home / ".aws" / "config", home / ".aws" / "credentials"):
        path.write_text(canary)
    config, credentials = tmp_path / "config", tmp_path / "credentials"
    config.write_text(canary)
    credentials.write_text(canary)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_AUDIT_HOOK)
    work = tmp_path / "work"
    work.mkdir()
    (work / "in.jsonl").write_text(
        json.dumps({"id": "a", "ciphertext": _b64(b"\x01\x02\x02\x00" * 20)})
        + "\n"
    )
    log = tmp_path / "audit.jsonl"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_PROFILE": "canary-profile-that-does-not-exist",
        "AWS_ACCESS_KEY_ID": CANARY_ACCESS,
        "AWS_SECRET_ACCESS_KEY": CANARY_SECRET,
        "PYTHONPATH": str(hooks),
        "KMS_REENCRYPT_AUDIT_LOG": str(log),
    }
    watched = [home, config, credentials]
    before = _tree(*watched)
    command = [sys.executable, "-m", "kms_reencrypt", "-vv"]
    runs = [
        ["demo", "--count", "3", "--workers", "2"],
        [
            "rotate",
            "--local",
            "--to",
            "alias/x",
            "--input",
            "in.jsonl",
            "--output",
            "out.jsonl",
        ],
        [
            "re-encrypt",
            "--local",
            "--to",
            "alias/x",
            "--ciphertext-b64",
            _b64(b"\x01\x02\x02\x00" * 20),
        ],
    ]

    statuses = []
    for run in runs:
        done = subprocess.run(
            [*command, *run],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        statuses.append(done.returncode)
        _never([done.stdout, done.stderr], [CANARY_ACCESS, CANARY_SECRET])
    control = subprocess.run(
        [
            sys.executable,
            "-c",
            "import kms_reencrypt\n"
            "try:\n"
            "    kms_reencrypt.client(region_name='us-east-1')\n"
            "except kms_reencrypt.ConfigurationError:\n"
            "    pass\n",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert [0, 1, 1] == statuses  # the demo verifies; the rest ran
    runs_log, control_log = tmp_path / "runs.jsonl", tmp_path / "control.jsonl"
    lines = log.read_text().splitlines()
    assert len(runs) + 1 == len(lines), control.stderr
    runs_log.write_text("\n".join(lines[:-1]) + "\n")
    control_log.write_text(lines[-1] + "\n")
    assert [] == _touched(runs_log, watched)
    # The hook was on in the runs: it saw the journal being opened.
    journal = str(work / "out.jsonl.journal")
    assert ["sqlite3.connect", journal] in _touched(runs_log, [work])
    assert before == _tree(*watched)
    assert ["open", str(config)] in _touched(control_log, watched)
