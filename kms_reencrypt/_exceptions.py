"""Every exception that kms_reencrypt raises, and the one place where
botocore's errors are translated into them.

The tree::

    KmsReEncryptError
    ├── ConfigurationError (ValueError)      a library option is wrong
    ├── RequestValidationError (ValueError)  refused before anything is sent
    │   ├── MissingParameterError
    │   ├── ParameterTypeError
    │   ├── ParameterLengthError
    │   ├── InvalidEnumValueError
    │   ├── InvalidKeyIdentifierError
    │   ├── ConflictingParametersError
    │   ├── CiphertextEncodingError
    │   ├── AwsManagedKeyError
    │   └── KeyPreflightError
    ├── KmsConnectionError                  no answer from the endpoint
    ├── RotationStoppedError                a bulk rotation stopped early
    ├── WriteBackError                      a rotation's writer or journal
    │                                       failed for one item
    └── KmsServiceError                     KMS answered with an error
        ├── NotFoundException, DisabledException, ... (one per code)
        └── ...

A service error is mapped by its error code string, in ``_ERROR_CLASSES``
below, and never by HTTP status or through ``client.exceptions``: KMS
sends several codes (``AccessDeniedException``, ``ThrottlingException``,
``ValidationException``) that botocore's model does not name, and those
would otherwise arrive as an anonymous ``ClientError``.

Messages and attributes carry parameter names, key identifiers, error
codes, request ids, lengths and counts only: never ciphertext bytes,
grant tokens, encryption context values or credentials.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

if TYPE_CHECKING:
    from ._rotate import RotationReport

__all__ = [
    "AccessDeniedException",
    "AwsManagedKeyError",
    "CiphertextEncodingError",
    "ConfigurationError",
    "ConflictingParametersError",
    "DependencyTimeoutException",
    "DisabledException",
    "DryRunOperationException",
    "ExpiredTokenException",
    "IncompleteSignature",
    "IncorrectKeyException",
    "InvalidCiphertextException",
    "InvalidEnumValueError",
    "InvalidGrantTokenException",
    "InvalidKeyIdentifierError",
    "InvalidKeyUsageException",
    "InvalidSignatureException",
    "KMSInternalException",
    "KMSInvalidStateException",
    "KeyPreflightError",
    "KeyUnavailableException",
    "KmsConnectionError",
    "KmsReEncryptError",
    "KmsServiceError",
    "MissingParameterError",
    "NotFoundException",
    "ParameterLengthError",
    "ParameterTypeError",
    "RequestValidationError",
    "RotationStoppedError",
    "ThrottlingException",
    "UnrecognizedClientException",
    "ValidationException",
    "WriteBackError",
    "error_class_for_code",
    "translate_botocore_error",
]


class KmsReEncryptError(Exception):
    """Root of every exception raised by kms_reencrypt.

    ``exit_code`` is the status the ``kms-reencrypt`` command exits with
    when this error ends it.
    """

    exit_code: ClassVar[int] = 1


def _rebuild(
    cls: type[KmsReEncryptError], message: str, kwargs: dict[str, Any]
) -> KmsReEncryptError:
    return cls(message, **kwargs)


class ConfigurationError(KmsReEncryptError, ValueError):
    """A library option (not a KMS request member) has a wrong value.

    Args:
        message: What is wrong and how to fix it.
        option: The name of the option at fault.
    """

    exit_code: ClassVar[int] = 2

    def __init__(self, message: str, *, option: str) -> None:
        super().__init__(message)
        self.option = option

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), str(self), {"option": self.option}))


class RequestValidationError(KmsReEncryptError, ValueError):
    """A request that cannot succeed, refused before anything was sent.

    Args:
        message: The rule that was broken and the fix.
        parameter: The KMS API member at fault, spelled as in the API
            (``CiphertextBlob``, ``DestinationKeyId``, ...).
    """

    exit_code: ClassVar[int] = 2

    def __init__(self, message: str, *, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (type(self), str(self), {"parameter": self.parameter}),
        )


class MissingParameterError(RequestValidationError):
    """A member that this request needs was not given."""


class ParameterTypeError(RequestValidationError):
    """A member has the wrong Python type (a ``str`` for bytes, ...)."""


class ParameterLengthError(RequestValidationError):
    """A member is shorter or longer than the KMS model allows."""


class InvalidEnumValueError(RequestValidationError):
    """A member is not one of the values its KMS enum allows."""


class InvalidKeyIdentifierError(RequestValidationError):
    """A key identifier is not one of the forms KMS accepts, or names a
    key that cannot be reached from this client (another Region)."""


class ConflictingParametersError(RequestValidationError):
    """Members that are valid alone but cannot be combined."""


class CiphertextEncodingError(RequestValidationError):
    """``CiphertextBlob`` is encoded in a way ReEncrypt cannot read: base64
    text instead of raw bytes, or an AWS Encryption SDK message."""


class AwsManagedKeyError(RequestValidationError):
    """An AWS managed key (``alias/aws/...``) was named directly; only the
    AWS service that owns it may use it."""


class KeyPreflightError(RequestValidationError):
    """The optional DescribeKey pre-flight found that a key cannot serve
    this request (usage, state, algorithm or context)."""


class KmsConnectionError(KmsReEncryptError):
    """The KMS endpoint could not be reached or the connection broke,
    after botocore's own retries.

    Args:
        message: What failed, with the endpoint.
        operation: The KMS operation being called.
        endpoint_url: The endpoint that failed, when known.
    """

    retryable: ClassVar[bool] = True

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        endpoint_url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.endpoint_url = endpoint_url

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {
            "operation": self.operation,
            "endpoint_url": self.endpoint_url,
        }
        return (_rebuild, (type(self), str(self), kwargs))


class RotationStoppedError(KmsReEncryptError):
    """A bulk rotation stopped before the end of its input.

    Raised after every outcome already in flight was reported, when an
    error that every remaining item would hit (an unusable destination
    key, rejected credentials, an unreachable endpoint) or the failure
    threshold ended the run. Items not reported were not rotated; run the
    same rotation again, with its journal, to finish them.

    Args:
        reason: Why the run stopped, in one sentence.
        code: The error code that stopped it, when one did.
        report: The ``RotationReport`` of the run so far.
    """

    exit_code: ClassVar[int] = 3

    def __init__(
        self,
        reason: str,
        *,
        code: str | None = None,
        report: RotationReport | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.report = report

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"code": self.code, "report": self.report}
        return (_rebuild, (type(self), self.reason, kwargs))


class WriteBackError(KmsReEncryptError):
    """A rotation's ``writer`` callback or its journal failed for an item.

    The item counts as failed: its old ciphertext stays authoritative and
    the journal does not mark it done, so the next run tries it again.
    The original error is chained as ``__cause__``.

    Args:
        message: What failed, without payloads.
        item_id: The id of the item being written back.
    """

    def __init__(self, message: str, *, item_id: str | None = None) -> None:
        super().__init__(message)
        self.item_id = item_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), str(self), {"item_id": self.item_id}))


class KmsServiceError(KmsReEncryptError):
    """KMS answered a request with an error.

    Subclasses are named exactly as the error code they stand for; an
    unknown code gives a plain ``KmsServiceError`` whose ``code`` keeps
    it. The botocore error is chained as ``__cause__``.

    Args:
        message: The service's message (may be empty).
        code: The error code, for example ``IncorrectKeyException``.
        operation: The KMS operation, for example ``ReEncrypt``.
        request_id: The AWS request id, when the service sent one.
        http_status: The HTTP status of the answer.
        retry_attempts: How many retries botocore made before giving up.
        key_id: The key identifier the request named (the destination
            for ReEncrypt), as given.
    """

    #: True for errors that may go away when the same call is repeated.
    retryable: ClassVar[bool] = False
    #: Advice for codes whose service message is often empty or vague.
    hint: ClassVar[str | None] = None

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        operation: str = "ReEncrypt",
        request_id: str | None = None,
        http_status: int | None = None,
        retry_attempts: int = 0,
        key_id: str | None = None,
    ) -> None:
        self.code = code or type(self).__name__
        self.message = message
        self.operation = operation
        self.request_id = request_id
        self.http_status = http_status
        self.retry_attempts = retry_attempts
        self.key_id = key_id
        super().__init__(self._render())

    def _render(self) -> str:
        text = f"{self.code}: {self.message or '(KMS sent no message)'}"
        if self.hint:
            text += f" Hint: {self.hint}"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {
            "code": self.code,
            "operation": self.operation,
            "request_id": self.request_id,
            "http_status": self.http_status,
            "retry_attempts": self.retry_attempts,
            "key_id": self.key_id,
        }
        return (_rebuild, (type(self), self.message, kwargs))


# The eleven errors of the ReEncrypt operation in botocore's model.


class NotFoundException(KmsServiceError):
    """The key, alias or ARN does not exist in this account and Region."""

    hint = (
        "KMS keys are regional: check the client's Region and account. "
        "An alias name or bare key ID always means the caller's own "
        "account; a key in another account must be named by its key ARN "
        "or alias ARN."
    )


class DisabledException(KmsServiceError):
    """The source or destination key is disabled."""


class InvalidCiphertextException(KmsServiceError):
    """KMS could not read the ciphertext under this encryption context."""

    hint = (
        "SourceEncryptionContext must equal the context used at "
        "encryption exactly, keys and values, case included. Otherwise "
        "the blob may be truncated, base64-encoded twice, or an AWS "
        "Encryption SDK message, which ReEncrypt cannot read."
    )


class KeyUnavailableException(KmsServiceError):
    """The key is temporarily unavailable; retry later."""

    retryable = True


class IncorrectKeyException(KmsServiceError):
    """SourceKeyId is not the key that encrypted the ciphertext."""

    hint = (
        "SourceKeyId must name the key that encrypted the ciphertext. With "
        "an asymmetric source, a wrong SourceEncryptionAlgorithm gives "
        "this same error."
    )


class DependencyTimeoutException(KmsServiceError):
    """A KMS dependency timed out; retry later."""

    retryable = True


class InvalidKeyUsageException(KmsServiceError):
    """A key is not for ENCRYPT_DECRYPT, or the algorithm does not fit
    its key spec."""


class InvalidGrantTokenException(KmsServiceError):
    """A grant token is not valid."""


class KMSInternalException(KmsServiceError):
    """An internal error in KMS; retry later."""

    retryable = True


class KMSInvalidStateException(KmsServiceError):
    """A key's state (pending deletion, pending import, unavailable, ...)
    does not allow this operation."""


class DryRunOperationException(KmsServiceError):
    """The dry run would have succeeded.

    ``ReEncryptClient.re_encrypt`` turns this answer into a
    ``DryRunResult``; it is raised only by code that calls KMS directly.
    """


# Codes the service sends that botocore's ReEncrypt model does not name.


class AccessDeniedException(KmsServiceError):
    """The caller lacks a permission this request needs."""

    hint = (
        "ReEncrypt needs kms:ReEncryptFrom on the source key and "
        "kms:ReEncryptTo on the destination key (kms:ReEncrypt* grants "
        "both). AWS managed keys (alias/aws/...) cannot be used directly."
    )


class ThrottlingException(KmsServiceError):
    """The account's KMS request quota was exceeded; slow down."""

    retryable = True


