"""Type-checked uses of the public API (mypy --strict, never executed).

If a change to a signature breaks a typical caller, mypy fails here.
The local KMS and the pytest fixtures are in local_kms_api.py, the Dask
functions in dask_api.py.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, assert_type

import boto3
from botocore.exceptions import ClientError

import kms_reencrypt
import kms_reencrypt.exceptions
from kms_reencrypt import (
    ClientSettings,
    ConfigurationError,
    DryRunResult,
    EncryptionAlgorithm,
    KeyIdentifier,
    KeyIdForm,
    KmsReEncryptError,
    KmsServiceError,
    PlaintextLimitWarning,
    ReEncryptClient,
    ReEncryptResult,
    Rotation,
    RotationConfig,
    RotationItem,
    RotationOutcome,
    RotationReport,
    RotationStatus,
    RotationStoppedError,
    WriteBackError,
)


def single_call(blob: bytes) -> bytes:
    kms = kms_reencrypt.client(region_name="eu-west-1")
    assert_type(kms, ReEncryptClient)

    result = kms.re_encrypt(
        CiphertextBlob=blob,
        SourceKeyId="alias/old",
        SourceEncryptionContext={"table": "orders"},
        DestinationKeyId="alias/new",
        DestinationEncryptionContext={"table": "orders"},
        GrantTokens=["token"],
    )
    assert_type(result, ReEncryptResult)
    assert_type(result.key_id, str | None)

    return result.ciphertext_blob


def dry_run() -> bool:
    kms = kms_reencrypt.client()
    answer = kms.re_encrypt(
        SourceKeyId="alias/old",
        DestinationKeyId="alias/new",
        DryRun=True,
        DryRunModifiers=["IGNORE_CIPHERTEXT"],
    )
    assert_type(answer, DryRunResult)

    return answer.would_succeed


def asymmetric_destination(blob: bytes) -> None:
    kms = ReEncryptClient(boto3.client("kms"))
    kms.re_encrypt(
        CiphertextBlob=blob,
        DestinationKeyId="alias/rsa",
        DestinationEncryptionAlgorithm=EncryptionAlgorithm.RSAES_OAEP_SHA_256,
    )
    kms.re_encrypt(
        CiphertextBlob=blob,
        DestinationKeyId="alias/rsa",
        DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_1",
    )


def module_function(blob: bytes) -> None:
    answer = kms_reencrypt.kms_re_encrypt(
        CiphertextBlob=blob,
        DestinationKeyId="alias/new",
        client=boto3.client("kms"),
    )
    assert_type(answer, ReEncryptResult)


def handle(blob: bytes) -> str | None:
    try:
        single_call(blob)
    except kms_reencrypt.RequestValidationError as error:
        return error.parameter
    except KmsServiceError as error:
        assert_type(error.code, str)
        assert_type(error.http_status, int | None)
        return error.request_id
    return None


# -- key identifiers and base64 --


def key_identifiers(text: str) -> str | None:
    key = kms_reencrypt.parse_key_id(text, parameter="DestinationKeyId")
    assert_type(key, KeyIdentifier)
    assert_type(key.form, KeyIdForm)
    assert_type(key.is_alias, bool)
    if key.form is KeyIdForm.KEY_ARN:
        assert_type(key.region, str | None)
    return key.key_id


def base64_text(text: str, raw: bytes) -> str:
    blob = kms_reencrypt.ciphertext_from_base64(text)
    assert_type(blob, bytes)
    kms_reencrypt.ciphertext_from_base64(raw, parameter="data_key")
    warnings.simplefilter("ignore", PlaintextLimitWarning)
    return kms_reencrypt.ciphertext_to_base64(blob)


# -- bulk rotation --


def items(blobs: Mapping[str, bytes]) -> Iterator[RotationItem]:
    for item_id, blob in blobs.items():
        yield RotationItem(
            id=item_id,
            ciphertext_blob=blob,
            encryption_context={"table": "orders"},
            source_key_id="alias/old",
        )


def rotate_items(blobs: Mapping[str, bytes], out: Path) -> RotationReport:
    kept: list[RotationOutcome] = []

    def write(outcome: RotationOutcome) -> None:
        if outcome.ok:
            assert_type(outcome.ciphertext_blob, bytes | None)
            kept.append(outcome)

    report = kms_reencrypt.rotate(
        items(blobs),
        destination_key_id="alias/new",
        client=kms_reencrypt.client(region_name="eu-west-1"),
        writer=write,
        journal=out / "journal.sqlite",
        workers=8,
        rate=500.0,
        max_failures=0.01,
    )
    assert_type(report, RotationReport)
    return report


def rotate_dicts(blobs: Mapping[str, bytes]) -> dict[str, Any]:
    rows = [
        {"id": key, "ciphertext_blob": blob} for key, blob in blobs.items()
    ]
    config = RotationConfig(workers=4, processes=2, rate=None, window=64)
    assert_type(config.effective_window, int)
    report = kms_reencrypt.rotate(
        rows,
        destination_key_id="alias/new",
        client=ClientSettings(region_name="eu-west-1", profile_name="ops"),
        destination_encryption_context=None,
        grant_tokens=("token",),
        config=config,
        # Any callable of one outcome: its result is ignored.
        writer=lambda outcome: print(outcome.id, outcome.status),
    )
    assert_type(report.failures_by_code, Mapping[str, int])
    assert_type(
        report.failed_items, tuple[tuple[str | None, str, int | None], ...]
    )
    assert_type(report.stopped_reason, str | None)
    assert_type(report.calls_per_second, float)
    return report.to_dict()


def rotation_dry_run(blobs: list[RotationItem]) -> int:
    report = kms_reencrypt.rotate(
        blobs,
        destination_key_id="alias/new",
        client=boto3.client("kms"),
        dry_run=True,
        server_dry_run=10,
        destination_encryption_context={"table": "orders"},
        destination_encryption_algorithm="SYMMETRIC_DEFAULT",
    )
    return report.dry_run


def rotate_one_by_one(blobs: Mapping[str, bytes]) -> RotationReport:
    settings = ClientSettings(endpoint_url="http://127.0.0.1:4566")
    assert_type(settings.build(max_pool_connections=4), ReEncryptClient)
    rotation = kms_reencrypt.rotate_iter(
        items(blobs),
        destination_key_id="alias/new",
        client=settings,
        config=RotationConfig(max_attempts=3, backoff_cap=5.0),
        journal_line=lambda outcome: outcome.id,
    )
    assert_type(rotation, Rotation)
    with rotation as running:
        assert_type(running, Rotation)
        for outcome in running:
            assert_type(outcome, RotationOutcome)
            assert_type(outcome.status, RotationStatus)
            assert_type(outcome.error, BaseException | None)
            assert_type(outcome.error_code, str | None)
            if outcome.status is RotationStatus.FAILED:
                print(outcome.id, outcome.line, outcome.error_code)
            elif outcome.status is RotationStatus.SKIPPED:
                continue
    assert_type(rotation.report, RotationReport)
    return rotation.report


def stopped_early(blobs: Mapping[str, bytes]) -> str | None:
    try:
        rotate_items(blobs, Path("."))
    except RotationStoppedError as error:
        assert_type(error.reason, str)
        assert_type(error.code, str | None)
        return error.code
    except WriteBackError as error:
        assert_type(error.item_id, str | None)
    except ConfigurationError as error:
        assert_type(error.option, str)
    return None


def statuses() -> list[str]:
    status = RotationStatus("dry-run")
    assert_type(status, RotationStatus)
    text: str = status  # a StrEnum: its members are str
    return [text, *(s.value for s in RotationStatus)]


# -- the exceptions module --


def error_classes(error: ClientError) -> KmsReEncryptError:
    cls = kms_reencrypt.exceptions.error_class_for_code("NotFoundException")
    assert_type(cls, type[KmsServiceError])
    assert issubclass(cls, kms_reencrypt.exceptions.KmsServiceError)
    assert_type(cls.retryable, bool)
    assert_type(cls.hint, str | None)
    translated = kms_reencrypt.exceptions.translate_botocore_error(
        error, operation="ReEncrypt", key_id="alias/new"
    )
    assert_type(translated, KmsReEncryptError)
    return translated


def connection_errors() -> str | None:
    try:
        single_call(b"blob")
    except kms_reencrypt.exceptions.KmsConnectionError as error:
        assert_type(error.operation, str)
        return error.endpoint_url
    except kms_reencrypt.exceptions.ThrottlingException as error:
        assert_type(error.retry_attempts, int)
        return error.key_id
    return None
