"""Checks a ReEncrypt request against the KMS contract before it is sent.

botocore checks types and minimum lengths only (../shared/spec.md,
section 2); everything else that the contract says cannot succeed is
refused here, with the member name and the fix. What passes is sent
exactly as given: identifiers are never rewritten. docs/validation.md
lists every rule.

Messages never quote ciphertext bytes, grant tokens or encryption context
values; they quote parameter names, context keys, lengths and counts.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from ._encoding import check_ciphertext_encoding
from ._exceptions import (
    AwsManagedKeyError,
    ConflictingParametersError,
    InvalidEnumValueError,
    InvalidKeyIdentifierError,
    MissingParameterError,
    ParameterLengthError,
    ParameterTypeError,
)
from ._keyid import KeyIdentifier, parse_key_id, partition_of_region
from ._types import DryRunModifier, EncryptionAlgorithm

__all__ = ["MAX_CIPHERTEXT_BYTES", "build_request"]

MAX_CIPHERTEXT_BYTES = 6144
MAX_KEY_ID_CHARS = 2048
MAX_GRANT_TOKENS = 10
MAX_GRANT_TOKEN_CHARS = 8192

_ALGORITHMS = frozenset(a.value for a in EncryptionAlgorithm)
_ASYMMETRIC = frozenset(
    a.value for a in EncryptionAlgorithm if a.is_asymmetric
)
_MODIFIERS = frozenset(m.value for m in DryRunModifier)
_CHINA_PARTITION = "aws-cn"
# Identifiers that passed every check, by text and client Region: a bulk
# rotation names the same few keys for every item. Dict operations are
# atomic, so threads may share it; a race costs only a repeated check.
_ACCEPTED: dict[tuple[str, str | None], KeyIdentifier] = {}
_MAX_ACCEPTED = 4096


def _type_name(value: object) -> str:
    return type(value).__name__


def _check_text(value: str, parameter: str) -> None:
    # botocore encodes strings as UTF-8; a lone surrogate would blow up
    # inside its serializer instead of here.
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ParameterTypeError(
                f"{parameter} contains characters that cannot be encoded as "
                "UTF-8 (a lone surrogate); pass valid Unicode text.",
                parameter=parameter,
            ) from None


def check_ciphertext(
    value: object, parameter: str = "CiphertextBlob"
) -> bytes:
    """Return the ciphertext as bytes, or raise if it cannot be one.

    Args:
        value: The ciphertext as given.
        parameter: The member name to report.

    Returns:
        The same bytes (a bytearray or memoryview is copied to bytes).

    Raises:
        ParameterTypeError: Not bytes-like (a ``str`` is refused, with a
            hint about base64).
        ParameterLengthError: Empty or over 6144 bytes.
    """
    if type(value) is bytes:
        blob = value
    elif isinstance(value, bytes | bytearray | memoryview):
        blob = bytes(value)
    elif isinstance(value, str):
        raise ParameterTypeError(
            f"{parameter} must be the raw ciphertext bytes, not str. If you "
            "hold base64 text (as the AWS CLI prints it), decode it first "
            "with base64.b64decode(text), or use "
            "kms_reencrypt.ciphertext_from_base64().",
            parameter=parameter,
        )
    else:
        raise ParameterTypeError(
            f"{parameter} must be bytes, got {_type_name(value)}.",
            parameter=parameter,
        )
    if not 1 <= len(blob) <= MAX_CIPHERTEXT_BYTES:
        raise ParameterLengthError(
            f"{parameter} must be 1 to {MAX_CIPHERTEXT_BYTES} bytes, got "
            f"{len(blob)}.",
            parameter=parameter,
        )
    return blob


def check_key_id(value: object, parameter: str) -> str:
    """Check the shape every key identifier shares: a str of 1 to 2048
    characters.

    Args:
        value: The identifier as given.
        parameter: The member name to report.

    Returns:
        The identifier, unchanged.

    Raises:
        ParameterTypeError: Not a str.
        ParameterLengthError: Empty or over 2048 characters.
    """
    if not isinstance(value, str):
        raise ParameterTypeError(
            f"{parameter} must be a str (key ID, key ARN, alias name or "
            f"alias ARN), got {_type_name(value)}.",
            parameter=parameter,
        )
    if not 1 <= len(value) <= MAX_KEY_ID_CHARS:
        raise ParameterLengthError(
            f"{parameter} must be 1 to {MAX_KEY_ID_CHARS} characters, got "
            f"{len(value)}.",
            parameter=parameter,
        )
    if not value.isascii():
        _check_text(value, parameter)
    return value


def check_key_identifier(
    value: object, parameter: str, *, region_name: str | None = None
) -> KeyIdentifier:
    """Check a key identifier completely: shape, form and Region.

    Args:
        value: The identifier as given.
        parameter: The member name to report.
        region_name: The client's Region; an ARN in another Region is
            refused. None skips that check.

    Returns:
        The parsed identifier; its text is ``value`` unchanged.

    Raises:
        ParameterTypeError: Not a str.
        ParameterLengthError: Empty or over 2048 characters.
        InvalidKeyIdentifierError: None of the five forms, or an ARN in
            another Region than the client's.
    """
    if type(value) is str:
        accepted = _ACCEPTED.get((value, region_name))
        if accepted is not None:
            return accepted
    text = check_key_id(value, parameter)
    key = parse_key_id(text, parameter=parameter)
    if (
        region_name is not None
        and key.region is not None
        and key.region != region_name
    ):
        raise InvalidKeyIdentifierError(
            f"{parameter} is an ARN in Region {key.region}, but this client "
            f"calls KMS in {region_name}. KMS keys are regional: use a "
            f"client for {key.region}, or name a key in {region_name} (a "
            "multi-Region key's replica there has the same mrk- key ID).",
            parameter=parameter,
        )
    if len(_ACCEPTED) >= _MAX_ACCEPTED:
        _ACCEPTED.clear()
    _ACCEPTED[text, region_name] = key

    return key


def check_context(value: object, parameter: str) -> dict[str, str]:
    """Check an encryption context: a mapping of str to str.

    Args:
        value: The context as given.
        parameter: The member name to report.

    Returns:
        A plain dict with the same pairs.

    Raises:
        ParameterTypeError: Not a mapping, or a key or value not a str.
    """
    if not isinstance(value, Mapping):
        raise ParameterTypeError(
            f"{parameter} must be a mapping of str to str, got "
            f"{_type_name(value)}.",
            parameter=parameter,
        )
    context: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise ParameterTypeError(
                f"{parameter} keys must be str, got a {_type_name(key)} key.",
                parameter=parameter,
            )
        if not isinstance(item, str):
            raise ParameterTypeError(
                f"{parameter}[{key!r}] must be a str, got "
                f"{_type_name(item)}; KMS compares context values as text.",
                parameter=parameter,
            )
        if not (key.isascii() and item.isascii()):
            _check_text(key, parameter)
            _check_text(item, parameter)
        context[key] = item
    return context


def check_algorithm(value: object, parameter: str) -> str:
    """Check an ``EncryptionAlgorithmSpec`` value.

    Args:
        value: An ``EncryptionAlgorithm`` or its exact string value.
        parameter: The member name to report.

    Returns:
        The plain string value.

    Raises:
        InvalidEnumValueError: Not one of the four values.
    """
    if isinstance(value, str) and value in _ALGORITHMS:
        return str.__str__(value)
    raise InvalidEnumValueError(
        _enum_message(parameter, value, sorted(_ALGORITHMS)),
        parameter=parameter,
    )


def _enum_message(parameter: str, value: object, allowed: list[str]) -> str:
    text = f"{parameter} must be one of {', '.join(allowed)}"
    if isinstance(value, str):
        close = difflib.get_close_matches(
            value.upper().replace("-", "_"), allowed, n=1, cutoff=0.6
        )
        text += f"; got {value[:64]!r}"
        if close:
            text += f" (did you mean {close[0]!r}?)"
    else:
        text += f"; got {_type_name(value)}"
    return text + "."


def _check_sequence(value: object, parameter: str) -> list[Any]:
    if isinstance(value, str | bytes) or not isinstance(
        value, Sequence | set | frozenset
    ):
        raise ParameterTypeError(
            f"{parameter} must be a list, got {_type_name(value)}.",
            parameter=parameter,
        )
    return list(value)


def check_grant_tokens(value: object) -> list[str]:
    """Check a ``GrantTokens`` list: at most 10 str of 1 to 8192 chars.

    Args:
        value: The tokens as given.

    Returns:
        The tokens as a list, unchanged.

    Raises:
        ParameterTypeError: Not a list of str.
        ParameterLengthError: Too many tokens, or a token out of range.
    """
    parameter = "GrantTokens"
    tokens = _check_sequence(value, parameter)
    if len(tokens) > MAX_GRANT_TOKENS:
        raise ParameterLengthError(
            f"GrantTokens takes at most {MAX_GRANT_TOKENS} tokens, got "
            f"{len(tokens)}.",
            parameter=parameter,
        )
    for index, token in enumerate(tokens):
        if not isinstance(token, str):
            raise ParameterTypeError(
                f"GrantTokens[{index}] must be a str, got "
                f"{_type_name(token)}.",
                parameter=parameter,
            )
        if not 1 <= len(token) <= MAX_GRANT_TOKEN_CHARS:
            raise ParameterLengthError(
                f"GrantTokens[{index}] must be 1 to {MAX_GRANT_TOKEN_CHARS} "
                f"characters, got {len(token)}.",
                parameter=parameter,
            )
        _check_text(token, parameter)
    return tokens


def check_modifiers(value: object) -> list[str]:
    """Check ``DryRunModifiers``: a list of ``DryRunModifierType`` values.

    Args:
        value: The modifiers as given.

    Returns:
        The modifiers as a list of plain strings.

    Raises:
        ParameterTypeError: Not a list.
        InvalidEnumValueError: A value that is not a modifier.
    """
    parameter = "DryRunModifiers"
    modifiers = _check_sequence(value, parameter)
    checked = []
    for item in modifiers:
        if not (isinstance(item, str) and item in _MODIFIERS):
            raise InvalidEnumValueError(
                _enum_message(parameter, item, sorted(_MODIFIERS)),
                parameter=parameter,
            )
        checked.append(str.__str__(item))
    return checked


def build_request(
    *,
    CiphertextBlob: object = None,
    DestinationKeyId: object = None,
    SourceKeyId: object = None,
    SourceEncryptionContext: object = None,
    DestinationEncryptionContext: object = None,
    SourceEncryptionAlgorithm: object = None,
    DestinationEncryptionAlgorithm: object = None,
    GrantTokens: object = None,
    DryRun: object = None,
    DryRunModifiers: object = None,
    region_name: str | None = None,
    allow_aws_managed_key: bool = False,
) -> dict[str, Any]:
    """Check every member and return the keyword arguments for botocore.

    Members left as None are omitted from the result, never sent. The
    other arguments are the request members, named as in the KMS API.

    Args:
        region_name: The Region of the client that will send the request;
            ARNs in other Regions are refused, and SM2PKE is allowed only
            in the China partition. None skips both checks (unless a key
            ARN shows the partition).
        allow_aws_managed_key: Let an ``alias/aws/...`` destination
            through instead of refusing it.

    Returns:
        The request, ready for ``kms_client.re_encrypt(**request)``.

    Raises:
        RequestValidationError: A subclass naming the member at fault.
    """
    request: dict[str, Any] = {}

    if DestinationKeyId is None:
        raise MissingParameterError(
            "DestinationKeyId is required: name the key to re-encrypt under "
            "(key ID, key ARN, alias name or alias ARN).",
            parameter="DestinationKeyId",
        )
    # The inline look-ups and tests below are the common valid case of
    # the check_* functions they guard, taken without a call: this
    # function runs once per ReEncrypt, and the facade's CPU cost over
    # raw botocore is budgeted (docs/performance.md).
    destination = (
        _ACCEPTED.get((DestinationKeyId, region_name))
        if type(DestinationKeyId) is str
        else None
    )
    if destination is None:
        destination = check_key_identifier(
            DestinationKeyId, "DestinationKeyId", region_name=region_name
        )
    request["DestinationKeyId"] = DestinationKeyId
    source = None
    if SourceKeyId is not None:
        if type(SourceKeyId) is str:
            source = _ACCEPTED.get((SourceKeyId, region_name))
        if source is None:
            source = check_key_identifier(
                SourceKeyId, "SourceKeyId", region_name=region_name
            )
        request["SourceKeyId"] = SourceKeyId
    if CiphertextBlob is not None:
        if (
            type(CiphertextBlob) is bytes
            and 0 < len(CiphertextBlob) <= MAX_CIPHERTEXT_BYTES
        ):
            request["CiphertextBlob"] = CiphertextBlob
        else:
            request["CiphertextBlob"] = check_ciphertext(CiphertextBlob)
    if SourceEncryptionContext is not None:
        request["SourceEncryptionContext"] = check_context(
            SourceEncryptionContext, "SourceEncryptionContext"
        )
    if DestinationEncryptionContext is not None:
        request["DestinationEncryptionContext"] = check_context(
            DestinationEncryptionContext, "DestinationEncryptionContext"
        )
    if SourceEncryptionAlgorithm is not None:
        request["SourceEncryptionAlgorithm"] = check_algorithm(
            SourceEncryptionAlgorithm, "SourceEncryptionAlgorithm"
        )
    if DestinationEncryptionAlgorithm is not None:
        request["DestinationEncryptionAlgorithm"] = check_algorithm(
            DestinationEncryptionAlgorithm, "DestinationEncryptionAlgorithm"
        )
    if GrantTokens is not None:
        request["GrantTokens"] = check_grant_tokens(GrantTokens)
    if DryRun is not None:
        if type(DryRun) is not bool:
            raise ParameterTypeError(
                f"DryRun must be True or False, got {_type_name(DryRun)}.",
                parameter="DryRun",
            )
        request["DryRun"] = DryRun
    if DryRunModifiers is not None:
        request["DryRunModifiers"] = check_modifiers(DryRunModifiers)

    if "DryRunModifiers" in request or "CiphertextBlob" not in request:
        _check_combinations(request)
    if (
        SourceEncryptionAlgorithm is not None
        or DestinationEncryptionAlgorithm is not None
    ):
        _check_algorithms(request, source, destination, region_name)
    if not allow_aws_managed_key and destination.is_aws_managed:
        refuse_aws_managed_destination(destination)
    blob = request.get("CiphertextBlob")
    if blob is not None:
        check_ciphertext_encoding(
            blob, source_algorithm=request.get("SourceEncryptionAlgorithm")
        )

    return request


def refuse_aws_managed_destination(destination: KeyIdentifier) -> NoReturn:
    """Refuse an AWS managed key (``alias/aws/...``) as the destination.

    Args:
        destination: The parsed destination key identifier.

    Raises:
        AwsManagedKeyError: Always.
    """
    raise AwsManagedKeyError(
        f"DestinationKeyId {destination.text!r} names an AWS managed "
        "key: only the AWS service that owns it may encrypt with it, "
        "so KMS would answer AccessDeniedException. Re-encrypt under a "
        "customer managed key, or pass allow_aws_managed_key=True if "
        "you know this call is allowed.",
        parameter="DestinationKeyId",
    )


def _check_algorithms(
    request: dict[str, Any],
    source: KeyIdentifier | None,
    destination: KeyIdentifier,
    region_name: str | None,
) -> None:
    source_algorithm = request.get("SourceEncryptionAlgorithm")
    destination_algorithm = request.get("DestinationEncryptionAlgorithm")
    if source_algorithm is None and destination_algorithm is None:
        return
    if source_algorithm in _ASYMMETRIC:
        if source is None:
            raise MissingParameterError(
                f"SourceEncryptionAlgorithm {source_algorithm} means an "
                "asymmetric ciphertext, which carries no key metadata: "
                "pass SourceKeyId, the RSA or SM2 key that encrypted it.",
                parameter="SourceKeyId",
            )
        _check_no_context(request, "SourceEncryptionContext", source_algorithm)
        if source_algorithm == "SM2PKE":
            _check_china(source, "SourceEncryptionAlgorithm", region_name)
    if destination_algorithm in _ASYMMETRIC:
        _check_no_context(
            request, "DestinationEncryptionContext", destination_algorithm
        )
        if destination_algorithm == "SM2PKE":
            _check_china(
                destination, "DestinationEncryptionAlgorithm", region_name
            )


def _check_no_context(
    request: dict[str, Any], parameter: str, algorithm: str
) -> None:
    # An empty mapping binds nothing, so it is let through.
    context = request.get(parameter)
    if context:
        side = parameter.removesuffix("EncryptionContext")
        raise ConflictingParametersError(
            f"{parameter} cannot be used with {side}EncryptionAlgorithm "
            f"{algorithm}: only symmetric keys bind an encryption context "
            f"(keys given: {', '.join(sorted(context)[:10])}). Drop "
            f"{parameter}, or use a symmetric key.",
            parameter=parameter,
        )


def _check_china(
    key: KeyIdentifier, parameter: str, region_name: str | None
) -> None:
    region_partition = (
        None if region_name is None else partition_of_region(region_name)
    )
    if _CHINA_PARTITION in (region_partition, key.partition):
        return
    if region_partition is None and key.partition is None:
        # Neither the client nor the key says where it is.
        return
    where = (
        f"this client's Region {region_name} is in partition "
        f"{region_partition}"
        if region_partition is not None
        else f"the key ARN is in partition {key.partition}"
    )
    raise InvalidEnumValueError(
        f"{parameter} SM2PKE exists only in the China Regions (partition "
        f"aws-cn), and {where}. Use RSAES_OAEP_SHA_256 with an RSA key, "
        "or a client for a China Region.",
        parameter=parameter,
    )


def _check_combinations(request: dict[str, Any]) -> None:
    dry_run = request.get("DryRun") is True
    modifiers: list[str] = request.get("DryRunModifiers") or []
    if modifiers and not dry_run:
        raise ConflictingParametersError(
            "DryRunModifiers only applies to a dry run: pass DryRun=True "
            "as well, or drop DryRunModifiers.",
            parameter="DryRunModifiers",
        )
    ignore_ciphertext = "IGNORE_CIPHERTEXT" in modifiers
    if "CiphertextBlob" not in request and not ignore_ciphertext:
        raise MissingParameterError(
            "CiphertextBlob is required (only a dry run with "
            "DryRunModifiers=['IGNORE_CIPHERTEXT'] may leave it out).",
            parameter="CiphertextBlob",
        )
    if ignore_ciphertext and "SourceKeyId" not in request:
        raise MissingParameterError(
            "A dry run with IGNORE_CIPHERTEXT checks permissions on the "
            "source key without reading a ciphertext, so SourceKeyId is "
            "required.",
            parameter="SourceKeyId",
        )
