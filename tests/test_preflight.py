"""The DescribeKey pre-flight: refusals from key facts, caching, and how
DescribeKey failures are handled."""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.stub import Stubber

from kms_reencrypt import (
    AwsManagedKeyError,
    ConfigurationError,
    KeyPreflightError,
    KmsServiceError,
    NotFoundException,
    ParameterTypeError,
    PlaintextLimitWarning,
    ReEncryptClient,
    ReEncryptResult,
)
from kms_reencrypt._preflight import KeyFacts, KeyPreflight, plaintext_limit
from kms_reencrypt._session import isolated_kms_client
from kms_reencrypt.local import LocalKms

KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER = "0000abcd-12ab-34cd-56ef-1234567890ab"
BLOB = b"\x01\x02\x02\x00" + bytes(range(60))
RSA_BLOB = os.urandom(256)


def _counting(kms_client: BaseClient) -> list[str]:
    calls: list[str] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        calls.append(params["KeyId"])

    kms_client.meta.events.register(
        "provide-client-params.kms.DescribeKey", count
    )
    return calls


@pytest.fixture
def kms(local_kms: LocalKms) -> LocalKms:
    return local_kms


@pytest.fixture
def checked(kms: LocalKms) -> ReEncryptClient:
    """A facade with the pre-flight on, over the local KMS."""
    return ReEncryptClient(kms.kms_client(), preflight=True)


def _encrypt(kms: LocalKms, key_id: str, plaintext: bytes = b"data") -> bytes:
    blob: bytes = kms.kms_client().encrypt(KeyId=key_id, Plaintext=plaintext)[
        "CiphertextBlob"
    ]
    return blob


# -- refusals against the local KMS ------------------------------------


def test_valid_symmetric_request_passes_and_each_key_is_described_once(
    kms: LocalKms,
) -> None:
    """A good request goes through; answers are cached per identifier."""
    source = kms.create_key()["KeyId"]
    destination = kms.create_key(alias="alias/new")["KeyId"]
    facade = ReEncryptClient(kms.kms_client(), preflight=True)
    calls = _counting(facade.kms_client)

    for _ in range(3):
        result = facade.re_encrypt(
            CiphertextBlob=_encrypt(kms, source),
            SourceKeyId=source,
            DestinationKeyId="alias/new",
        )
        assert isinstance(result, ReEncryptResult)

    assert sorted(calls) == sorted(["alias/new", source])
    assert destination in (result.key_id or "")


def test_without_source_key_only_the_destination_is_described(
    kms: LocalKms,
) -> None:
    """KMS reads a symmetric source key from the blob; nothing to check."""
    source = kms.create_key()["KeyId"]
    destination = kms.create_key()["KeyId"]
    facade = ReEncryptClient(kms.kms_client(), preflight=True)
    calls = _counting(facade.kms_client)

    facade.re_encrypt(
        CiphertextBlob=_encrypt(kms, source), DestinationKeyId=destination
    )

    assert calls == [destination]


@pytest.mark.parametrize(
    ("spec", "usage", "overrides", "parameter", "fragment"),
    [
        pytest.param(
            "RSA_2048",
            "SIGN_VERIFY",
            {},
            "DestinationKeyId",
            "SIGN_VERIFY key",
            id="destination-sign-verify",
        ),
        pytest.param(
            "HMAC_256",
            "GENERATE_VERIFY_MAC",
            {},
            "DestinationKeyId",
            "needs ENCRYPT_DECRYPT",
            id="destination-hmac",
        ),
        pytest.param(
            "RSA_2048",
            "ENCRYPT_DECRYPT",
            {},
            "DestinationEncryptionAlgorithm",
            "pass DestinationEncryptionAlgorithm",
            id="rsa-destination-without-algorithm",
        ),
        pytest.param(
            "SYMMETRIC_DEFAULT",
            "ENCRYPT_DECRYPT",
            {"DestinationEncryptionAlgorithm": "RSAES_OAEP_SHA_256"},
            "DestinationEncryptionAlgorithm",
            "does not fit",
            id="symmetric-destination-rsa-algorithm",
        ),
        pytest.param(
            "RSA_3072",
            "ENCRYPT_DECRYPT",
            {"DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT"},
            "DestinationEncryptionAlgorithm",
            "RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256",
            id="rsa-destination-symmetric-algorithm",
        ),
    ],
)
def test_destination_key_that_cannot_serve_is_refused(
    kms: LocalKms,
    checked: ReEncryptClient,
    spec: str,
    usage: str,
    overrides: dict[str, Any],
    parameter: str,
    fragment: str,
) -> None:
    """Usage and algorithm are checked against the destination key."""
    source = kms.create_key()["KeyId"]
    destination = kms.create_key(spec, usage)["KeyId"]
    calls = _counting(checked.kms_client)
    sent: list[str] = []
    checked.kms_client.meta.events.register(
        "before-call.kms.ReEncrypt", lambda **_: sent.append("ReEncrypt")
    )

    with pytest.raises(KeyPreflightError) as info:
        checked.re_encrypt(
            CiphertextBlob=_encrypt(kms, source),
            DestinationKeyId=destination,
            **overrides,
        )

    assert info.value.parameter == parameter
    assert fragment in str(info.value)
    assert calls == [destination]
    assert sent == []


