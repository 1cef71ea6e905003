"""Enums and the frozen result objects of a ReEncrypt call."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

import attrs

__all__ = [
    "AlgorithmName",
    "DryRunModifier",
    "DryRunResult",
    "EncryptionAlgorithm",
    "ReEncryptResult",
]


class EncryptionAlgorithm(enum.StrEnum):
    """The values of KMS's ``EncryptionAlgorithmSpec``."""

    SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
    RSAES_OAEP_SHA_1 = "RSAES_OAEP_SHA_1"
    RSAES_OAEP_SHA_256 = "RSAES_OAEP_SHA_256"
    SM2PKE = "SM2PKE"

    @property
    def is_asymmetric(self) -> bool:
        """True for the algorithms of RSA and SM2 keys."""
        return self is not EncryptionAlgorithm.SYMMETRIC_DEFAULT


class DryRunModifier(enum.StrEnum):
    """The values of KMS's ``DryRunModifierType``."""

    IGNORE_CIPHERTEXT = "IGNORE_CIPHERTEXT"


#: The algorithm names as string literals, for callers that pass strings.
AlgorithmName: TypeAlias = Literal[
    "SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE"
]

_ALGORITHMS = {a.value: a for a in EncryptionAlgorithm}


def _algorithm(value: object) -> str | None:
    # A value this library does not know yet (a newer KMS) stays a str.
    if value is None:
        return None
    return _ALGORITHMS.get(str(value), str(value))


def _byte_count(blob: bytes) -> str:
    return f"<{len(blob)} bytes>"


@attrs.frozen(kw_only=True)
class ReEncryptResult:
    """What KMS returned for a ReEncrypt call.

    A member that the service left out is None. Known algorithm names are
    ``EncryptionAlgorithm`` members (which are also ``str``).

    Attributes:
        ciphertext_blob: The new ciphertext, raw bytes. Its repr shows
            only its length.
        key_id: The key ARN of the destination key.
        source_key_id: The key ARN of the key that had encrypted the data.
        source_encryption_algorithm: The algorithm used to decrypt.
        destination_encryption_algorithm: The algorithm used to encrypt.
        source_key_material_id: The source key material, for a symmetric
            source.
        destination_key_material_id: The destination key material, for a
            symmetric destination.
        request_id: The AWS request id of the call.
    """

    ciphertext_blob: bytes = attrs.field(repr=_byte_count)
    key_id: str | None = None
    source_key_id: str | None = None
    source_encryption_algorithm: str | None = attrs.field(
        default=None, converter=_algorithm
    )
    destination_encryption_algorithm: str | None = attrs.field(
        default=None, converter=_algorithm
    )
    source_key_material_id: str | None = None
    destination_key_material_id: str | None = None
    request_id: str | None = attrs.field(default=None, eq=False)

    @classmethod
    def from_response(cls, response: Mapping[str, Any]) -> ReEncryptResult:
        """Build a result from botocore's response dict.

        Args:
            response: What ``kms_client.re_encrypt`` returned.

        Returns:
            The typed result.
        """
        metadata = response.get("ResponseMetadata") or {}

        return cls(
            ciphertext_blob=bytes(response.get("CiphertextBlob") or b""),
            key_id=response.get("KeyId"),
            source_key_id=response.get("SourceKeyId"),
            source_encryption_algorithm=response.get(
                "SourceEncryptionAlgorithm"
            ),
            destination_encryption_algorithm=response.get(
                "DestinationEncryptionAlgorithm"
            ),
            source_key_material_id=response.get("SourceKeyMaterialId"),
            destination_key_material_id=response.get(
                "DestinationKeyMaterialId"
            ),
            request_id=metadata.get("RequestId"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the result shaped like boto3's response.

        Returns:
            The response members, named as in boto3, without
            ``ResponseMetadata``; members that are None are left out.
            ``CiphertextBlob`` holds the raw new ciphertext.
        """
        members = {
            "CiphertextBlob": self.ciphertext_blob,
            "SourceKeyId": self.source_key_id,
            "KeyId": self.key_id,
            "SourceEncryptionAlgorithm": _plain(
                self.source_encryption_algorithm
            ),
            "DestinationEncryptionAlgorithm": _plain(
                self.destination_encryption_algorithm
            ),
            "SourceKeyMaterialId": self.source_key_material_id,
            "DestinationKeyMaterialId": self.destination_key_material_id,
        }

        return {k: v for k, v in members.items() if v is not None}


def _plain(value: str | None) -> str | None:
    return None if value is None else str.__str__(value)


@attrs.frozen(kw_only=True)
class DryRunResult:
    """A dry run that KMS reported would have succeeded.

    KMS signals this with ``DryRunOperationException`` (HTTP 412); the
    facade turns that answer into this result instead of raising.

    Attributes:
        destination_key_id: The destination key, as given.
        source_key_id: The source key, as given (None when not given).
        modifiers: The dry-run modifiers that were sent.
        message: The service's message.
        request_id: The AWS request id of the call.
    """

    destination_key_id: str
    source_key_id: str | None = None
    modifiers: tuple[str, ...] = ()
    message: str = ""
    request_id: str | None = attrs.field(default=None, eq=False)

    @property
    def would_succeed(self) -> bool:
        """Always True: a failing dry run raises the real error instead."""
        return True

    def to_dict(self) -> dict[str, Any]:
        """Return the result as plain JSON-serializable data.

        Returns:
            ``DryRun`` and ``WouldSucceed`` (both True), the key ids, the
            modifiers sent and the service's message.
        """
        return {
            "DryRun": True,
            "WouldSucceed": True,
            "DestinationKeyId": self.destination_key_id,
            "SourceKeyId": self.source_key_id,
            "DryRunModifiers": list(self.modifiers),
            "Message": self.message,
        }
