"""The errors the local KMS answers with, and their HTTP statuses."""

from __future__ import annotations

__all__ = ["KmsError", "http_status"]

# HTTP status per error code, from the "Errors" sections of the KMS API
# Reference pages (see docs/local-kms.md); the Smithy model disagrees for
# some codes (404 for NotFoundException, 409 for the state errors), and
# clients must map errors by code anyway.
_STATUS: dict[str, int] = {
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
        412 for a successful dry run, 500 for server faults and 400 for
        every client error.
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