class ValidationException(KmsServiceError):
    """KMS found a member out of its documented range."""


class UnrecognizedClientException(KmsServiceError):
    """The access key is not known to AWS."""


class InvalidSignatureException(KmsServiceError):
    """The request signature does not match; check the secret key."""


class IncompleteSignature(KmsServiceError):
    """The request signature is missing parts."""


class ExpiredTokenException(KmsServiceError):
    """The session token has expired; refresh the credentials."""


_ERROR_CLASSES: dict[str, type[KmsServiceError]] = {
    cls.__name__: cls
    for cls in (
        NotFoundException,
        DisabledException,
        InvalidCiphertextException,
        KeyUnavailableException,
        IncorrectKeyException,
        DependencyTimeoutException,
        InvalidKeyUsageException,
        InvalidGrantTokenException,
        KMSInternalException,
        KMSInvalidStateException,
        DryRunOperationException,
        AccessDeniedException,
        ThrottlingException,
        ValidationException,
        UnrecognizedClientException,
        InvalidSignatureException,
        IncompleteSignature,
        ExpiredTokenException,
    )
}


def error_class_for_code(code: str) -> type[KmsServiceError]:
    """Return the exception class for a KMS error code.

    Args:
        code: The error code as the service sent it; a ``namespace#``
            prefix is ignored.

    Returns:
        The class named exactly as the code, or ``KmsServiceError`` for a
        code this library does not know.
    """
    return _ERROR_CLASSES.get(code.rpartition("#")[2], KmsServiceError)


