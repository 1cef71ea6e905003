"""Properties of validation: valid requests reach botocore unchanged, and
no input whatsoever escapes as anything but RequestValidationError."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient
from botocore.stub import Stubber
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kms_reencrypt import ReEncryptClient, RequestValidationError
from kms_reencrypt._keyid import parse_key_id
from kms_reencrypt._session import isolated_kms_client

REGION = "us-east-1"
ACCOUNT = "111122223333"
SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

HEX = "0123456789abcdef"
uuids = st.uuids().map(str)
mrks = st.text(HEX, min_size=32, max_size=32).map(lambda h: f"mrk-{h}")
key_ids = st.one_of(uuids, mrks)
alias_names = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:/_-",
    min_size=1,
    max_size=250,
).map(lambda name: f"alias/{name}")
customer_alias_names = alias_names.filter(
    lambda name: not name.startswith("alias/aws/")
)
accounts = st.text("0123456789", min_size=12, max_size=12)


def _arns(
    region: str, resource: st.SearchStrategy[str], partition: str = "aws"
) -> Any:
    return st.builds(
        lambda account, res: f"arn:{partition}:kms:{region}:{account}:{res}",
        accounts,
        resource,
    )


key_arns = _arns(REGION, key_ids.map(lambda k: f"key/{k}"))
alias_arns = _arns(REGION, customer_alias_names)
identifiers = st.one_of(key_ids, key_arns, customer_alias_names, alias_arns)
any_region_identifiers = st.one_of(
    identifiers,
    alias_names,
    st.sampled_from(
        [
            ("us-west-2", "aws"),
            ("cn-north-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
        ]
    ).flatmap(
        lambda where: _arns(
            where[0], key_ids.map(lambda k: f"key/{k}"), where[1]
        )
    ),
)
contexts = st.dictionaries(st.text(max_size=20), st.text(max_size=40))
symmetric_blobs = st.binary(min_size=1, max_size=300).map(
    lambda body: b"\x01\x02\x02\x00" + body
)
grant_tokens = st.lists(st.text(min_size=1, max_size=40), max_size=10)
rsa_algorithms = st.sampled_from(["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"])


@st.composite
def valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A request assembled from valid parts, consistent with every rule."""
    request: dict[str, Any] = {"DestinationKeyId": draw(identifiers)}
    asymmetric_source = draw(st.booleans())
    if asymmetric_source:
        size = draw(st.sampled_from([256, 384, 512]))
        request["CiphertextBlob"] = draw(
            st.binary(min_size=size, max_size=size)
        )
        request["SourceKeyId"] = draw(identifiers)
        request["SourceEncryptionAlgorithm"] = draw(rsa_algorithms)
    else:
        request["CiphertextBlob"] = draw(symmetric_blobs)
        if draw(st.booleans()):
            request["SourceKeyId"] = draw(identifiers)
        if draw(st.booleans()):
            request["SourceEncryptionContext"] = draw(contexts)
        if draw(st.booleans()):
            request["SourceEncryptionAlgorithm"] = "SYMMETRIC_DEFAULT"
    destination_algorithm = draw(
        st.sampled_from(
            [
                None,
                "SYMMETRIC_DEFAULT",
                "RSAES_OAEP_SHA_1",
                "RSAES_OAEP_SHA_256",
            ]
        )
    )
    if destination_algorithm is not None:
        request["DestinationEncryptionAlgorithm"] = destination_algorithm
    if destination_algorithm in (None, "SYMMETRIC_DEFAULT") and draw(
        st.booleans()
    ):
        request["DestinationEncryptionContext"] = draw(contexts)
    if draw(st.booleans()):
        request["GrantTokens"] = draw(grant_tokens)
    dry_run = draw(st.sampled_from([None, False, True]))
    if dry_run is not None:
        request["DryRun"] = dry_run
    if dry_run and "SourceKeyId" in request and draw(st.booleans()):
        request["DryRunModifiers"] = ["IGNORE_CIPHERTEXT"]
        if draw(st.booleans()):
            del request["CiphertextBlob"]

    return request


@pytest.fixture
def kms_client() -> BaseClient:
    return isolated_kms_client(
        endpoint_url="http://127.0.0.1:9", region_name=REGION
    )


