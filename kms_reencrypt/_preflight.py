"""The optional DescribeKey pre-flight: look both keys up before
ReEncrypt and refuse what the keys themselves make impossible.

``build_request`` judges a request on its own; only the keys know their
usage, state, spec and algorithms (../shared/spec.md, 1.5 and 3.3-3.5).
``KeyPreflight`` asks DescribeKey once per key identifier and keeps the
answer for a time-to-live, so that a bulk rotation costs one lookup per
key and not one per item.

A field the answer leaves out (an emulator may) is unknown, and an
unknown field never refuses anything. A caller without kms:DescribeKey
may still hold the ReEncrypt permissions, so AccessDenied on DescribeKey
skips the pre-flight for that key instead of failing the call.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from botocore.exceptions import BotoCoreError, ClientError

from ._exceptions import (
    AwsManagedKeyError,
    KeyPreflightError,
    KmsServiceError,
    translate_botocore_error,
)

__all__ = [
    "DEFAULT_PREFLIGHT_TTL",
    "KeyFacts",
    "KeyPreflight",
    "PlaintextLimitWarning",
    "plaintext_limit",
]

log = logging.getLogger(__name__)

#: Seconds a DescribeKey answer is trusted before it is asked again.
DEFAULT_PREFLIGHT_TTL = 300.0

_USABLE_STATES = frozenset(("Enabled", "Updating"))
_STATE_FIXES = {
    "Disabled": "enable it with EnableKey",
    "PendingDeletion": (
        "cancel the deletion with CancelKeyDeletion, then EnableKey"
    ),
    "PendingReplicaDeletion": "it is being deleted; use another key",
    "PendingImport": "import its key material first",
    "Unavailable": "reconnect its custom key store",
    "Creating": "wait until the multi-Region replica is created",
}
_SYMMETRIC = "SYMMETRIC_DEFAULT"
_OAEP_HASH_BYTES = {"RSAES_OAEP_SHA_1": 20, "RSAES_OAEP_SHA_256": 32}
_RSA_KEY_BYTES = {"RSA_2048": 256, "RSA_3072": 384, "RSA_4096": 512}
_MAX_WARNED_PAIRS = 1024


class PlaintextLimitWarning(UserWarning):
    """The destination key holds less plaintext than the source can.

    Emitted by the pre-flight when re-encrypting under an RSA key whose
    plaintext limit is smaller than the source's: ciphertexts of longer
    plaintexts will fail at KMS. Silence it with the ``warnings`` filters.
    """


def plaintext_limit(key_spec: str | None, algorithm: str) -> int | None:
    """Return how many plaintext bytes a key spec and algorithm take.

    Args:
        key_spec: A ``KeySpec`` value; None when unknown.
        algorithm: An ``EncryptionAlgorithmSpec`` value.

    Returns:
        The limit in bytes (spec 3.5), or None when it is not known.
    """
    if algorithm == _SYMMETRIC:
        return 4096 if key_spec in (None, _SYMMETRIC) else None
    if algorithm == "SM2PKE":
        return 1024 if key_spec in (None, "SM2") else None
    key_bytes = _RSA_KEY_BYTES.get(key_spec or "")
    hash_bytes = _OAEP_HASH_BYTES.get(algorithm)
    if key_bytes is None or hash_bytes is None:
        return None

    return key_bytes - 2 * hash_bytes - 2


@attrs.frozen(kw_only=True)
class KeyFacts:
    """What DescribeKey said about a key; None where it said nothing.

    Attributes:
        key_id: The key ID.
        arn: The key ARN.
        key_spec: The ``KeySpec``.
        key_usage: The ``KeyUsage``.
        key_state: The ``KeyState``.
        enabled: The ``Enabled`` flag.
        encryption_algorithms: The allowed ``EncryptionAlgorithms``.
        key_manager: ``AWS`` or ``CUSTOMER``.
    """

    key_id: str | None = None
    arn: str | None = None
    key_spec: str | None = None
    key_usage: str | None = None
    key_state: str | None = None
    enabled: bool | None = None
    encryption_algorithms: frozenset[str] | None = None
    key_manager: str | None = None

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> KeyFacts:
        """Read the fields that matter from DescribeKey's ``KeyMetadata``.

        Args:
            metadata: The ``KeyMetadata`` member of the answer.

        Returns:
            The facts; a missing or mistyped field is None.
        """
        algorithms = metadata.get("EncryptionAlgorithms")
        enabled = metadata.get("Enabled")

        return cls(
            key_id=_text(metadata.get("KeyId")),
            arn=_text(metadata.get("Arn")),
            key_spec=_text(
                metadata.get("KeySpec")
                or metadata.get("CustomerMasterKeySpec")
            ),
            key_usage=_text(metadata.get("KeyUsage")),
            key_state=_text(metadata.get("KeyState")),
            enabled=enabled if isinstance(enabled, bool) else None,
            encryption_algorithms=(
                frozenset(str(a) for a in algorithms)
                if isinstance(algorithms, list | tuple)
                else None
            ),
            key_manager=_text(metadata.get("KeyManager")),
        )

    @property
    def is_symmetric(self) -> bool | None:
        """True for a symmetric encryption key, False for any other spec,
        None when the answer did not say."""
        if self.key_spec is not None:
            return self.key_spec == _SYMMETRIC
        if self.encryption_algorithms is not None:
            return _SYMMETRIC in self.encryption_algorithms
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class KeyPreflight:
    """DescribeKey look-ups with a time-to-live cache, and the checks
    made from them. Safe to share between threads.

    Args:
        kms_client: The botocore KMS client to ask.
        ttl: Seconds an answer is kept; 0 asks every time.
        clock: A monotonic clock, injectable for tests.
    """

    def __init__(
        self,
        kms_client: Any,
        *,
        ttl: float = DEFAULT_PREFLIGHT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kms = kms_client
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, KeyFacts | None]] = {}
        self._warned: set[tuple[str, str, str]] = set()

    @property
    def ttl(self) -> float:
        """Seconds an answer is kept."""
        return self._ttl

    def clear(self) -> None:
        """Forget every cached answer."""
        with self._lock:
            self._cache.clear()
            self._warned.clear()

    def lookup(
        self, key_id: str, *, grant_tokens: Sequence[str] | None = None
    ) -> KeyFacts | None:
        """Return what DescribeKey says about a key, from the cache when
        the answer is fresh.

        Args:
            key_id: The identifier exactly as the request names it.
            grant_tokens: The request's grant tokens, passed along.

        Returns:
            The facts, or None when the pre-flight cannot see the key
            (AccessDenied on DescribeKey, or a transient failure).

        Raises:
            NotFoundException: The key does not exist.
            KmsServiceError: Another non-transient DescribeKey error.
            KmsConnectionError: The endpoint could not be reached.
        """
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]

        facts, keep = self._describe(key_id, grant_tokens)
        if keep and self._ttl > 0:
            with self._lock:
                self._cache[key_id] = (now + self._ttl, facts)

        return facts

    def _describe(
        self, key_id: str, grant_tokens: Sequence[str] | None
    ) -> tuple[KeyFacts | None, bool]:
        # Returns the facts and whether the outcome may be cached.
        kwargs: dict[str, Any] = {"KeyId": key_id}
        if grant_tokens:
            kwargs["GrantTokens"] = list(grant_tokens)
        try:
            response = self._kms.describe_key(**kwargs)
        except ClientError as error:
            translated = translate_botocore_error(
                error, operation="DescribeKey", key_id=key_id
            )
            if not isinstance(translated, KmsServiceError):
                raise translated from error
            if translated.code == "AccessDeniedException":
                log.warning(
                    "pre-flight skipped for %s: no kms:DescribeKey "
                    "permission (request id %s)",
                    key_id,
                    translated.request_id,
                )
                return None, True
            if translated.retryable:
                log.warning(
                    "pre-flight skipped for %s this time: DescribeKey "
                    "answered %s",
                    key_id,
                    translated.code,
                )
                return None, False
            raise translated from error
        except BotoCoreError as error:
            raise translate_botocore_error(
                error, operation="DescribeKey", key_id=key_id
            ) from error

        metadata = response.get("KeyMetadata") or {}
        facts = KeyFacts.from_metadata(metadata)
        log.debug(
            "pre-flight DescribeKey %s: spec %s, usage %s, state %s",
            key_id,
            facts.key_spec,
            facts.key_usage,
            facts.key_state,
        )

        return facts, True

    def check(
        self,
        request: Mapping[str, Any],
        *,
        allow_aws_managed_key: bool = False,
        stacklevel: int = 2,
    ) -> None:
        """Look both keys up and refuse a request they cannot serve.

        Without ``SourceKeyId`` only the destination is looked up: the
        ciphertext is then symmetric (``build_request`` makes sure) and
        KMS finds its key in the blob.

        Args:
            request: A request ``build_request`` already accepted.
            allow_aws_managed_key: Let a destination with
                ``KeyManager == "AWS"`` through.
            stacklevel: Passed to ``warnings.warn``, counted from the
                caller of this method.

        Raises:
            KeyPreflightError: A key's usage, state, algorithms or spec
                cannot serve the request.
            AwsManagedKeyError: The destination is an AWS managed key.
            NotFoundException: A key does not exist.
        """
        tokens = request.get("GrantTokens")
        destination_id: str = request["DestinationKeyId"]
        source_id: str | None = request.get("SourceKeyId")

        destination = self.lookup(destination_id, grant_tokens=tokens)
        source = (
            None
            if source_id is None
            else self.lookup(source_id, grant_tokens=tokens)
        )

        if source is not None and source_id is not None:
            _check_key(source, source_id, "Source", request)
        if destination is not None:
            _check_key(destination, destination_id, "Destination", request)
            if destination.key_manager == "AWS" and not allow_aws_managed_key:
                raise AwsManagedKeyError(
                    f"DestinationKeyId {destination_id!r} is an AWS managed "
                    "key (DescribeKey says KeyManager AWS): only the AWS "
                    "service that owns it may encrypt with it. Use a "
                    "customer managed key, or pass "
                    "allow_aws_managed_key=True if this call is allowed.",
                    parameter="DestinationKeyId",
                )
            self._warn_plaintext_limit(
                source, destination, request, stacklevel + 1
            )

    def _warn_plaintext_limit(
        self,
        source: KeyFacts | None,
        destination: KeyFacts,
        request: Mapping[str, Any],
        stacklevel: int,
    ) -> None:
        destination_algorithm = request.get(
            "DestinationEncryptionAlgorithm", _SYMMETRIC
        )
        if destination_algorithm not in _OAEP_HASH_BYTES:
            return
        destination_limit = plaintext_limit(
            destination.key_spec, destination_algorithm
        )
        source_algorithm = request.get("SourceEncryptionAlgorithm", _SYMMETRIC)
        source_limit = plaintext_limit(
            None if source is None else source.key_spec, source_algorithm
        )
        if destination_limit is None or source_limit is None:
            return
        if source_limit <= destination_limit:
            return

        destination_id = request["DestinationKeyId"]
        message = (
            f"DestinationKeyId {destination_id!r} ({destination.key_spec}, "
            f"{destination_algorithm}) takes at most {destination_limit} "
            f"bytes of plaintext, but the source can hold up to "
            f"{source_limit}: re-encrypting a longer plaintext will fail."
        )
        warnings.warn(message, PlaintextLimitWarning, stacklevel=stacklevel)
        pair = (
            str(request.get("SourceKeyId")),
            destination_id,
            destination_algorithm,
        )
        with self._lock:
            if pair in self._warned:
                return
            if len(self._warned) >= _MAX_WARNED_PAIRS:
                self._warned.clear()
            self._warned.add(pair)
        log.warning(
            "destination %s (%s, %s) takes at most %d plaintext bytes; the "
            "source can hold up to %d",
            destination_id,
            destination.key_spec,
            destination_algorithm,
            destination_limit,
            source_limit,
        )


def _check_key(
    facts: KeyFacts,
    key_id: str,
    side: str,
    request: Mapping[str, Any],
) -> None:
    key_parameter = f"{side}KeyId"
    algorithm_parameter = f"{side}EncryptionAlgorithm"
    context_parameter = f"{side}EncryptionContext"
    named = f"{key_parameter} {key_id!r}"

    if facts.key_usage is not None and facts.key_usage != "ENCRYPT_DECRYPT":
        raise KeyPreflightError(
            f"{named} is a {facts.key_usage} key; ReEncrypt needs "
            "ENCRYPT_DECRYPT keys on both sides. Name a key created with "
            "KeyUsage ENCRYPT_DECRYPT.",
            parameter=key_parameter,
        )
    state = facts.key_state
    if state is None and facts.enabled is False:
        state = "Disabled"
    if state is not None and state not in _USABLE_STATES:
        fix = _STATE_FIXES.get(state, "use a key in the Enabled state")
        raise KeyPreflightError(
            f"{named} is in state {state}, which ReEncrypt refuses: {fix}.",
            parameter=key_parameter,
        )

    symmetric = facts.is_symmetric
    given = request.get(algorithm_parameter)
    algorithms = facts.encryption_algorithms
    if symmetric is False and given is None:
        allowed = ", ".join(sorted(algorithms or ())) or "see the key"
        spec = "" if facts.key_spec is None else f" {facts.key_spec}"
        raise KeyPreflightError(
            f"{named} is an asymmetric{spec} key: pass "
            f"{algorithm_parameter} ({allowed}).",
            parameter=algorithm_parameter,
        )
    algorithm = given or _SYMMETRIC
    if algorithms is not None and algorithms and algorithm not in algorithms:
        raise KeyPreflightError(
            f"{algorithm_parameter} {algorithm} does not fit {named}, whose "
            f"algorithms are {', '.join(sorted(algorithms))}.",
            parameter=algorithm_parameter,
        )
    if algorithms is None and symmetric is True and algorithm != _SYMMETRIC:
        raise KeyPreflightError(
            f"{algorithm_parameter} {algorithm} does not fit {named}, a "
            "symmetric key: use SYMMETRIC_DEFAULT or leave it out.",
            parameter=algorithm_parameter,
        )
    if symmetric is False and request.get(context_parameter):
        raise KeyPreflightError(
            f"{context_parameter} cannot be used with {named}: only "
            f"symmetric keys bind an encryption context, and this is a "
            f"{facts.key_spec or 'non-symmetric'} key. Drop "
            f"{context_parameter}.",
            parameter=context_parameter,
        )


def check_ttl(value: object) -> float:
    """Return a valid pre-flight time-to-live, or raise.

    Args:
        value: The ``preflight_ttl`` option.

    Returns:
        The seconds as a float.

    Raises:
        ValueError: Not a finite number of seconds, zero or more.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError("preflight_ttl must be a finite number >= 0")
    return float(value)
