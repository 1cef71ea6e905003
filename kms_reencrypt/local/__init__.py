"""An embedded KMS for tests and demos, strict like the real service.

It speaks the AWS JSON 1.1 protocol on 127.0.0.1 with real AES-256-GCM
and RSA-OAEP, so a botocore client pointed at it with ``endpoint_url``
works unchanged::

    from kms_reencrypt.local import LocalKms

    with LocalKms() as kms:
        key_id = kms.create_key()["KeyId"]
        client = kms.kms_client()

It needs the ``local`` extra (``cryptography``), which is imported only
when ``LocalKms`` is first used; see docs/local-kms.md for what it
reproduces and what it does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ._faults import Faults, LocalKmsStats

if _TYPE_CHECKING:
    from ._errors import KmsError
    from ._server import LocalKms

__all__ = ["Faults", "KmsError", "LocalKms", "LocalKmsStats"]


def __getattr__(name: str) -> _Any:
    # LocalKms pulls in cryptography: import it on first use only, so that
    # the command line can list ``local serve`` without it.
    if name == "LocalKms":
        from ._server import LocalKms

        return LocalKms
    if name == "KmsError":
        from ._errors import KmsError

        return KmsError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazily imported names too, for dir() and tab completion.
    return sorted(set(globals()) | set(__all__))
