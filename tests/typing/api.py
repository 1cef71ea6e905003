"""Type-checked uses of the public API (mypy --strict, never executed).

If a change to a signature breaks a typical caller, mypy fails here.
"""

from __future__ import annotations

from typing import assert_type

import boto3

import kms_reencrypt
from kms_reencrypt import (
    DryRunResult,
    EncryptionAlgorithm,
    KmsServiceError,
    ReEncryptClient,
    ReEncryptResult,
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