@pytest.mark.parametrize(
    ("state", "allowed"),
    [
        pytest.param("Enabled", True, id="enabled"),
        pytest.param("Updating", True, id="updating"),
        pytest.param("Disabled", False, id="disabled"),
        pytest.param("PendingDeletion", False, id="pending-deletion"),
        pytest.param("PendingImport", False, id="pending-import"),
        pytest.param("Unavailable", False, id="unavailable"),
        pytest.param("Creating", False, id="creating"),
    ],
)
@pytest.mark.parametrize("side", ["SourceKeyId", "DestinationKeyId"])
def test_key_state_is_checked_on_both_sides(
    kms: LocalKms,
    checked: ReEncryptClient,
    state: str,
    allowed: bool,
    side: str,
) -> None:
    """Only Enabled and Updating keys can serve ReEncrypt."""
    source = kms.create_key()["KeyId"]
    destination = kms.create_key()["KeyId"]
    blob = _encrypt(kms, source)
    kms.set_key_state(source if side == "SourceKeyId" else destination, state)
    call = {
        "CiphertextBlob": blob,
        "SourceKeyId": source,
        "DestinationKeyId": destination,
    }

    if allowed:
        assert isinstance(checked.re_encrypt(**call), ReEncryptResult)
        return
    with pytest.raises(KeyPreflightError) as info:
        checked.re_encrypt(**call)

    assert info.value.parameter == side
    assert f"state {state}" in str(info.value)


def test_asymmetric_source_needs_its_algorithm(
    kms: LocalKms, checked: ReEncryptClient
) -> None:
    """An RSA source key without SourceEncryptionAlgorithm is refused."""
    source = kms.create_key("RSA_2048")["KeyId"]
    destination = kms.create_key()["KeyId"]

    with pytest.raises(KeyPreflightError) as info:
        checked.re_encrypt(
            CiphertextBlob=RSA_BLOB,
            SourceKeyId=source,
            DestinationKeyId=destination,
        )

    assert info.value.parameter == "SourceEncryptionAlgorithm"


def test_symmetric_source_with_rsa_algorithm_is_refused(
    kms: LocalKms, checked: ReEncryptClient
) -> None:
    """The source algorithm must be one the source key has."""
    source = kms.create_key()["KeyId"]
    destination = kms.create_key()["KeyId"]

    with pytest.raises(KeyPreflightError) as info:
        checked.re_encrypt(
            CiphertextBlob=RSA_BLOB,
            SourceKeyId=source,
            SourceEncryptionAlgorithm="RSAES_OAEP_SHA_1",
            DestinationKeyId=destination,
        )

    assert info.value.parameter == "SourceEncryptionAlgorithm"


