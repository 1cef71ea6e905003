"""Ciphertext encodings: explicit base64 conversions, and the guardrails
that recognise blobs ReEncrypt cannot read.

``build_request`` calls ``check_ciphertext_encoding`` on every blob. It
refuses two mistakes that KMS would otherwise answer with a vague
``InvalidCiphertextException``: base64 text passed as bytes, and an AWS
Encryption SDK message. Both checks look at a few leading bytes first, so
a genuine KMS blob (which starts with 0x01 and a small version byte)
costs two byte comparisons.
"""

from __future__ import annotations

import base64
import binascii
import re

from ._exceptions import CiphertextEncodingError, ParameterTypeError

__all__ = [
    "check_ciphertext_encoding",
    "ciphertext_from_base64",
    "ciphertext_to_base64",
    "is_encryption_sdk_message",
    "looks_like_base64_ciphertext",
]

# The bytes that can start standard base64 text.
_BASE64_FIRST = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)
_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/]+={0,2}")
_LINE_BREAKS = re.compile(rb"\r?\n")
# Sizes of raw RSA-OAEP ciphertext: RSA_2048, RSA_3072, RSA_4096.
RSA_CIPHERTEXT_SIZES = frozenset((256, 384, 512))
# AWS Encryption SDK algorithm suite ids: message format 1 (after the
# version byte 0x01 and the type byte 0x80) and format 2 (after 0x02).
_ESDK_V1_SUITES = frozenset(
    (0x0014, 0x0046, 0x0078, 0x0114, 0x0146, 0x0178, 0x0214, 0x0346, 0x0378)
)
_ESDK_V2_SUITES = frozenset((0x0478, 0x0578))


def ciphertext_from_base64(
    text: str | bytes, *, parameter: str = "CiphertextBlob"
) -> bytes:
    """Decode a ciphertext given as base64 text (as the AWS CLI prints it).

    Surrounding whitespace, including a final newline, is ignored; any
    other character outside the base64 alphabet is refused.

    Args:
        text: The base64 text.
        parameter: The member name to report on failure.

    Returns:
        The raw ciphertext bytes.

    Raises:
        CiphertextEncodingError: The text is not valid base64.
        ParameterTypeError: ``text`` is neither str nor bytes.
    """
    if not isinstance(text, str | bytes | bytearray):
        raise ParameterTypeError(
            f"{parameter} as base64 must be str or bytes, got "
            f"{type(text).__name__}.",
            parameter=parameter,
        )
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise CiphertextEncodingError(
            f"{parameter} is not valid base64 text; pass the text exactly as "
            "KMS or the AWS CLI produced it.",
            parameter=parameter,
        ) from None


def ciphertext_to_base64(blob: bytes) -> str:
    """Encode ciphertext bytes as base64 text, the AWS CLI's form.

    Args:
        blob: The raw ciphertext.

    Returns:
        Standard base64 text without a newline.

    Raises:
        ParameterTypeError: ``blob`` is not bytes-like.
    """
    try:
        return base64.b64encode(blob).decode("ascii")
    except TypeError:
        raise ParameterTypeError(
            f"a ciphertext to encode must be bytes, got {type(blob).__name__}.",
            parameter="CiphertextBlob",
        ) from None


def _is_kms_shaped(blob: bytes) -> bool:
    # KMS symmetric ciphertext: 0x01, then two small version bytes and a
    # zero byte (0x01 0x02 0x02 0x00 on AWS and on the local KMS).
    return (
        len(blob) >= 4
        and blob[0] == 0x01
        and 0x01 <= blob[1] <= 0x03
        and 0x01 <= blob[2] <= 0x03
        and blob[3] == 0x00
    )


def is_encryption_sdk_message(blob: bytes) -> bool:
    """Tell whether bytes start like an AWS Encryption SDK message.

    Args:
        blob: The bytes to look at.

    Returns:
        True for a format 1 header (0x01 0x80 and a known algorithm suite)
        or a format 2 header (0x02 and suite 0x0478 or 0x0578).
    """
    if len(blob) < 3:
        return False
    first = blob[0]
    if first == 0x01:
        return (
            len(blob) >= 4
            and blob[1] == 0x80
            and (blob[2] << 8 | blob[3]) in _ESDK_V1_SUITES
        )
    if first == 0x02:
        return (blob[1] << 8 | blob[2]) in _ESDK_V2_SUITES
    return False


def looks_like_base64_ciphertext(blob: bytes) -> bool:
    """Tell whether bytes are base64 text of a KMS ciphertext or of an AWS
    Encryption SDK message.

    Args:
        blob: The bytes to look at.

    Returns:
        True when ``blob`` is entirely base64 text (line breaks allowed,
        at the end or wrapping lines) that decodes to something shaped
        like a KMS ciphertext or Encryption SDK message.
    """
    if not blob or blob[0] not in _BASE64_FIRST:
        return False
    text = _LINE_BREAKS.sub(b"", blob) if b"\n" in blob else blob
    if len(text) % 4 or not _BASE64_TEXT.fullmatch(text):
        return False
    decoded = base64.b64decode(text)

    return _is_kms_shaped(decoded) or is_encryption_sdk_message(decoded)


def check_ciphertext_encoding(
    blob: bytes,
    *,
    source_algorithm: str | None = None,
    parameter: str = "CiphertextBlob",
) -> None:
    """Refuse a ciphertext that ReEncrypt cannot read because of how it
    is encoded.

    Raw RSA ciphertext (256, 384 or 512 bytes with an RSA source
    algorithm) is random-looking and is never refused here.

    Args:
        blob: The ciphertext bytes.
        source_algorithm: The ``SourceEncryptionAlgorithm`` of the
            request, when given.
        parameter: The member name to report.

    Raises:
        CiphertextEncodingError: ``blob`` is base64 text of a ciphertext,
            or an AWS Encryption SDK message.
    """
    first = blob[0]
    if first == 0x01 and blob[1:2] != b"\x80":
        return
    if (
        source_algorithm is not None
        and source_algorithm.startswith("RSAES_")
        and len(blob) in RSA_CIPHERTEXT_SIZES
    ):
        return
    if first in _BASE64_FIRST and looks_like_base64_ciphertext(blob):
        raise CiphertextEncodingError(
            f"{parameter} holds base64 text ({len(blob)} bytes), not the raw "
            "ciphertext. Decode it first with base64.b64decode(blob), or "
            "with kms_reencrypt.ciphertext_from_base64(); KMS would refuse "
            "it as InvalidCiphertextException.",
            parameter=parameter,
        )
    if is_encryption_sdk_message(blob):
        raise CiphertextEncodingError(
            f"{parameter} is an AWS Encryption SDK message, not a KMS "
            "ciphertext: ReEncrypt cannot read that format. Decrypt it "
            "with the AWS Encryption SDK and encrypt it again with a "
            "keyring for the new key.",
            parameter=parameter,
        )
