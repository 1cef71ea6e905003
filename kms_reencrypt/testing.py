"""Pytest fixtures for code that uses kms_reencrypt, on the local KMS.

Installed as a pytest plugin (entry point ``kms_reencrypt``), so in any
project that installs ``kms_reencrypt[local]`` a test can ask for:

* ``local_kms``: a fresh ``kms_reencrypt.local.LocalKms`` on 127.0.0.1,
  stopped after the test;
* ``kms_reencrypt_client``: a ``ReEncryptClient`` talking to it.

Nothing heavy is imported until a fixture is used: pytest loads this
module in every session of every project that installs the package.
"""

from __future__ import annotations

from collections.abc import Iterator as _Iterator
from typing import TYPE_CHECKING as _TYPE_CHECKING

# Aliased so that the module's public names are only its fixtures.
import pytest as _pytest  # noqa: PT013

if _TYPE_CHECKING:
    from ._client import ReEncryptClient
    from .local import LocalKms

__all__ = ["kms_reencrypt_client", "local_kms"]


@_pytest.fixture
def local_kms() -> _Iterator[LocalKms]:
    """A local KMS with no keys, serving for the duration of one test.

    Yields:
        A started ``kms_reencrypt.local.LocalKms`` on 127.0.0.1 and a
        free port; it is stopped when the test ends.
    """
    from .local import LocalKms

    kms = LocalKms()
    kms.start()
    try:
        yield kms
    finally:
        kms.stop()


@_pytest.fixture
def kms_reencrypt_client(local_kms: LocalKms) -> ReEncryptClient:
    """A ``ReEncryptClient`` on the test's local KMS.

    Args:
        local_kms: The test's local KMS (the fixture above).

    Returns:
        A client with dummy credentials that reads none of the user's
        AWS configuration.
    """
    return local_kms.client()
