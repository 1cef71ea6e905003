"""Re-encrypt AWS KMS ciphertext under another KMS key, inside KMS.

A typed, validated facade over botocore's ``ReEncrypt``::

    import kms_reencrypt

    kms = kms_reencrypt.client(region_name="eu-west-1")
    result = kms.re_encrypt(
        CiphertextBlob=blob,
        SourceKeyId="alias/old",
        DestinationKeyId="alias/new",
    )
"""

import logging as _logging
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ._client import ReEncryptClient, client, kms_re_encrypt
from ._encoding import ciphertext_from_base64, ciphertext_to_base64
from ._exceptions import (
    AccessDeniedException,
    AwsManagedKeyError,
    CiphertextEncodingError,
    ConfigurationError,
    ConflictingParametersError,
    DependencyTimeoutException,
    DisabledException,
    DryRunOperationException,
    ExpiredTokenException,
    IncompleteSignature,
    IncorrectKeyException,
    InvalidCiphertextException,
    InvalidEnumValueError,
    InvalidGrantTokenException,
    InvalidKeyIdentifierError,
    InvalidKeyUsageException,
    InvalidSignatureException,
    KeyPreflightError,
    KeyUnavailableException,
    KmsConnectionError,
    KMSInternalException,
    KMSInvalidStateException,
    KmsReEncryptError,
    KmsServiceError,
    MissingParameterError,
    NotFoundException,
    ParameterLengthError,
    ParameterTypeError,
    RequestValidationError,
    RotationStoppedError,
    ThrottlingException,
    UnrecognizedClientException,
    ValidationException,
    WriteBackError,
)
from ._keyid import KeyIdentifier, KeyIdForm, parse_key_id
from ._preflight import PlaintextLimitWarning
from ._types import (
    DryRunModifier,
    DryRunResult,
    EncryptionAlgorithm,
    ReEncryptResult,
)
from ._version import __version__

_logging.getLogger(__name__).addHandler(_logging.NullHandler())

if _TYPE_CHECKING:
    from ._rotate import (
        ClientSettings,
        Rotation,
        RotationConfig,
        RotationItem,
        RotationOutcome,
        RotationReport,
        RotationStatus,
        rotate,
        rotate_iter,
    )

# The rotation engine (sqlite3, multiprocessing, threads) is imported on
# first use, so that `import kms_reencrypt` costs little more than
# botocore for callers who only re-encrypt single ciphertexts.
_LAZY = frozenset(
    (
        "ClientSettings",
        "Rotation",
        "RotationConfig",
        "RotationItem",
        "RotationOutcome",
        "RotationReport",
        "RotationStatus",
        "rotate",
        "rotate_iter",
    )
)


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        from . import _rotate

        value = getattr(_rotate, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)


__all__ = [
    "AccessDeniedException",
    "AwsManagedKeyError",
    "CiphertextEncodingError",
    "ClientSettings",
    "ConfigurationError",
    "ConflictingParametersError",
    "DependencyTimeoutException",
    "DisabledException",
    "DryRunModifier",
    "DryRunOperationException",
    "DryRunResult",
    "EncryptionAlgorithm",
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
    "KeyIdForm",
    "KeyIdentifier",
    "KeyPreflightError",
    "KeyUnavailableException",
    "KmsConnectionError",
    "KmsReEncryptError",
    "KmsServiceError",
    "MissingParameterError",
    "NotFoundException",
    "ParameterLengthError",
    "ParameterTypeError",
    "PlaintextLimitWarning",
    "ReEncryptClient",
    "ReEncryptResult",
    "RequestValidationError",
    "Rotation",
    "RotationConfig",
    "RotationItem",
    "RotationOutcome",
    "RotationReport",
    "RotationStatus",
    "RotationStoppedError",
    "ThrottlingException",
    "UnrecognizedClientException",
    "ValidationException",
    "WriteBackError",
    "__version__",
    "ciphertext_from_base64",
    "ciphertext_to_base64",
    "client",
    "kms_re_encrypt",
    "parse_key_id",
    "rotate",
    "rotate_iter",
]