_CONNECTION_ERRORS = (
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
    HTTPClientError,
)
_PARAMETER_IN_REPORT = re.compile(r"parameter(?: in input)?:? \"?([\w.\[\]]+)")


def translate_botocore_error(
    error: Exception,
    *,
    operation: str,
    key_id: str | None = None,
    endpoint_url: str | None = None,
) -> KmsReEncryptError:
    """Translate one botocore error into this library's exception.

    The caller raises the result ``from`` the original error.

    Args:
        error: A ``ClientError`` or another ``BotoCoreError``.
        operation: The KMS operation that failed.
        key_id: The key identifier the request named, for context.
        endpoint_url: The endpoint the client talks to, for context.

    Returns:
        The typed exception to raise.

    Raises:
        TypeError: ``error`` is not a botocore error.
    """
    if isinstance(error, ClientError):
        response: dict[str, Any] = dict(error.response or {})
        details = response.get("Error") or {}
        metadata = response.get("ResponseMetadata") or {}
        code = str(details.get("Code") or "Unknown")
        cls = error_class_for_code(code)
        return cls(
            str(details.get("Message") or ""),
            code=code.rpartition("#")[2],
            operation=operation,
            request_id=metadata.get("RequestId"),
            http_status=metadata.get("HTTPStatusCode"),
            retry_attempts=int(metadata.get("RetryAttempts") or 0),
            key_id=key_id,
        )
    if isinstance(error, ParamValidationError):
        # Only reachable when our own validation misses a rule botocore
        # knows; keep the promise that nothing was sent.
        report = str(error.kwargs.get("report", ""))
        found = _PARAMETER_IN_REPORT.search(report)
        return RequestValidationError(
            f"botocore refused the request: {report.strip()}",
            parameter=found.group(1) if found else "request",
        )
    if isinstance(error, _CONNECTION_ERRORS):
        where = endpoint_url or "the KMS endpoint"
        return KmsConnectionError(
            f"{operation} could not reach {where} ({type(error).__name__}); "
            "check the endpoint URL, the Region and the network.",
            operation=operation,
            endpoint_url=endpoint_url,
        )
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return ConfigurationError(
            "botocore found no usable AWS credentials: configure a profile, "
            "environment variables or an instance role, or pass a session.",
            option="credentials",
        )
    if isinstance(error, NoRegionError):
        return ConfigurationError(
            "no AWS Region is configured: pass region_name= or set "
            "AWS_DEFAULT_REGION (botocore does not read AWS_REGION).",
            option="region_name",
        )
    if isinstance(error, ProfileNotFound):
        return ConfigurationError(
            f"the AWS profile {error.kwargs.get('profile')!r} does not exist "
            "in the AWS config files.",
            option="profile_name",
        )
    if isinstance(error, BotoCoreError):
        return KmsConnectionError(
            f"{operation} failed inside botocore: {type(error).__name__}",
            operation=operation,
            endpoint_url=endpoint_url,
        )
    raise TypeError(f"not a botocore error: {type(error).__name__}")
