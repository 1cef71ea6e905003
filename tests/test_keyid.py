"""Key identifiers: the five forms parse, near misses are explained."""

from __future__ import annotations

import pickle

import attrs
import pytest

import kms_reencrypt
from kms_reencrypt import (
    InvalidKeyIdentifierError,
    KeyIdentifier,
    KeyIdForm,
    parse_key_id,
)
from kms_reencrypt._keyid import known_partitions, partition_of_region

KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"
MRK = "mrk-1234abcd12ab34cd56ef1234567890ab"
ACCOUNT = "111122223333"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY}"
ALIAS_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/my/app-key"


VALID = [
    pytest.param(
        KEY,
        {"form": KeyIdForm.KEY_ID, "key_id": KEY, "partition": None},
        id="key-id",
    ),
    pytest.param(
        MRK,
        {"form": KeyIdForm.MULTI_REGION_KEY_ID, "key_id": MRK},
        id="multi-region-key-id",
    ),
    pytest.param(
        KEY_ARN,
        {
            "form": KeyIdForm.KEY_ARN,
            "key_id": KEY,
            "partition": "aws",
            "region": "us-east-1",
            "account": ACCOUNT,
            "alias_name": None,
        },
        id="key-arn",
    ),
    pytest.param(
        f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/{MRK}",
        {"form": KeyIdForm.KEY_ARN, "key_id": MRK, "region": "eu-west-1"},
        id="key-arn-multi-region",
    ),
    pytest.param(
        "alias/my-key",
        {"form": KeyIdForm.ALIAS_NAME, "alias_name": "alias/my-key"},
        id="alias-name",
    ),
    pytest.param(
        "alias/team/app:prod_key-1",
        {"form": KeyIdForm.ALIAS_NAME},
        id="alias-name-with-slash-colon-underscore",
    ),
    pytest.param(
        "alias/" + "a" * 250,
        {"form": KeyIdForm.ALIAS_NAME},
        id="alias-name-256-chars",
    ),
    pytest.param(
        "alias/aws/s3",
        {"form": KeyIdForm.ALIAS_NAME, "alias_name": "alias/aws/s3"},
        id="aws-managed-alias-name",
    ),
    pytest.param(
        ALIAS_ARN,
        {
            "form": KeyIdForm.ALIAS_ARN,
            "alias_name": "alias/my/app-key",
            "partition": "aws",
            "region": "us-east-1",
            "account": ACCOUNT,
            "key_id": None,
        },
        id="alias-arn",
    ),
    pytest.param(
        f"arn:aws-cn:kms:cn-north-1:{ACCOUNT}:key/{KEY}",
        {"partition": "aws-cn", "region": "cn-north-1"},
        id="china-key-arn",
    ),
    pytest.param(
        f"arn:aws-us-gov:kms:us-gov-west-1:{ACCOUNT}:alias/x",
        {"partition": "aws-us-gov"},
        id="govcloud-alias-arn",
    ),
    pytest.param(
        f"arn:aws:kms:local-1:{ACCOUNT}:key/{KEY}",
        {"region": "local-1"},
        id="region-no-partition-claims",
    ),
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_valid_forms_parse_with_their_parts(
    text: str, expected: dict[str, object]
) -> None:
    """Each form is recognised and its parts are exposed."""
    key = parse_key_id(text)

    assert text == str(key) == key.text
    for name, value in expected.items():
        assert value == getattr(key, name), name


INVALID = [
    pytest.param("aws/s3", "alias/aws/s3", id="alias-without-prefix"),
    pytest.param("my-key", "alias/my-key", id="bare-name"),
    pytest.param(
        f"arn:aws:kms:us-east-1:{ACCOUNT}:key/alias/name",
        f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/name",
        id="key-slash-alias-arn",
    ),
    pytest.param(f"alias/{ALIAS_ARN}", ALIAS_ARN, id="alias-prefix-on-arn"),
    pytest.param(f" {KEY}", KEY, id="leading-space"),
    pytest.param("alias/my-key\n", "alias/my-key", id="trailing-newline"),
    pytest.param(f"\t{KEY_ARN} ", KEY_ARN, id="arn-in-whitespace"),
    pytest.param(KEY.upper(), KEY, id="key-id-upper-case"),
    pytest.param(KEY.replace("-", ""), KEY, id="key-id-without-dashes"),
    pytest.param(MRK.upper(), MRK, id="mrk-upper-case"),
    pytest.param(
        KEY_ARN.replace(KEY, KEY.upper()), KEY_ARN, id="key-arn-upper-id"
    ),
    pytest.param(f"key/{KEY}", KEY, id="key-prefix-without-arn"),
    pytest.param(
        f"arn:aws:kms:cn-north-1:{ACCOUNT}:key/{KEY}",
        f"arn:aws-cn:kms:cn-north-1:{ACCOUNT}:key/{KEY}",
        id="region-in-other-partition",
    ),
    pytest.param("alias/", None, id="alias-empty-name"),
    pytest.param("alias/" + "a" * 251, None, id="alias-257-chars"),
    pytest.param("alias/has space", None, id="alias-bad-character"),
    pytest.param("alias/dot.name", None, id="alias-dot"),
    pytest.param("!!!", None, id="punctuation"),
    pytest.param("mrk-1234", None, id="mrk-too-short"),
    pytest.param(
        "mrk-1234abcd-12ab-34cd-56ef-1234567890ab", None, id="moto-style-mrk"
    ),
    pytest.param(f"arn:aws:kms:us-east-1:{ACCOUNT}", None, id="arn-short"),
    pytest.param("arn:aws:s3:::bucket/key", None, id="arn-other-service"),
    pytest.param(
        f"arn:nope:kms:us-east-1:{ACCOUNT}:key/{KEY}",
        None,
        id="unknown-partition",
    ),
    pytest.param(
        f"arn:aws:kms:us-east-1:1234:key/{KEY}", None, id="short-account"
    ),
    pytest.param(
        f"arn:aws:kms::{ACCOUNT}:key/{KEY}", None, id="arn-empty-region"
    ),
    pytest.param(
        f"arn:aws:kms:us-east-1:{ACCOUNT}:grant/x", None, id="arn-resource"
    ),
    pytest.param(
        f"arn:aws:kms:us-east-1:{ACCOUNT}:key/nope", None, id="arn-bad-key"
    ),
]


@pytest.mark.parametrize(("text", "suggestion"), INVALID)
def test_invalid_forms_are_refused_with_a_suggestion(
    text: str, suggestion: str | None
) -> None:
    """A near miss is refused; when the intent is clear it is suggested."""
    with pytest.raises(InvalidKeyIdentifierError) as info:
        parse_key_id(text, parameter="DestinationKeyId")

    assert info.value.parameter == "DestinationKeyId"
    message = str(info.value)
    assert message.startswith("DestinationKeyId ")
    if suggestion is None:
        assert "Did you mean" not in message
        assert "alias/<name>" in message or "alias/'" in message
    else:
        assert f"Did you mean {suggestion!r}?" in message
        assert isinstance(parse_key_id(suggestion), KeyIdentifier)


def test_not_a_str_is_refused() -> None:
    """Only text can be an identifier."""
    with pytest.raises(InvalidKeyIdentifierError):
        parse_key_id(b"alias/x")  # type: ignore[arg-type]


def test_long_identifiers_are_shortened_in_messages() -> None:
    """A 2000-character mistake does not flood the message."""
    with pytest.raises(InvalidKeyIdentifierError) as info:
        parse_key_id("!" * 2000)

    assert len(str(info.value)) < 600


@pytest.mark.parametrize(
    ("text", "managed"),
    [
        pytest.param("alias/aws/s3", True, id="alias-name"),
        pytest.param(
            f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/aws/ebs",
            True,
            id="alias-arn",
        ),
        pytest.param("alias/aws", False, id="alias-named-aws"),
        pytest.param("alias/awsome", False, id="alias-prefix-aws"),
        pytest.param(KEY, False, id="key-id"),
    ],
)
def test_aws_managed_aliases_are_recognised(text: str, managed: bool) -> None:
    """Only names under alias/aws/ are AWS managed."""
    assert managed is parse_key_id(text).is_aws_managed


def test_identifier_is_frozen_and_picklable() -> None:
    """A parsed identifier is a value: immutable, comparable, picklable."""
    key = parse_key_id(KEY_ARN)

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        key.text = "alias/other"  # type: ignore[misc]
    assert key == pickle.loads(pickle.dumps(key))
    assert key.is_arn
    assert not key.is_alias
    assert not key.is_multi_region
    assert parse_key_id(MRK).is_multi_region


def test_partitions_come_from_botocore() -> None:
    """The partition list is botocore's, including the China partition."""
    assert {"aws", "aws-cn", "aws-us-gov"} <= known_partitions()
    assert partition_of_region("cn-northwest-1") == "aws-cn"
    assert partition_of_region("eu-central-1") == "aws"
    assert partition_of_region("us-gov-east-1") == "aws-us-gov"
    assert partition_of_region("local") is None


def test_root_exports_the_parser() -> None:
    """The parser is public API."""
    assert kms_reencrypt.parse_key_id is parse_key_id
