"""The typed ReEncrypt facade over a botocore KMS client."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias, overload

from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ._exceptions import (
    ConfigurationError,
    KMSInternalException,
    ParameterTypeError,
    translate_botocore_error,
)
from ._preflight import DEFAULT_PREFLIGHT_TTL, KeyPreflight, check_ttl
from ._session import create_kms_client
from ._types import (
    AlgorithmName,
    DryRunModifier,
    DryRunResult,
    EncryptionAlgorithm,
    ReEncryptResult,
)
from ._validation import build_request

__all__ = ["ClientLike", "ReEncryptClient", "client", "kms_re_encrypt"]

log = logging.getLogger(__name__)

Algorithm: TypeAlias = EncryptionAlgorithm | AlgorithmName
Modifier: TypeAlias = DryRunModifier | Literal["IGNORE_CIPHERTEXT"]


class ReEncryptClient:
    """ReEncrypt through a botocore (or boto3) KMS client, validated and
    typed.

    Every request is checked against the KMS contract before it is sent;
    a request that cannot succeed raises a ``RequestValidationError`` and
    nothing goes over the network. Service errors become the typed
    exceptions of ``kms_reencrypt.exceptions``.

    The client is safe to share between threads, as botocore clients are.

    Args:
        kms_client: A botocore or boto3 client for the ``kms`` service.
        allow_aws_managed_key: Let ``alias/aws/...`` destinations through
            instead of refusing them (KMS normally denies their direct
            use); ``re_encrypt`` can override it per call.
        preflight: Look both keys up with DescribeKey before each
            ReEncrypt and refuse what they cannot serve (usage, state,
            algorithm, context, AWS managed destination); costs a
            DescribeKey per key per ``preflight_ttl`` and needs
            kms:DescribeKey (without it the look-up is skipped).
            ``re_encrypt`` can override it per call.
        preflight_ttl: Seconds a DescribeKey answer is kept.

    Raises:
        ConfigurationError: ``kms_client`` is not a KMS client, or an
            option has a wrong value.
    """

    def __init__(
        self,
        kms_client: BaseClient,
        *,
        allow_aws_managed_key: bool = False,
        preflight: bool = False,
        preflight_ttl: float = DEFAULT_PREFLIGHT_TTL,
    ) -> None:
        meta = getattr(kms_client, "meta", None)
        model = getattr(meta, "service_model", None)
        if getattr(model, "service_name", None) != "kms":
            raise ConfigurationError(
                "ReEncryptClient wraps a botocore or boto3 client for the "
                "'kms' service, for example boto3.client('kms'); got "
                f"{type(kms_client).__name__}.",
                option="kms_client",
            )
        # Typed Any: botocore builds the operation methods at run time.
        self._kms: Any = kms_client
        self._region: str | None = meta.region_name  # type: ignore[union-attr]
        self._endpoint_url: str | None = meta.endpoint_url  # type: ignore[union-attr]
        self._allow_aws_managed_key = _flag(
            allow_aws_managed_key, "allow_aws_managed_key"
        )
        self._preflight = _flag(preflight, "preflight")
        try:
            ttl = check_ttl(preflight_ttl)
        except ValueError:
            raise ConfigurationError(
                "preflight_ttl must be a number of seconds, 0 or more, got "
                f"{preflight_ttl!r}.",
                option="preflight_ttl",
            ) from None
        self._preflight_cache = KeyPreflight(kms_client, ttl=ttl)

    def __repr__(self) -> str:
        return (
            f"ReEncryptClient(region_name={self._region!r}, "
            f"endpoint_url={self._endpoint_url!r})"
        )

    @property
    def kms_client(self) -> BaseClient:
        """The wrapped botocore KMS client."""
        kms: BaseClient = self._kms
        return kms

    @property
    def region_name(self) -> str | None:
        """The Region the wrapped client talks to."""
        return self._region

    @property
    def endpoint_url(self) -> str | None:
        """The endpoint the wrapped client talks to."""
        return self._endpoint_url

    @property
    def preflight(self) -> bool:
        """Whether ``re_encrypt`` looks the keys up with DescribeKey."""
        return self._preflight

    @property
    def allow_aws_managed_key(self) -> bool:
        """Whether ``alias/aws/...`` destinations are let through."""
        return self._allow_aws_managed_key

    @overload
    def re_encrypt(
        self,
        *,
        DestinationKeyId: str,
        CiphertextBlob: bytes | bytearray | memoryview | None = ...,
        SourceKeyId: str | None = ...,
        SourceEncryptionContext: Mapping[str, str] | None = ...,
        DestinationEncryptionContext: Mapping[str, str] | None = ...,
        SourceEncryptionAlgorithm: Algorithm | None = ...,
        DestinationEncryptionAlgorithm: Algorithm | None = ...,
        GrantTokens: Sequence[str] | None = ...,
        DryRun: Literal[False] | None = ...,
        DryRunModifiers: None = ...,
        preflight: bool | None = ...,
        allow_aws_managed_key: bool | None = ...,
    ) -> ReEncryptResult: ...

    @overload
    def re_encrypt(
        self,
        *,
        DestinationKeyId: str,
        CiphertextBlob: bytes | bytearray | memoryview | None = ...,
        SourceKeyId: str | None = ...,
        SourceEncryptionContext: Mapping[str, str] | None = ...,
        DestinationEncryptionContext: Mapping[str, str] | None = ...,
        SourceEncryptionAlgorithm: Algorithm | None = ...,
        DestinationEncryptionAlgorithm: Algorithm | None = ...,
        GrantTokens: Sequence[str] | None = ...,
        DryRun: Literal[True],
        DryRunModifiers: Sequence[Modifier] | None = ...,
        preflight: bool | None = ...,
        allow_aws_managed_key: bool | None = ...,
    ) -> DryRunResult: ...

    @overload
    def re_encrypt(
        self,
        *,
        DestinationKeyId: str,
        CiphertextBlob: bytes | bytearray | memoryview | None = ...,
        SourceKeyId: str | None = ...,
        SourceEncryptionContext: Mapping[str, str] | None = ...,
        DestinationEncryptionContext: Mapping[str, str] | None = ...,
        SourceEncryptionAlgorithm: Algorithm | None = ...,
        DestinationEncryptionAlgorithm: Algorithm | None = ...,
        GrantTokens: Sequence[str] | None = ...,
        DryRun: bool | None = ...,
        DryRunModifiers: Sequence[Modifier] | None = ...,
        preflight: bool | None = ...,
        allow_aws_managed_key: bool | None = ...,
    ) -> ReEncryptResult | DryRunResult: ...

    def re_encrypt(
        self,
        *,
        DestinationKeyId: str,
        CiphertextBlob: bytes | bytearray | memoryview | None = None,
        SourceKeyId: str | None = None,
        SourceEncryptionContext: Mapping[str, str] | None = None,
        DestinationEncryptionContext: Mapping[str, str] | None = None,
        SourceEncryptionAlgorithm: Algorithm | None = None,
        DestinationEncryptionAlgorithm: Algorithm | None = None,
        GrantTokens: Sequence[str] | None = None,
        DryRun: bool | None = None,
        DryRunModifiers: Sequence[Modifier] | None = None,
        preflight: bool | None = None,
        allow_aws_managed_key: bool | None = None,
    ) -> ReEncryptResult | DryRunResult:
        """Re-encrypt a ciphertext under another KMS key, inside KMS.

        The parameters are the members of the KMS ``ReEncrypt`` request,
        named as in boto3; a member left as None is not sent.

        Args:
            DestinationKeyId: The key to re-encrypt under: key ID, key
                ARN, alias name or alias ARN.
            CiphertextBlob: The ciphertext, raw bytes (not base64).
            SourceKeyId: The key that encrypted the ciphertext; required
                for asymmetric ciphertext, recommended always.
            SourceEncryptionContext: The context the ciphertext was bound
                to; must match exactly.
            DestinationEncryptionContext: The context to bind the new
                ciphertext to (symmetric destinations only).
            SourceEncryptionAlgorithm: How the ciphertext was encrypted;
                required for asymmetric ciphertext.
            DestinationEncryptionAlgorithm: How to encrypt the new
                ciphertext; required for an asymmetric destination.
            GrantTokens: Up to 10 grant tokens.
            DryRun: Ask KMS whether the call would succeed, without
                doing it.
            DryRunModifiers: ``["IGNORE_CIPHERTEXT"]`` to check only
                permissions in a dry run.
            preflight: Look both keys up with DescribeKey first (True) or
                not (False); None uses the client's ``preflight`` option.
            allow_aws_managed_key: Let an AWS managed destination key
                through (True) or refuse it (False); None uses the
                client's option.

        Returns:
            A ``ReEncryptResult``; a ``DryRunResult`` for a dry run that
            KMS says would succeed.

        Raises:
            RequestValidationError: The request cannot succeed; nothing
                was sent. With the pre-flight, ``KeyPreflightError`` or
                ``AwsManagedKeyError`` when a key cannot serve it.
            KmsServiceError: KMS answered with an error (a subclass named
                as the error code); with the pre-flight, also a
                DescribeKey error such as ``NotFoundException``.
            KmsConnectionError: The endpoint could not be reached.
        """
        allow_managed = _per_call(
            allow_aws_managed_key,
            self._allow_aws_managed_key,
            "allow_aws_managed_key",
        )
        look_up_keys = _per_call(preflight, self._preflight, "preflight")
        request = build_request(
            CiphertextBlob=CiphertextBlob,
            DestinationKeyId=DestinationKeyId,
            SourceKeyId=SourceKeyId,
            SourceEncryptionContext=SourceEncryptionContext,
            DestinationEncryptionContext=DestinationEncryptionContext,
            SourceEncryptionAlgorithm=SourceEncryptionAlgorithm,
            DestinationEncryptionAlgorithm=DestinationEncryptionAlgorithm,
            GrantTokens=GrantTokens,
            DryRun=DryRun,
            DryRunModifiers=DryRunModifiers,
            region_name=self._region,
            allow_aws_managed_key=allow_managed,
        )
        return self._send_checked(
            request,
            allow_aws_managed_key=allow_managed,
            preflight=look_up_keys,
            stacklevel=4,
        )

    def _send_checked(
        self,
        request: dict[str, Any],
        *,
        allow_aws_managed_key: bool,
        preflight: bool,
        stacklevel: int,
    ) -> ReEncryptResult | DryRunResult:
        # The tail of re_encrypt, for a request build_request checked
        # with these options: the rotation engine checks each item before
        # it takes a rate slot, and must not check it a second time.
        if preflight:
            self._preflight_cache.check(
                request,
                allow_aws_managed_key=allow_aws_managed_key,
                stacklevel=stacklevel,
            )

        return self.send(request)

    def send(self, request: dict[str, Any]) -> ReEncryptResult | DryRunResult:
        """Send a request that ``build_request`` already checked.

        This is the single place where ReEncrypt goes over the network and
        where botocore's errors are translated; the rotation engine uses
        it to avoid checking an item twice.

        Args:
            request: Keyword arguments for botocore's ``re_encrypt``.

        Returns:
            As ``re_encrypt``.

        Raises:
            KmsServiceError: KMS answered with an error.
            KmsConnectionError: The endpoint could not be reached.
        """
        try:
            response = self._kms.re_encrypt(**request)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if request.get("DryRun") and code == "DryRunOperationException":
                return _dry_run_result(request, error)
            raise translate_botocore_error(
                error,
                operation="ReEncrypt",
                key_id=request["DestinationKeyId"],
            ) from error
        except BotoCoreError as error:
            raise translate_botocore_error(
                error,
                operation="ReEncrypt",
                key_id=request["DestinationKeyId"],
                endpoint_url=self._endpoint_url,
            ) from error

        if not response.get("CiphertextBlob"):
            # KMS never answers success without the new ciphertext; an
            # answer without one (cut off, or a server shutting down) must
            # not become an empty "rotated" ciphertext. Retryable.
            metadata = response.get("ResponseMetadata") or {}
            raise KMSInternalException(
                "KMS answered ReEncrypt without a CiphertextBlob; nothing "
                "was rotated. Retry the call.",
                request_id=metadata.get("RequestId"),
                http_status=metadata.get("HTTPStatusCode"),
                key_id=request["DestinationKeyId"],
            )

        return ReEncryptResult.from_response(response)


def _flag(value: object, option: str) -> bool:
    if type(value) is not bool:
        raise ConfigurationError(
            f"{option} must be True or False, got {type(value).__name__}.",
            option=option,
        )
    return value


def _per_call(value: object, default: bool, name: str) -> bool:
    if value is None:
        return default
    if type(value) is not bool:
        raise ParameterTypeError(
            f"{name} must be True, False or None (the client's setting), "
            f"got {type(value).__name__}.",
            parameter=name,
        )
    return value


def _dry_run_result(
    request: Mapping[str, Any], error: ClientError
) -> DryRunResult:
    metadata = error.response.get("ResponseMetadata", {})
    log.debug(
        "dry run of ReEncrypt to %s would succeed (request id %s)",
        request["DestinationKeyId"],
        metadata.get("RequestId"),
    )

    return DryRunResult(
        destination_key_id=request["DestinationKeyId"],
        source_key_id=request.get("SourceKeyId"),
        modifiers=tuple(request.get("DryRunModifiers", ())),
        message=str(error.response.get("Error", {}).get("Message", "")),
        request_id=metadata.get("RequestId"),
    )


ClientLike: TypeAlias = ReEncryptClient | BaseClient


def client(
    *,
    region_name: str | None = None,
    endpoint_url: str | None = None,
    profile_name: str | None = None,
    session: Any = None,
    config: Config | None = None,
) -> ReEncryptClient:
    """Create a ``ReEncryptClient`` the way boto3 users expect.

    Credentials, Region and retry settings come from botocore's standard
    chain (environment, AWS config files, instance role) unless given.

    botocore's client-side parameter validation is off in the client it
    builds: every ReEncrypt request is checked more strictly before it is
    sent, and checking twice would cost about 30 microseconds a call.
    Other operations called through ``kms_client`` are then checked only
    by KMS itself; pass ``Config(parameter_validation=True)`` to keep
    botocore's checks.

    Args:
        region_name: The AWS Region.
        endpoint_url: An endpoint to use instead of the Region's, for
            example a local KMS.
        profile_name: A profile from the AWS config files.
        session: A ``botocore.session.Session`` or ``boto3.Session`` to
            create the client from (not with ``profile_name``).
        config: A botocore ``Config`` (timeouts, retries, proxies).

    Returns:
        The facade over a new botocore KMS client.

    Raises:
        ConfigurationError: Conflicting options, an unknown profile, or no
            Region configured.
    """
    kms = create_kms_client(
        region_name=region_name,
        endpoint_url=endpoint_url,
        profile_name=profile_name,
        session=session,
        config=config,
    )

    return ReEncryptClient(kms)


def as_client(value: ClientLike | None) -> ReEncryptClient:
    """Return a ``ReEncryptClient`` for what a ``client=`` argument holds.

    Args:
        value: A ``ReEncryptClient``, a botocore or boto3 KMS client, or
            None for a client built from the standard AWS configuration.

    Returns:
        The facade.
    """
    if isinstance(value, ReEncryptClient):
        return value
    if value is None:
        return client()
    return ReEncryptClient(value)


@overload
def kms_re_encrypt(
    *,
    DestinationKeyId: str,
    CiphertextBlob: bytes | bytearray | memoryview | None = ...,
    SourceKeyId: str | None = ...,
    SourceEncryptionContext: Mapping[str, str] | None = ...,
    DestinationEncryptionContext: Mapping[str, str] | None = ...,
    SourceEncryptionAlgorithm: Algorithm | None = ...,
    DestinationEncryptionAlgorithm: Algorithm | None = ...,
    GrantTokens: Sequence[str] | None = ...,
    DryRun: Literal[False] | None = ...,
    DryRunModifiers: None = ...,
    preflight: bool | None = ...,
    allow_aws_managed_key: bool | None = ...,
    client: ClientLike | None = ...,
) -> ReEncryptResult: ...


@overload
def kms_re_encrypt(
    *,
    DestinationKeyId: str,
    CiphertextBlob: bytes | bytearray | memoryview | None = ...,
    SourceKeyId: str | None = ...,
    SourceEncryptionContext: Mapping[str, str] | None = ...,
    DestinationEncryptionContext: Mapping[str, str] | None = ...,
    SourceEncryptionAlgorithm: Algorithm | None = ...,
    DestinationEncryptionAlgorithm: Algorithm | None = ...,
    GrantTokens: Sequence[str] | None = ...,
    DryRun: Literal[True],
    DryRunModifiers: Sequence[Modifier] | None = ...,
    preflight: bool | None = ...,
    allow_aws_managed_key: bool | None = ...,
    client: ClientLike | None = ...,
) -> DryRunResult: ...


@overload
def kms_re_encrypt(
    *,
    DestinationKeyId: str,
    CiphertextBlob: bytes | bytearray | memoryview | None = ...,
    SourceKeyId: str | None = ...,
    SourceEncryptionContext: Mapping[str, str] | None = ...,
    DestinationEncryptionContext: Mapping[str, str] | None = ...,
    SourceEncryptionAlgorithm: Algorithm | None = ...,
    DestinationEncryptionAlgorithm: Algorithm | None = ...,
    GrantTokens: Sequence[str] | None = ...,
    DryRun: bool | None = ...,
    DryRunModifiers: Sequence[Modifier] | None = ...,
    preflight: bool | None = ...,
    allow_aws_managed_key: bool | None = ...,
    client: ClientLike | None = ...,
) -> ReEncryptResult | DryRunResult: ...


def kms_re_encrypt(
    *,
    DestinationKeyId: str,
    CiphertextBlob: bytes | bytearray | memoryview | None = None,
    SourceKeyId: str | None = None,
    SourceEncryptionContext: Mapping[str, str] | None = None,
    DestinationEncryptionContext: Mapping[str, str] | None = None,
    SourceEncryptionAlgorithm: Algorithm | None = None,
    DestinationEncryptionAlgorithm: Algorithm | None = None,
    GrantTokens: Sequence[str] | None = None,
    DryRun: bool | None = None,
    DryRunModifiers: Sequence[Modifier] | None = None,
    preflight: bool | None = None,
    allow_aws_managed_key: bool | None = None,
    client: ClientLike | None = None,
) -> ReEncryptResult | DryRunResult:
    """Re-encrypt one ciphertext; named like the paws operation.

    The request members are those of ``ReEncryptClient.re_encrypt``, named
    as in boto3; a member left as None is not sent.

    Args:
        DestinationKeyId: The key to re-encrypt under: key ID, key ARN,
            alias name or alias ARN.
        CiphertextBlob: The ciphertext, raw bytes (not base64).
        SourceKeyId: The key that encrypted the ciphertext; required for
            asymmetric ciphertext, recommended always.
        SourceEncryptionContext: The context the ciphertext was bound to;
            must match exactly.
        DestinationEncryptionContext: The context to bind the new
            ciphertext to (symmetric destinations only).
        SourceEncryptionAlgorithm: How the ciphertext was encrypted;
            required for asymmetric ciphertext.
        DestinationEncryptionAlgorithm: How to encrypt the new ciphertext;
            required for an asymmetric destination.
        GrantTokens: Up to 10 grant tokens.
        DryRun: Ask KMS whether the call would succeed, without doing it.
        DryRunModifiers: ``["IGNORE_CIPHERTEXT"]`` to check only
            permissions in a dry run.
        preflight: Look both keys up with DescribeKey first (True) or not
            (False); None uses the client's ``preflight`` option.
        allow_aws_managed_key: Let an AWS managed destination key through
            (True) or refuse it (False); None uses the client's option.
        client: A ``ReEncryptClient`` or a botocore/boto3 KMS client; when
            None, one is built from the standard AWS configuration on each
            call (pass a client when calling in a loop).

    Returns:
        A ``ReEncryptResult``; a ``DryRunResult`` for a dry run that KMS
        says would succeed.

    Raises:
        RequestValidationError: The request cannot succeed; nothing was
            sent.
        ConfigurationError: ``client`` is neither a ``ReEncryptClient``
            nor a KMS client; or, with ``client=None``, no client could
            be built from the AWS configuration (no Region, an unknown
            profile).
        KmsServiceError: KMS answered with an error.
        KmsConnectionError: The endpoint could not be reached.

    Nothing else is raised, whatever the arguments' types or values
    (tests/test_hostile.py).
    """
    if client is None:
        # Refuse a bad request before building a client from the AWS
        # configuration, so that its error names the parameter at fault
        # rather than a missing Region or profile. Region-dependent rules
        # run again once the client (and its Region) exists.
        build_request(
            CiphertextBlob=CiphertextBlob,
            DestinationKeyId=DestinationKeyId,
            SourceKeyId=SourceKeyId,
            SourceEncryptionContext=SourceEncryptionContext,
            DestinationEncryptionContext=DestinationEncryptionContext,
            SourceEncryptionAlgorithm=SourceEncryptionAlgorithm,
            DestinationEncryptionAlgorithm=DestinationEncryptionAlgorithm,
            GrantTokens=GrantTokens,
            DryRun=DryRun,
            DryRunModifiers=DryRunModifiers,
            allow_aws_managed_key=allow_aws_managed_key is True,
        )
    facade = as_client(client)

    return facade.re_encrypt(
        CiphertextBlob=CiphertextBlob,
        DestinationKeyId=DestinationKeyId,
        SourceKeyId=SourceKeyId,
        SourceEncryptionContext=SourceEncryptionContext,
        DestinationEncryptionContext=DestinationEncryptionContext,
        SourceEncryptionAlgorithm=SourceEncryptionAlgorithm,
        DestinationEncryptionAlgorithm=DestinationEncryptionAlgorithm,
        GrantTokens=GrantTokens,
        DryRun=DryRun,
        DryRunModifiers=DryRunModifiers,
        preflight=preflight,
        allow_aws_managed_key=allow_aws_managed_key,
    )
