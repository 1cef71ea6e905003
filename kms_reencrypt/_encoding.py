"""Explicit conversions between base64 text and ciphertext bytes."""

from __future__ import annotations

import base64
import binascii

from ._exceptions import CiphertextEncodingError

__all__ = ["ciphertext_from_base64", "ciphertext_to_base64"]


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
    """
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
    """
    return base64.b64encode(blob).decode("ascii")
