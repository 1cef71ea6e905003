"""Nothing secret leaks: canary values placed in ciphertexts, grant tokens,
encryption context values and credentials never appear in this library's
logs (any level), reprs or exception messages.

botocore's own DEBUG logging prints request bodies; it is not ours to
silence, and docs/logging.md warns about it. These tests watch every
logger under ``kms_reencrypt``, the local KMS included.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest

import kms_reencrypt
from kms_reencrypt import KmsReEncryptError

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
