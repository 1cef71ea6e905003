"""The errors the local KMS answers with, and their HTTP statuses."""

from __future__ import annotations

__all__ = ["KmsError", "http_status"]

# HTTP status per error code, as the "Errors" sections of the KMS API
# Reference pages give them (see docs/local-kms.md): 409 for the two key
# state errors, 412 for a dry run, 500 for server faults, 400 for every
# other client error. The Smithy model says 404 for NotFoundException;
# the reference pages, and AWS's answers, say 400. Clients must map
# errors by code anyway.
_STATUS: dict[str, int] = {
    "DisabledException": 409,
    "KMSInvalidStateException": 409,
    "DryRunOperationException": 412,
    "KMSInternalException": 500,
    "KeyUnavailableException": 500,
    "DependencyTimeoutException": 500,
}


def http_status(code: str) -> int:
    """Return the HTTP status the local KMS sends with an error code.

    Args:
        code: The error code, as in ``__type``.

    Returns:
        409 for the key state errors, 412 for a successful dry run, 500
        for server faults and 400 for every other client error.
    """
    return _STATUS.get(code, 400)


class KmsError(Exception):
    """An error answer: raised by an operation, sent by the server.

    Args:
        code: The error code sent as ``__type``.
        message: The message sent as ``message``; never secret material.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        """The HTTP status of this error."""
        return http_status(self.code)