def test_rsa_destination_warns_about_the_plaintext_limit(
    kms: LocalKms,
    checked: ReEncryptClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Symmetric (4096 bytes) to RSA_2048/OAEP-SHA-256 (190) warns."""
    source = kms.create_key()["KeyId"]
    destination = kms.create_key("RSA_2048")["KeyId"]
    caplog.set_level(logging.WARNING, "kms_reencrypt")

    with pytest.warns(PlaintextLimitWarning, match="at most 190 bytes"):
        result = checked.re_encrypt(
            CiphertextBlob=_encrypt(kms, source),
            SourceKeyId=source,
            DestinationKeyId=destination,
            DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256",
        )

    assert isinstance(result, ReEncryptResult)
    assert "takes at most 190 plaintext bytes" in caplog.text


def test_rsa_to_larger_rsa_does_not_warn(
    kms: LocalKms, checked: ReEncryptClient
) -> None:
    """RSA_2048 to RSA_4096 loses nothing."""
    source = kms.create_key("RSA_2048")["KeyId"]
    destination = kms.create_key("RSA_4096")["KeyId"]
    public = kms.kms_client()
    blob = public.encrypt(
        KeyId=source,
        Plaintext=b"x" * 100,
        EncryptionAlgorithm="RSAES_OAEP_SHA_256",
    )["CiphertextBlob"]

    with warnings.catch_warnings():
        warnings.simplefilter("error", PlaintextLimitWarning)
        checked.re_encrypt(
            CiphertextBlob=blob,
            SourceKeyId=source,
            SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256",
            DestinationKeyId=destination,
            DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_1",
        )


def test_unknown_key_raises_not_found_before_reencrypt(
    checked: ReEncryptClient,
) -> None:
    """DescribeKey's NotFound is the typed NotFoundException."""
    sent: list[str] = []
    checked.kms_client.meta.events.register(
        "before-call.kms.ReEncrypt", lambda **_: sent.append("ReEncrypt")
    )

    with pytest.raises(NotFoundException) as info:
        checked.re_encrypt(CiphertextBlob=BLOB, DestinationKeyId="alias/nope")

    assert info.value.operation == "DescribeKey"
    assert "use an ARN" in str(info.value) or "ARN" in str(info.value)
    assert sent == []


def test_preflight_can_be_turned_on_and_off_per_call(kms: LocalKms) -> None:
    """The per-call argument overrides the client's option."""
    source = kms.create_key()["KeyId"]
    signing = kms.create_key("RSA_2048", "SIGN_VERIFY")["KeyId"]
    plain = ReEncryptClient(kms.kms_client())
    checked = ReEncryptClient(kms.kms_client(), preflight=True)
    call = {
        "CiphertextBlob": _encrypt(kms, source),
        "DestinationKeyId": signing,
    }

    with pytest.raises(KeyPreflightError):
        plain.re_encrypt(**call, preflight=True)
    with pytest.raises(KmsServiceError) as info:
        checked.re_encrypt(**call, preflight=False)

    assert info.value.operation == "ReEncrypt"


def test_concurrent_calls_share_the_cache(kms: LocalKms) -> None:
    """Threads share one facade; every call succeeds."""
    source = kms.create_key()["KeyId"]
    destination = kms.create_key()["KeyId"]
    facade = ReEncryptClient(kms.kms_client(), preflight=True)
    calls = _counting(facade.kms_client)
    blob = _encrypt(kms, source)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                facade.re_encrypt(
                    CiphertextBlob=blob,
                    SourceKeyId=source,
                    DestinationKeyId=destination,
                )
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert set(calls) == {source, destination}
    assert len(calls) <= 2 * len(threads)


# -- answers a local server cannot give: botocore's Stubber -------------


@pytest.fixture
def stubbed() -> Iterator[tuple[ReEncryptClient, Stubber]]:
    kms_client = isolated_kms_client(
        endpoint_url="http://127.0.0.1:9", region_name="us-east-1"
    )
    with Stubber(kms_client) as stubber:
        yield ReEncryptClient(kms_client, preflight=True), stubber
        stubber.assert_no_pending_responses()


def _describe(stubber: Stubber, key_id: str, **metadata: Any) -> None:
    stubber.add_response(
        "describe_key",
        {"KeyMetadata": {"KeyId": key_id, **metadata}},
        {"KeyId": key_id},
    )


def _reencrypt_ok(stubber: Stubber) -> None:
    stubber.add_response(
        "re_encrypt", {"CiphertextBlob": BLOB, "KeyId": KEY}, None
    )


def test_fields_left_out_are_unknown_not_invalid(
    stubbed: tuple[ReEncryptClient, Stubber],
) -> None:
    """An emulator that sends only KeyId refuses nothing."""
    facade, stubber = stubbed
    _describe(stubber, KEY)
    _reencrypt_ok(stubber)

    result = facade.re_encrypt(CiphertextBlob=BLOB, DestinationKeyId=KEY)

    assert isinstance(result, ReEncryptResult)


def test_aws_managed_key_manager_is_refused_unless_allowed(
    stubbed: tuple[ReEncryptClient, Stubber],
) -> None:
    """KeyManager AWS on a key named by its ID is caught by DescribeKey."""
    facade, stubber = stubbed
    _describe(stubber, KEY, KeyManager="AWS", KeySpec="SYMMETRIC_DEFAULT")

    with pytest.raises(AwsManagedKeyError) as info:
        facade.re_encrypt(CiphertextBlob=BLOB, DestinationKeyId=KEY)
    _reencrypt_ok(stubber)
    facade.re_encrypt(
        CiphertextBlob=BLOB, DestinationKeyId=KEY, allow_aws_managed_key=True
    )

    assert info.value.parameter == "DestinationKeyId"
    assert "KeyManager AWS" in str(info.value)


def test_context_for_rsa_key_without_algorithm_list_is_refused(
    stubbed: tuple[ReEncryptClient, Stubber],
) -> None:
    """A non-symmetric spec refuses a context even when the algorithm
    list is missing from the answer."""
    facade, stubber = stubbed
    _describe(stubber, KEY, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")

    with pytest.raises(KeyPreflightError) as info:
        facade.re_encrypt(
            CiphertextBlob=BLOB,
            DestinationKeyId=KEY,
            DestinationEncryptionAlgorithm="SYMMETRIC_DEFAULT",
            DestinationEncryptionContext={"purpose": "secret-value"},
        )

    assert info.value.parameter == "DestinationEncryptionContext"
    assert "secret-value" not in str(info.value)


def test_enabled_false_without_state_counts_as_disabled(
    stubbed: tuple[ReEncryptClient, Stubber],
) -> None:
    """Enabled=False alone is enough to refuse."""
    facade, stubber = stubbed
    _describe(stubber, KEY, Enabled=False)

    with pytest.raises(KeyPreflightError, match="state Disabled"):
        facade.re_encrypt(CiphertextBlob=BLOB, DestinationKeyId=KEY)


def test_access_denied_on_describe_key_skips_the_check(
    stubbed: tuple[ReEncryptClient, Stubber],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A caller without kms:DescribeKey still re-encrypts; the skip is
    logged and remembered for the TTL."""
    facade, stubber = stubbed
    stubber.add_client_error(
        "describe_key",
        service_error_code="AccessDeniedException",
        http_status_code=400,
    )
    _reencrypt_ok(stubber)
    _reencrypt_ok(stubber)
    caplog.set_level(logging.WARNING, "kms_reencrypt")

    facade.re_encrypt(CiphertextBlob=BLOB, DestinationKeyId=KEY)
    facade.re_encrypt(CiphertextBlob=BLOB, DestinationKeyId=KEY)

    assert "no kms:DescribeKey permission" in caplog.text


def test_throttled_describe_key_skips_without_caching(
    stubbed: tuple[ReEncryptClient, Stubber],
) -> None:
    """A transient DescribeKey failure skips this call only."""
    facade, stubber = stubbed
    stubber.add_client_error(
        "describe_key",
        service_error_code="ThrottlingException",
        http_status_code=400,
    )
    _reencrypt_ok(stubber)
    _describe(stubber, KEY, KeyUsage="SIGN_VERIFY")

    facade.re_encrypt(CiphertextBlob=BLOB, DestinationKeyId=KEY)
    with pytest.raises(KeyPreflightError):
        facade.re_encrypt(CiphertextBlob=BLOB, DestinationKeyId=KEY)


def test_other_describe_key_errors_are_translated(
    stubbed: tuple[ReEncryptClient, Stubber],
) -> None:
    """A non-transient error is raised as the library's type."""
    facade, stubber = stubbed
    stubber.add_client_error(
        "describe_key",
        service_error_code="NotFoundException",
        http_status_code=400,
    )

    with pytest.raises(NotFoundException):
        facade.re_encrypt(CiphertextBlob=BLOB, DestinationKeyId=KEY)


def test_answers_expire_after_the_ttl() -> None:
    """The cache asks again once an answer is older than the TTL."""
    kms_client = isolated_kms_client(
        endpoint_url="http://127.0.0.1:9", region_name="us-east-1"
    )
    now = [0.0]
    preflight = KeyPreflight(kms_client, ttl=10, clock=lambda: now[0])
    with Stubber(kms_client) as stubber:
        _describe(stubber, KEY, KeyState="Enabled")
        _describe(stubber, KEY, KeyState="Disabled")

        first = preflight.lookup(KEY)
        now[0] = 9.5
        cached = preflight.lookup(KEY)
        now[0] = 10.5
        fresh = preflight.lookup(KEY)

        stubber.assert_no_pending_responses()
    assert first is not None
    assert first is cached
    assert fresh is not None
    assert fresh.key_state == "Disabled"


# -- options and helpers -----------------------------------------------


@pytest.mark.parametrize(
    ("options", "option"),
    [
        pytest.param({"preflight": "yes"}, "preflight", id="preflight-str"),
        pytest.param({"preflight_ttl": -1}, "preflight_ttl", id="ttl-neg"),
        pytest.param(
            {"preflight_ttl": float("nan")}, "preflight_ttl", id="ttl-nan"
        ),
        pytest.param({"preflight_ttl": True}, "preflight_ttl", id="ttl-bool"),
        pytest.param(
            {"allow_aws_managed_key": 1},
            "allow_aws_managed_key",
            id="allow-int",
        ),
    ],
)
def test_bad_options_are_configuration_errors(
    options: dict[str, Any], option: str
) -> None:
    """Options are validated when the client is built."""
    kms_client = isolated_kms_client(
        endpoint_url="http://127.0.0.1:9", region_name="us-east-1"
    )

    with pytest.raises(ConfigurationError) as info:
        ReEncryptClient(kms_client, **options)

    assert info.value.option == option


def test_bad_per_call_flag_is_a_validation_error() -> None:
    """A per-call flag that is not a bool is refused before sending."""
    facade = ReEncryptClient(
        isolated_kms_client(
            endpoint_url="http://127.0.0.1:9", region_name="us-east-1"
        )
    )

    with pytest.raises(ParameterTypeError):
        facade.re_encrypt(
            CiphertextBlob=BLOB,
            DestinationKeyId=KEY,
            preflight="yes",  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    ("spec", "algorithm", "limit"),
    [
        ("SYMMETRIC_DEFAULT", "SYMMETRIC_DEFAULT", 4096),
        ("RSA_2048", "RSAES_OAEP_SHA_1", 214),
        ("RSA_2048", "RSAES_OAEP_SHA_256", 190),
        ("RSA_3072", "RSAES_OAEP_SHA_1", 342),
        ("RSA_3072", "RSAES_OAEP_SHA_256", 318),
        ("RSA_4096", "RSAES_OAEP_SHA_1", 470),
        ("RSA_4096", "RSAES_OAEP_SHA_256", 446),
        ("SM2", "SM2PKE", 1024),
        ("RSA_2048", "SYMMETRIC_DEFAULT", None),
        (None, "RSAES_OAEP_SHA_1", None),
    ],
)
def test_plaintext_limits_match_the_spec_table(
    spec: str | None, algorithm: str, limit: int | None
) -> None:
    """The limits of spec section 3.5."""
    assert plaintext_limit(spec, algorithm) == limit


def test_key_facts_ignore_mistyped_fields() -> None:
    """Whatever an emulator sends, reading it does not fail."""
    facts = KeyFacts.from_metadata(
        {"KeyId": 3, "Enabled": "yes", "EncryptionAlgorithms": "x"}
    )

    assert facts == KeyFacts()
    assert facts.is_symmetric is None
    assert OTHER != KEY
