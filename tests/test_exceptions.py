"""Service errors become typed exceptions, mapped by code in one table."""

from __future__ import annotations

import pickle
import socket
from typing import Any

import botocore.session
import pytest
from botocore.config import Config
from botocore.stub import Stubber

import kms_reencrypt
from kms_reencrypt import (
    KmsConnectionError,
    KmsReEncryptError,
    KmsServiceError,
    RequestValidationError,
)
from kms_reencrypt._exceptions import _ERROR_CLASSES, error_class_for_code
from kms_reencrypt._session import isolated_kms_client

UNMODELED = {
    "AccessDeniedException",
    "ThrottlingException",
    "ValidationException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignature",
    "ExpiredTokenException",
}
RETRYABLE = {
    "KMSInternalException",
    "DependencyTimeoutException",
    "KeyUnavailableException",
    "ThrottlingException",
}


def _re_encrypt_error_names() -> set[str]:
    model = botocore.session.Session().get_service_model("kms")
    operation = model.operation_model("ReEncrypt")
    return {shape.name for shape in operation.error_shapes}


def test_every_error_of_the_botocore_model_has_a_class() -> None:
    """A future botocore that adds a ReEncrypt error fails this test."""
    missing = _re_encrypt_error_names() - set(_ERROR_CLASSES)

    assert set() == missing


def test_the_table_is_the_model_plus_the_unmodeled_codes() -> None:
    """Nothing in the table is invented."""
    assert _re_encrypt_error_names() | UNMODELED == set(_ERROR_CLASSES)


@pytest.mark.parametrize("code", sorted(_ERROR_CLASSES))
def test_each_class_is_named_as_its_code_and_exported(code: str) -> None:
    """Classes are importable from the package root under the code."""
    cls = getattr(kms_reencrypt, code)

    assert cls is _ERROR_CLASSES[code]
    assert issubclass(cls, KmsServiceError)
    assert (code in RETRYABLE) is cls.retryable


def test_namespaced_and_unknown_codes() -> None:
    """A namespace prefix is ignored; an unknown code stays a plain
    KmsServiceError."""
    assert kms_reencrypt.NotFoundException is error_class_for_code(
        "com.amazonaws.kms#NotFoundException"
    )
    assert KmsServiceError is error_class_for_code("BrandNewException")


def _stubbed() -> tuple[kms_reencrypt.ReEncryptClient, Stubber]:
    kms = isolated_kms_client(
        endpoint_url="http://127.0.0.1:9", region_name="us-east-1"
    )
    return kms_reencrypt.ReEncryptClient(kms), Stubber(kms)


# Codes the local KMS cannot produce: server faults of AWS itself and
# authentication failures (the local KMS accepts any signature).
STUBBED = {
    "KeyUnavailableException": 500,
    "DependencyTimeoutException": 500,
    "KMSInternalException": 500,
    "UnrecognizedClientException": 400,
    "InvalidSignatureException": 400,
    "IncompleteSignature": 400,
    "ExpiredTokenException": 400,
    "BrandNewException": 400,
}


@pytest.mark.parametrize(("code", "status"), sorted(STUBBED.items()))
def test_stubbed_codes_raise_their_class(code: str, status: int) -> None:
    """Answers no local server can give are raised typed from a stub."""
    facade, stub = _stubbed()
    stub.add_client_error(
        "re_encrypt",
        service_error_code=code,
        service_message="from the stub",
        http_status_code=status,
    )

    with stub, pytest.raises(KmsServiceError) as caught:
        facade.re_encrypt(
            CiphertextBlob=b"\x01" * 40, DestinationKeyId="alias/dest"
        )

    error = caught.value
    assert error_class_for_code(code) is type(error)
    assert code == error.code
    assert "from the stub" == error.message
    assert status == error.http_status
    assert "ReEncrypt" == error.operation


def test_a_success_without_a_ciphertext_is_a_retryable_error() -> None:
    """An answer that lacks CiphertextBlob (cut off, or from a server
    shutting down) never becomes an empty "rotated" ciphertext."""
    facade, stub = _stubbed()
    stub.add_response("re_encrypt", {"KeyId": "k"})

    with stub, pytest.raises(KmsServiceError) as caught:
        facade.re_encrypt(
            CiphertextBlob=b"\x01" * 40, DestinationKeyId="alias/dest"
        )

    assert "KMSInternalException" == caught.value.code
    assert caught.value.retryable


CONTEXT = {"app": "tests"}


@pytest.fixture
def kms(local_kms: Any) -> Any:
    return local_kms.kms_client()


@pytest.fixture
def key(kms: Any) -> str:
    return str(kms.create_key()["KeyMetadata"]["Arn"])


@pytest.fixture
def blob(kms: Any, key: str) -> bytes:
    answer = kms.encrypt(
        KeyId=key, Plaintext=b"secret", EncryptionContext=CONTEXT
    )
    return bytes(answer["CiphertextBlob"])


def _raises(facade: Any, cls: type[KmsServiceError], **request: Any) -> Any:
    with pytest.raises(cls) as caught:
        facade.send(request)
    assert cls.__name__ == caught.value.code
    assert caught.value.request_id
    assert isinstance(caught.value.http_status, int)
    return caught.value