@SETTINGS
@given(request=valid_requests())
def test_valid_requests_reach_botocore_unchanged(
    kms_client: BaseClient, request: dict[str, Any]
) -> None:
    """Whatever passes is what botocore is asked to send, member for
    member."""
    facade = ReEncryptClient(kms_client)
    with Stubber(kms_client) as stubber:
        stubber.add_response(
            "re_encrypt",
            {"CiphertextBlob": b"\x01\x02\x02\x00", "KeyId": "k"},
            request,
        )

        facade.re_encrypt(**request)

        stubber.assert_no_pending_responses()


SURROGATE_TEXT = st.text(st.characters(exclude_categories=[]), max_size=30)
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    SURROGATE_TEXT,
    st.binary(max_size=64),
    st.builds(bytearray, st.binary(max_size=16)),
    st.builds(memoryview, st.binary(max_size=16)),
    st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=12),
    st.tuples(st.text(max_size=5)),
    st.frozensets(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    st.dictionaries(
        st.one_of(st.integers(), SURROGATE_TEXT),
        st.one_of(st.binary(max_size=4), st.none(), SURROGATE_TEXT),
        max_size=3,
    ),
    st.just("x" * 9000),
    st.just(b"\x00" * 7000),
    st.just(["t" * 9000]),
    st.just("\x00"),
    st.just(b"\x00"),
    st.builds(object),
    st.builds(io.BytesIO, st.binary(max_size=8)),
)


def _mixed(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(valid, junk)


algorithm_values = st.sampled_from(
    ["SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE"]
)
anything = st.fixed_dictionaries(
    {
        "DestinationKeyId": _mixed(any_region_identifiers),
        "CiphertextBlob": _mixed(
            st.one_of(symmetric_blobs, st.binary(min_size=1, max_size=600))
        ),
        "SourceKeyId": _mixed(any_region_identifiers),
        "SourceEncryptionContext": _mixed(contexts),
        "DestinationEncryptionContext": _mixed(contexts),
        "SourceEncryptionAlgorithm": _mixed(algorithm_values),
        "DestinationEncryptionAlgorithm": _mixed(algorithm_values),
        "GrantTokens": _mixed(grant_tokens),
        "DryRun": _mixed(st.booleans()),
        "DryRunModifiers": _mixed(st.just(["IGNORE_CIPHERTEXT"])),
        "preflight": st.one_of(st.none(), st.just(False), junk),
        "allow_aws_managed_key": _mixed(st.booleans()),
    }
)


@pytest.fixture
def answering_client(kms_client: BaseClient) -> Iterator[BaseClient]:
    """A client whose every ReEncrypt gets a canned answer, after
    botocore's own parameter validation has run."""

    def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        response = AWSResponse("http://127.0.0.1:9", 200, {}, None)
        return response, {"CiphertextBlob": b"\x01", "KeyId": "k"}

    kms_client.meta.events.register("before-call.kms.ReEncrypt", answer)
    yield kms_client
    kms_client.meta.events.unregister("before-call.kms.ReEncrypt", answer)


@SETTINGS
@given(call=anything)
def test_any_input_succeeds_or_raises_request_validation_error(
    answering_client: BaseClient, call: dict[str, Any]
) -> None:
    """No TypeError, KeyError, UnicodeError or botocore
    ParamValidationError ever escapes, whatever the arguments.

    The client here keeps botocore's parameter validation on, so this
    also proves that whatever the facade sends passes it: the reason
    the clients that client() builds can turn it off."""
    facade = ReEncryptClient(answering_client)

    error = _refusal(facade, call)

    if error is not None:
        # A bare RequestValidationError comes only from translating a
        # botocore ParamValidationError: our checks missed something.
        assert type(error) is not RequestValidationError, str(error)
        assert error.parameter
        assert str(error)


def _refusal(
    facade: ReEncryptClient, call: dict[str, Any]
) -> RequestValidationError | None:
    # Anything but RequestValidationError propagates and fails the test.
    try:
        facade.re_encrypt(**call)
    except RequestValidationError as error:
        return error
    return None


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(identifiers, alias_names, any_region_identifiers))
def test_valid_identifiers_survive_parse_and_str(text: str) -> None:
    """Parsing never changes an identifier's text."""
    key = parse_key_id(text)

    assert str(key) == text
    assert key.text == text
