"""build_request: every rule, with a valid and an invalid case side by
side, and what each refusal says."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest

from kms_reencrypt import (
    AwsManagedKeyError,
    CiphertextEncodingError,
    ConflictingParametersError,
    DryRunModifier,
    EncryptionAlgorithm,
    InvalidEnumValueError,
    InvalidKeyIdentifierError,
    MissingParameterError,
    ParameterLengthError,
    ParameterTypeError,
    RequestValidationError,
)
from kms_reencrypt._validation import build_request

KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"
ACCOUNT = "111122223333"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY}"
CN_KEY_ARN = f"arn:aws-cn:kms:cn-north-1:{ACCOUNT}:key/{KEY}"
# Shaped like AWS KMS symmetric ciphertext: 0x01 0x02 0x02 0x00 ...
BLOB = b"\x01\x02\x02\x00" + bytes(range(100, 250))
LOCAL_BLOB = b"\x01\x02\x02\x00" + b"\x00" * 60
RSA_2048_BLOB = b"\x01\x80\x00\x78" + os.urandom(252)
RSA_4096_BLOB = b"\x02\x04\x78" + os.urandom(509)
SECRET = "s3cr3t-value-never-shown"
CTX = {"purpose": "test"}

BASE: dict[str, Any] = {
    "CiphertextBlob": BLOB,
    "DestinationKeyId": "alias/new-key",
}

OK = None


def _case(
    case_id: str,
    overrides: dict[str, Any],
    error: type[RequestValidationError] | None = OK,
    parameter: str | None = None,
    fragment: str | None = None,
    *,
    region: str | None = "us-east-1",
) -> Any:
    return pytest.param(
        overrides, error, parameter, fragment, region, id=case_id
    )


CASES = [
    # DestinationKeyId: required, str, 1-2048, one of the five forms.
    _case("dest/key-id", {"DestinationKeyId": KEY}),
    _case(
        "dest/missing",
        {"DestinationKeyId": None},
        MissingParameterError,
        "DestinationKeyId",
        "is required",
    ),
    _case("dest/key-arn", {"DestinationKeyId": KEY_ARN}),
    _case(
        "dest/int",
        {"DestinationKeyId": 42},
        ParameterTypeError,
        "DestinationKeyId",
        "must be a str",
    ),
    _case(
        "dest/empty",
        {"DestinationKeyId": ""},
        ParameterLengthError,
        "DestinationKeyId",
        "1 to 2048",
    ),
    _case(
        "dest/2049-chars",
        {"DestinationKeyId": "alias/" + "a" * 2043},
        ParameterLengthError,
        "DestinationKeyId",
        "got 2049",
    ),
    _case(
        "dest/malformed",
        {"DestinationKeyId": "aws/s3"},
        InvalidKeyIdentifierError,
        "DestinationKeyId",
        "Did you mean 'alias/aws/s3'",
    ),
    _case(
        "dest/lone-surrogate",
        {"DestinationKeyId": "alias/\ud800"},
        ParameterTypeError,
        "DestinationKeyId",
        "UTF-8",
    ),
    # SourceKeyId: optional, same shape.
    _case("source/alias", {"SourceKeyId": "alias/old"}),
    _case(
        "source/bytes",
        {"SourceKeyId": b"alias/old"},
        ParameterTypeError,
        "SourceKeyId",
        "must be a str",
    ),
    _case(
        "source/upper-case-key-id",
        {"SourceKeyId": KEY.upper()},
        InvalidKeyIdentifierError,
        "SourceKeyId",
        f"Did you mean {KEY!r}",
    ),
    # Symmetric ciphertext: SourceKeyId without an algorithm is fine.
    _case("symmetric/source-key-no-algorithm", {"SourceKeyId": KEY_ARN}),
    _case(
        "symmetric/explicit-default",
        {
            "SourceKeyId": KEY,
            "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
            "DestinationEncryptionAlgorithm": (
                EncryptionAlgorithm.SYMMETRIC_DEFAULT
            ),
            "SourceEncryptionContext": CTX,
            "DestinationEncryptionContext": CTX,
        },
    ),
    _case("symmetric/no-source-key", {"SourceEncryptionContext": CTX}),
    # Key ARNs in another Region than the client's.
    _case(
        "region/arn-same-region",
        {"SourceKeyId": KEY_ARN, "DestinationKeyId": KEY_ARN},
    ),
    _case(
        "region/arn-other-region",
        {"DestinationKeyId": KEY_ARN.replace("us-east-1", "eu-west-1")},
        InvalidKeyIdentifierError,
        "DestinationKeyId",
        "KMS keys are regional",
    ),
    _case(
        "region/alias-arn-other-region-source",
        {"SourceKeyId": f"arn:aws:kms:us-west-2:{ACCOUNT}:alias/old"},
        InvalidKeyIdentifierError,
        "SourceKeyId",
        "use a client for us-west-2",
    ),
    _case(
        "region/client-region-unknown",
        {"DestinationKeyId": KEY_ARN.replace("us-east-1", "eu-west-1")},
        region=None,
    ),
    # CiphertextBlob: bytes-like, 1-6144 bytes.
    _case("blob/bytearray", {"CiphertextBlob": bytearray(BLOB)}),
    _case("blob/memoryview", {"CiphertextBlob": memoryview(BLOB)}),
    _case("blob/local-kms-shape", {"CiphertextBlob": LOCAL_BLOB}),
    _case("blob/6144-bytes", {"CiphertextBlob": BLOB[:4] + b"\xff" * 6140}),
    _case(
        "blob/str",
        {"CiphertextBlob": base64.b64encode(BLOB).decode()},
        ParameterTypeError,
        "CiphertextBlob",
        "base64.b64decode",
    ),
    _case(
        "blob/int",
        {"CiphertextBlob": 7},
        ParameterTypeError,
        "CiphertextBlob",
        "must be bytes, got int",
    ),
    _case(
        "blob/empty",
        {"CiphertextBlob": b""},
        ParameterLengthError,
        "CiphertextBlob",
        "got 0",
    ),
    _case(
        "blob/6145-bytes",
        {"CiphertextBlob": BLOB[:4] + b"\xff" * 6141},
        ParameterLengthError,
        "CiphertextBlob",
        "1 to 6144",
    ),
    # CiphertextBlob is required, except DryRun + IGNORE_CIPHERTEXT, which
    # needs SourceKeyId.
    _case(
        "required/blob-missing",
        {"CiphertextBlob": None},
        MissingParameterError,
        "CiphertextBlob",
        "IGNORE_CIPHERTEXT",
    ),
    _case(
        "required/ignore-ciphertext-with-source",
        {
            "CiphertextBlob": None,
            "DryRun": True,
            "DryRunModifiers": ["IGNORE_CIPHERTEXT"],
            "SourceKeyId": KEY,
        },
    ),
    _case(
        "required/ignore-ciphertext-without-source",
        {
            "CiphertextBlob": None,
            "DryRun": True,
            "DryRunModifiers": [DryRunModifier.IGNORE_CIPHERTEXT],
        },
        MissingParameterError,
        "SourceKeyId",
        "SourceKeyId is required",
    ),
    _case(
        "required/dry-run-without-modifier-needs-blob",
        {"CiphertextBlob": None, "DryRun": True, "SourceKeyId": KEY},
        MissingParameterError,
        "CiphertextBlob",
    ),
    # DryRun and DryRunModifiers.
    _case("dryrun/true", {"DryRun": True}),
    _case("dryrun/false", {"DryRun": False}),
    _case(
        "dryrun/str",
        {"DryRun": "true"},
        ParameterTypeError,
        "DryRun",
        "True or False",
    ),
    _case("dryrun/int", {"DryRun": 1}, ParameterTypeError, "DryRun"),
    _case(
        "modifiers/with-dry-run",
        {
            "DryRun": True,
            "DryRunModifiers": ("IGNORE_CIPHERTEXT",),
            "SourceKeyId": KEY,
        },
    ),
    _case(
        "modifiers/without-dry-run",
        {"DryRunModifiers": ["IGNORE_CIPHERTEXT"]},
        ConflictingParametersError,
        "DryRunModifiers",
        "pass DryRun=True",
    ),
    _case(
        "modifiers/with-dry-run-false",
        {"DryRun": False, "DryRunModifiers": ["IGNORE_CIPHERTEXT"]},
        ConflictingParametersError,
        "DryRunModifiers",
    ),
    _case(
        "modifiers/unknown",
        {"DryRun": True, "DryRunModifiers": ["ignore_ciphertext"]},
        InvalidEnumValueError,
        "DryRunModifiers",
        "did you mean 'IGNORE_CIPHERTEXT'",
    ),
    _case(
        "modifiers/bare-str",
        {"DryRun": True, "DryRunModifiers": "IGNORE_CIPHERTEXT"},
        ParameterTypeError,
        "DryRunModifiers",
        "must be a list",
    ),
    # Algorithms: enum members.
    _case(
        "algorithm/enum-member",
        {
            "DestinationEncryptionAlgorithm": (
                EncryptionAlgorithm.RSAES_OAEP_SHA_256
            )
        },
    ),
    _case(
        "algorithm/lower-case",
        {"DestinationEncryptionAlgorithm": "rsaes_oaep_sha_256"},
        InvalidEnumValueError,
        "DestinationEncryptionAlgorithm",
        "did you mean 'RSAES_OAEP_SHA_256'",
    ),
    _case(
        "algorithm/bogus",
        {"SourceEncryptionAlgorithm": "AES_BOGUS"},
        InvalidEnumValueError,
        "SourceEncryptionAlgorithm",
        "must be one of",
    ),
    _case(
        "algorithm/not-str",
        {"SourceEncryptionAlgorithm": 3},
        InvalidEnumValueError,
        "SourceEncryptionAlgorithm",
        "got int",
    ),
    # An asymmetric source algorithm needs SourceKeyId.
    _case(
        "asymmetric-source/with-key",
        {
            "CiphertextBlob": RSA_2048_BLOB,
            "SourceKeyId": KEY,
            "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_1",
        },
    ),
    _case(
        "asymmetric-source/without-key",
        {
            "CiphertextBlob": RSA_2048_BLOB,
            "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
        },
        MissingParameterError,
        "SourceKeyId",
        "pass SourceKeyId",
    ),
    _case(
        "asymmetric-source/sm2-without-key",
        {"SourceEncryptionAlgorithm": "SM2PKE"},
        MissingParameterError,
        "SourceKeyId",
        region="cn-north-1",
    ),
    # Raw RSA ciphertext of the key's size is never mistaken for another
    # format, whatever its first bytes.
    _case(
        "rsa-blob/4096-esdk-looking",
        {
            "CiphertextBlob": RSA_4096_BLOB,
            "SourceKeyId": KEY,
            "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
        },
    ),
    _case(
        "rsa-blob/base64-looking",
        {
            "CiphertextBlob": base64.b64encode(BLOB[:4] + bytes(188)),
            "SourceKeyId": KEY,
            "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
        },
    ),
    # Encryption context only on a symmetric side.
    _case(
        "context/symmetric-destination",
        {"DestinationEncryptionContext": CTX},
    ),
    _case(
        "context/asymmetric-destination",
        {
            "DestinationEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
            "DestinationEncryptionContext": CTX,
        },
        ConflictingParametersError,
        "DestinationEncryptionContext",
        "keys given: purpose",
    ),
    _case(
        "context/asymmetric-destination-empty",
        {
            "DestinationEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
            "DestinationEncryptionContext": {},
        },
    ),
    _case(
        "context/asymmetric-source",
        {
            "CiphertextBlob": RSA_2048_BLOB,
            "SourceKeyId": KEY,
            "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_1",
            "SourceEncryptionContext": CTX,
        },
        ConflictingParametersError,
        "SourceEncryptionContext",
        "only symmetric keys",
    ),
    _case(
        "context/asymmetric-source-symmetric-destination",
        {
            "CiphertextBlob": RSA_2048_BLOB,
            "SourceKeyId": KEY,
            "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_1",
            "DestinationEncryptionContext": CTX,
        },
    ),
    _case(
        "context/not-a-mapping",
        {"SourceEncryptionContext": [("a", "b")]},
        ParameterTypeError,
        "SourceEncryptionContext",
        "mapping of str to str",
    ),
    _case(
        "context/int-value",
        {"DestinationEncryptionContext": {"n": 1}},
        ParameterTypeError,
        "DestinationEncryptionContext",
        "['n'] must be a str",
    ),
    _case(
        "context/int-key",
        {"DestinationEncryptionContext": {1: "x"}},
        ParameterTypeError,
        "DestinationEncryptionContext",
        "keys must be str",
    ),
    _case("context/unicode", {"SourceEncryptionContext": {"clé": "été"}}),
    # SM2PKE only in the China partition.
    _case(
        "sm2/china-region",
        {"DestinationEncryptionAlgorithm": "SM2PKE"},
        region="cn-north-1",
    ),
    _case(
        "sm2/china-key-arn-region-unknown",
        {
            "DestinationEncryptionAlgorithm": "SM2PKE",
            "DestinationKeyId": CN_KEY_ARN,
        },
        region=None,
    ),
    _case(
        "sm2/commercial-region",
        {"DestinationEncryptionAlgorithm": "SM2PKE"},
        InvalidEnumValueError,
        "DestinationEncryptionAlgorithm",
        "only in the China Regions",
    ),
    _case(
        "sm2/commercial-key-arn-region-unknown",
        {
            "CiphertextBlob": b"\x30\x81" + bytes(100),
            "SourceKeyId": KEY_ARN,
            "SourceEncryptionAlgorithm": "SM2PKE",
        },
        InvalidEnumValueError,
        "SourceEncryptionAlgorithm",
        "partition aws",
        region=None,
    ),
    _case(
        "sm2/nothing-known",
        {"DestinationEncryptionAlgorithm": "SM2PKE"},
        region=None,
    ),
    # AWS managed destination keys.
    _case(
        "aws-managed/destination-alias",
        {"DestinationKeyId": "alias/aws/s3"},
        AwsManagedKeyError,
        "DestinationKeyId",
        "allow_aws_managed_key=True",
    ),
    _case(
        "aws-managed/destination-alias-arn",
        {"DestinationKeyId": f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/aws/ebs"},
        AwsManagedKeyError,
        "DestinationKeyId",
    ),
    _case("aws-managed/source-alias", {"SourceKeyId": "alias/aws/s3"}),
    _case("aws-managed/lookalike", {"DestinationKeyId": "alias/awsome"}),
    # Grant tokens: at most 10, each 1-8192 characters.
    _case("grants/ten", {"GrantTokens": ["t"] * 10}),
    _case("grants/8192-chars", {"GrantTokens": ["t" * 8192]}),
    _case("grants/empty-list", {"GrantTokens": []}),
    _case(
        "grants/eleven",
        {"GrantTokens": ["t"] * 11},
        ParameterLengthError,
        "GrantTokens",
        "at most 10",
    ),
    _case(
        "grants/empty-token",
        {"GrantTokens": [""]},
        ParameterLengthError,
        "GrantTokens",
        "GrantTokens[0]",
    ),
    _case(
        "grants/8193-chars",
        {"GrantTokens": ["t" * 8193]},
        ParameterLengthError,
        "GrantTokens",
        "got 8193",
    ),
    _case(
        "grants/bare-str",
        {"GrantTokens": "token"},
        ParameterTypeError,
        "GrantTokens",
        "must be a list",
    ),
    _case(
        "grants/int-token",
        {"GrantTokens": ["a", 2]},
        ParameterTypeError,
        "GrantTokens",
        "GrantTokens[1]",
    ),
    # Encoding guardrails.
    _case(
        "encoding/base64-bytes",
        {"CiphertextBlob": base64.b64encode(BLOB)},
        CiphertextEncodingError,
        "CiphertextBlob",
        "Decode it first",
    ),
    _case(
        "encoding/base64-bytes-newline",
        {"CiphertextBlob": base64.b64encode(LOCAL_BLOB) + b"\n"},
        CiphertextEncodingError,
        "CiphertextBlob",
        "ciphertext_from_base64",
    ),
    _case(
        "encoding/base64-wrapped-lines",
        {"CiphertextBlob": base64.encodebytes(BLOB)},
        CiphertextEncodingError,
        "CiphertextBlob",
    ),
    _case(
        "encoding/base64-of-other-data",
        {"CiphertextBlob": base64.b64encode(b"\x07hello world")},
    ),
    _case("encoding/plain-ascii", {"CiphertextBlob": b"AAAA"}),
    _case(
        "encoding/esdk-v1",
        {"CiphertextBlob": b"\x01\x80\x01\x78" + bytes(200)},
        CiphertextEncodingError,
        "CiphertextBlob",
        "AWS Encryption SDK message",
    ),
    _case(
        "encoding/esdk-v2",
        {"CiphertextBlob": b"\x02\x05\x78" + bytes(200)},
        CiphertextEncodingError,
        "CiphertextBlob",
        "ReEncrypt cannot read that format",
    ),
    _case(
        "encoding/esdk-v1-unknown-suite",
        {"CiphertextBlob": b"\x01\x80\x09\x99" + bytes(200)},
    ),
    _case(
        "encoding/base64-esdk",
        {"CiphertextBlob": base64.b64encode(b"\x02\x04\x78" + bytes(60))},
        CiphertextEncodingError,
        "CiphertextBlob",
        "base64",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "error", "parameter", "fragment", "region"), CASES
)
def test_rules(
    overrides: dict[str, Any],
    error: type[RequestValidationError] | None,
    parameter: str | None,
    fragment: str | None,
    region: str | None,
) -> None:
    """Each rule lets its valid case through and refuses its invalid one,
    naming the member and the fix."""
    request = {**BASE, **overrides}

    if error is None:
        built = build_request(**request, region_name=region)
        expected = {k: v for k, v in request.items() if v is not None}
        assert set(expected) == set(built)
        for name, value in expected.items():
            if isinstance(value, bytearray | memoryview):
                assert bytes(value) == built[name]
            elif isinstance(value, list | tuple):
                assert list(value) == built[name]
            else:
                assert value == built[name]
        return

    with pytest.raises(error) as info:
        build_request(**request, region_name=region)

    assert parameter == info.value.parameter
    assert isinstance(info.value, RequestValidationError)
    if fragment is not None:
        assert fragment in str(info.value)


def test_identifiers_are_sent_exactly_as_given() -> None:
    """Nothing is shortened, prefixed, lower-cased or rebuilt."""
    built = build_request(
        CiphertextBlob=BLOB,
        SourceKeyId=KEY_ARN,
        DestinationKeyId="alias/Team/Mixed_Case:key",
        region_name="us-east-1",
    )

    assert built["SourceKeyId"] == KEY_ARN
    assert built["DestinationKeyId"] == "alias/Team/Mixed_Case:key"


def test_none_members_are_omitted() -> None:
    """A member left as None is not in the request at all."""
    built = build_request(CiphertextBlob=BLOB, DestinationKeyId=KEY)

    assert {"CiphertextBlob", "DestinationKeyId"} == set(built)


def test_algorithm_enum_members_are_sent_as_plain_str() -> None:
    """botocore receives plain strings, not enum members."""
    built = build_request(
        CiphertextBlob=BLOB,
        DestinationKeyId=KEY,
        DestinationEncryptionAlgorithm=EncryptionAlgorithm.SYMMETRIC_DEFAULT,
    )

    assert str is type(built["DestinationEncryptionAlgorithm"])


def test_aws_managed_destination_can_be_allowed() -> None:
    """allow_aws_managed_key lets alias/aws/ destinations through."""
    built = build_request(
        CiphertextBlob=BLOB,
        DestinationKeyId="alias/aws/s3",
        allow_aws_managed_key=True,
    )

    assert built["DestinationKeyId"] == "alias/aws/s3"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(
            {"DestinationEncryptionContext": {"tenant": SECRET.encode()}},
            id="context-value",
        ),
        pytest.param(
            {"GrantTokens": [SECRET] * 11},
            id="grant-tokens",
        ),
        pytest.param(
            {"GrantTokens": [SECRET + "x" * 8192]},
            id="long-grant-token",
        ),
        pytest.param(
            {"CiphertextBlob": base64.b64encode(BLOB + SECRET.encode())},
            id="base64-blob",
        ),
        pytest.param(
            {"CiphertextBlob": SECRET},
            id="str-blob",
        ),
        pytest.param(
            {
                "DestinationEncryptionAlgorithm": "RSAES_OAEP_SHA_1",
                "DestinationEncryptionContext": {"tenant": SECRET},
            },
            id="asymmetric-context",
        ),
    ],
)
def test_messages_never_contain_secrets(overrides: dict[str, Any]) -> None:
    """Ciphertext, grant tokens and context values never appear."""
    with pytest.raises(RequestValidationError) as info:
        build_request(**{**BASE, **overrides}, region_name="us-east-1")

    for text in (str(info.value), repr(info.value)):
        assert SECRET not in text
        assert base64.b64encode(BLOB).decode()[:12] not in text