def test_local_incorrect_key(
    local_kms: Any, kms: Any, key: str, blob: bytes
) -> None:
    """Naming another key as SourceKeyId gives IncorrectKeyException."""
    other = kms.create_key()["KeyMetadata"]["Arn"]

    _raises(
        local_kms.client(),
        kms_reencrypt.IncorrectKeyException,
        CiphertextBlob=blob,
        SourceKeyId=other,
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=key,
    )


def test_local_disabled_and_invalid_state(
    local_kms: Any, kms: Any, key: str, blob: bytes
) -> None:
    """A disabled destination, then one pending deletion."""
    destination = kms.create_key()["KeyMetadata"]["Arn"]
    request = {
        "CiphertextBlob": blob,
        "SourceEncryptionContext": CONTEXT,
        "DestinationKeyId": destination,
    }
    kms.disable_key(KeyId=destination)
    _raises(local_kms.client(), kms_reencrypt.DisabledException, **request)

    kms.schedule_key_deletion(KeyId=destination, PendingWindowInDays=7)
    _raises(
        local_kms.client(), kms_reencrypt.KMSInvalidStateException, **request
    )


def test_local_invalid_key_usage(
    local_kms: Any, kms: Any, blob: bytes
) -> None:
    """A signing key cannot be a ReEncrypt destination."""
    signing = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")

    _raises(
        local_kms.client(),
        kms_reencrypt.InvalidKeyUsageException,
        CiphertextBlob=blob,
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=signing["KeyMetadata"]["Arn"],
    )


def test_local_invalid_grant_token(
    local_kms: Any, key: str, blob: bytes
) -> None:
    """A malformed grant token is refused by the service."""
    _raises(
        local_kms.client(),
        kms_reencrypt.InvalidGrantTokenException,
        CiphertextBlob=blob,
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=key,
        GrantTokens=["bogus"],
    )


def test_local_access_denied_for_aws_managed_key(
    local_kms: Any, blob: bytes
) -> None:
    """An AWS managed key used directly is denied, with the permission
    hint."""
    error = _raises(
        local_kms.client(),
        kms_reencrypt.AccessDeniedException,
        CiphertextBlob=blob,
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId="alias/aws/s3",
    )

    assert "kms:ReEncryptFrom" in str(error)


def test_local_validation_exception(local_kms: Any, key: str) -> None:
    """Out-of-range members that skip our checks meet the service's."""
    _raises(
        local_kms.client(),
        kms_reencrypt.ValidationException,
        CiphertextBlob=b"\x01" * 7000,
        DestinationKeyId=key,
    )


def test_local_throttling(local_kms: Any, key: str, blob: bytes) -> None:
    """Throttling injected by the local KMS arrives typed and retryable,
    after botocore's own retries."""
    from kms_reencrypt.local import Faults

    local_kms.faults = Faults(throttle_fraction=1.0)
    facade = kms_reencrypt.ReEncryptClient(
        local_kms.kms_client(config=Config(retries={"total_max_attempts": 2}))
    )

    error = _raises(
        facade,
        kms_reencrypt.ThrottlingException,
        CiphertextBlob=blob,
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=key,
    )

    assert error.retryable
    assert 1 == error.retry_attempts


def test_local_dry_run_operation_exception_from_raw_client(
    kms: Any, key: str, blob: bytes
) -> None:
    """Code calling KMS directly sees DryRunOperationException, and the
    translation gives its class."""
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        kms.re_encrypt(
            CiphertextBlob=blob,
            SourceEncryptionContext=CONTEXT,
            DestinationKeyId=key,
            DryRun=True,
        )

    error = kms_reencrypt._exceptions.translate_botocore_error(
        caught.value, operation="ReEncrypt"
    )
    assert isinstance(error, kms_reencrypt.DryRunOperationException)
    assert 412 == error.http_status


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_endpoint_is_a_connection_error() -> None:
    """No raw botocore exception escapes when nothing listens."""
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    kms = isolated_kms_client(
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )

    with pytest.raises(KmsConnectionError) as caught:
        kms_reencrypt.ReEncryptClient(kms).re_encrypt(
            CiphertextBlob=b"\x01" * 40, DestinationKeyId="alias/x"
        )

    assert endpoint == caught.value.endpoint_url
    assert caught.value.retryable
    assert caught.value.__cause__ is not None


@pytest.mark.parametrize(
    "error",
    [
        kms_reencrypt.NotFoundException(
            "no such key", request_id="r-1", http_status=400, key_id="k"
        ),
        KmsServiceError("odd", code="BrandNewException", http_status=418),
        KmsConnectionError("down", operation="ReEncrypt", endpoint_url="u"),
        kms_reencrypt.ParameterLengthError(
            "too long", parameter="GrantTokens"
        ),
        kms_reencrypt.ConfigurationError("bad", option="session"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_exceptions_pickle_with_their_attributes(
    error: KmsReEncryptError,
) -> None:
    """Errors survive the trip to and from a worker process."""
    copy = pickle.loads(pickle.dumps(error))

    assert type(error) is type(copy)
    assert str(error) == str(copy)
    assert vars(error) == vars(copy)


def test_validation_errors_are_value_errors() -> None:
    """RequestValidationError is also a ValueError, for generic callers."""
    assert issubclass(RequestValidationError, ValueError)
    assert issubclass(RequestValidationError, KmsReEncryptError)
