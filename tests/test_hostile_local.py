"""Hostile input for the embedded local KMS (``kms_reencrypt.local``):
every public entry point fuzzed with hypothesis, and the HTTP surface hit
the way a hostile client would.

* ``LocalKms(...)``, its methods, ``Faults(...)`` and ``LocalKmsStats(...)``
  with arguments of any type and value end in a result or in the errors
  their docstrings name (``ConfigurationError``, ``KmsError``, ...).
* Raw HTTP requests of any shape (any method, target, header, body,
  ``Content-Length``) get a complete KMS-style JSON answer: a success, or
  a 4xx whose ``__type`` is a code the real service sends for that
  operation. Never a 5xx, a dropped connection or a hang (every socket
  has a timeout), and never a Python exception in the server's log.
* ReEncrypt through botocore with random but well-typed members ends in
  a success that decrypts, or in a ``ClientError`` whose code real KMS
  returns for ReEncrypt: one of botocore's model for the operation, or
  one of the codes KMS sends unmodeled (docs/local-kms.md).
* With random faults injected, only those faults reset connections or
  answer 5xx, and the counters account for each of them.

The server still re-encrypts through the library after the fuzzing. The
last section holds one fixed example of each escape the fuzzing found.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import math
import socket
import string
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from hypothesis import event, given
from hypothesis import strategies as st
from test_hostile import HUGE_TEXT, _mixed, any_text, hostile, junk

from kms_reencrypt import ConfigurationError, ReEncryptResult
from kms_reencrypt._cli import main
from kms_reencrypt.local import Faults, KmsError, LocalKms, LocalKmsStats
from kms_reencrypt.local._errors import http_status
from kms_reencrypt.local._faults import MAX_LATENCY, FaultInjector
from kms_reencrypt.local._keys import BLOB_MAGIC, KEY_STATES
from kms_reencrypt.local._operations import OPERATIONS

#: Seconds any socket of these tests waits: a hang fails the test.
TIMEOUT = 10.0
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
CONTEXT = {"tenant": "acme", "ü": "ß\x00"}
PLAINTEXT = b"hostile local plaintext"

_MODEL = botocore.session.Session().get_service_model("kms")
#: Codes KMS sends that its model does not name, and the
#: ones every JSON 1.1 service sends for a request it cannot read.
UNMODELED = frozenset(
    {
        "ValidationException",
        "SerializationException",
        "AccessDeniedException",
        "UnknownOperationException",
    }
)
#: Server faults: only an injected fault may answer them, never a bug.
SERVER_FAULTS = frozenset(
    {
        "KMSInternalException",
        "DependencyTimeoutException",
        "KeyUnavailableException",
    }
)


def codes_of(operation: str) -> frozenset[str]:
    """The error codes real KMS can answer an operation with (its model's
    errors and the unmodeled ones), server faults left out."""
    modeled = {
        shape.name for shape in _MODEL.operation_model(operation).error_shapes
    }
    return frozenset(modeled | UNMODELED) - SERVER_FAULTS


RE_ENCRYPT_CODES = codes_of("ReEncrypt")
PROTOCOL_CODES = frozenset({"SerializationException", "ValidationException"})
UNKNOWN_CODES = frozenset({"UnknownOperationException"})


# -- fixtures ------------------------------------------------------------


class _Records(logging.Handler):
    """Keeps what the local KMS logs at WARNING and above: a Python
    exception in a request is logged there."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def server_log() -> Iterator[_Records]:
    handler = _Records()
    logger = logging.getLogger("kms_reencrypt.local")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture(scope="module")
def kms(server_log: _Records) -> Iterator[LocalKms]:
    """One local KMS for the module; the keys of ``world`` are never put
    in another state."""
    with LocalKms() as local:
        yield local


@pytest.fixture(scope="module")
def world(kms: LocalKms) -> dict[str, Any]:
    """Keys of every kind, real ciphertexts, a grant token, clients."""
    raw = kms.kms_client(config=NO_RETRIES)
    source = kms.create_key(alias="alias/hostile-local-source")
    destination = kms.create_key(alias="alias/hostile-local-destination")
    rsa = kms.create_key("RSA_2048")
    blob = raw.encrypt(
        KeyId=source["KeyId"], Plaintext=PLAINTEXT, EncryptionContext=CONTEXT
    )["CiphertextBlob"]
    rsa_blob = raw.encrypt(
        KeyId=rsa["KeyId"],
        Plaintext=PLAINTEXT,
        EncryptionAlgorithm="RSAES_OAEP_SHA_256",
    )["CiphertextBlob"]
    disabled = kms.create_key()["KeyId"]
    kms.set_key_state(disabled, "Disabled")
    pending = kms.create_key()["KeyId"]
    kms.set_key_state(pending, "PendingDeletion")
    grant = raw.create_grant(
        KeyId=source["KeyId"],
        GranteePrincipal="arn:aws:iam::111122223333:role/hostile",
        Operations=["ReEncryptFrom", "ReEncryptTo"],
    )["GrantToken"]
    return {
        "raw": raw,
        "facade": kms.client(),
        "source": source["KeyId"],
        "source_arn": source["Arn"],
        "destination": destination["KeyId"],
        "destination_arn": destination["Arn"],
        "rsa": rsa["KeyId"],
        "hmac": kms.create_key("HMAC_256", "GENERATE_VERIFY_MAC")["KeyId"],
        "ecc": kms.create_key("ECC_NIST_P256", "SIGN_VERIFY")["KeyId"],
        "mrk": kms.create_key(multi_region=True)["KeyId"],
        "disabled": disabled,
        "pending": pending,
        "blob": blob,
        "rsa_blob": rsa_blob,
        "grant": grant,
    }


def _still_serves(kms: LocalKms, world: dict[str, Any]) -> None:
    """A real ReEncrypt through the library, on a new connection."""
    result = kms.client().re_encrypt(
        CiphertextBlob=world["blob"],
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=world["destination"],
    )
    assert isinstance(result, ReEncryptResult)
    assert world["destination_arn"] == result.key_id


def _no_internal_errors(log: _Records) -> None:
    messages = [record.getMessage() for record in log.records]
    log.records.clear()
    assert [] == messages


# -- strategies ----------------------------------------------------------

#: Any code point but lone surrogates (botocore would escape them and the
#: server answer SerializationException): NUL, controls, astral planes.
TYPED_CHAR = st.characters(exclude_categories=["Cs"])
typed_text = st.text(TYPED_CHAR, min_size=1, max_size=30)
floats = st.floats()
#: Numbers JSON can carry (up to 4300 digits), and 10**5000, which has
#: no repr: messages must not need one. It is built by a map, as
#: hypothesis shows the values of a sampled_from in its reports.
json_ints = st.sampled_from([10**100, -(10**100), 2**63, -1, 10**4000])
big_ints = st.one_of(json_ints, st.just(5000).map(lambda n: 10**n))
#: Hosts never resolved by DNS: loopback literals, or text with a
#: character no host name has (the constructor refuses it).
_HOST_CHARS = set(string.ascii_letters + string.digits + ".-:")
hosts = _mixed(
    st.sampled_from(["127.0.0.1", "localhost", "::1"]),
    st.one_of(
        junk.filter(
            lambda v: (
                not isinstance(v, str)
                or not v
                or len(v) > 253
                or not set(v) <= _HOST_CHARS
            )
        ),
        st.sampled_from(["", "\x00", "127.0.0.1\x00", "\ud800", " ", "a b"]),
    ),
)


def _numbers(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return _mixed(
        valid,
        st.one_of(
            floats,
            big_ints,
            st.sampled_from([math.nan, math.inf, -math.inf, -0.0, True]),
            junk,
        ),
    )


fractions = _numbers(st.floats(0, 1))
fault_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "latency": _numbers(st.floats(0, 0.01)),
        "max_rps": _numbers(st.one_of(st.none(), st.floats(1, 1e6))),
        "throttle_fraction": fractions,
        "server_error_fraction": fractions,
        "reset_fraction": fractions,
        "response_reset_fraction": fractions,
        "seed": _mixed(st.one_of(st.none(), st.integers())),
    },
)


# -- LocalKms, Faults and LocalKmsStats from Python -----------------------

#: Stands for the port of the module's running server.
_IN_USE = object()


def _port(kms: LocalKms) -> int:
    return int(kms.endpoint_url.rsplit(":", 1)[1])


@hostile(40)
@given(data=st.data())
def test_local_kms_constructor_raises_only_configuration_error(
    kms: LocalKms, world: dict[str, Any], data: st.DataObject
) -> None:
    """``LocalKms(...)`` with any argument: an instance, or
    ConfigurationError; ``start`` then serves, or raises OSError (the
    port cannot be bound), and a started one answers a real request."""
    kwargs = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "region": _mixed(
                    st.sampled_from(
                        ["us-east-1", "eu-west-1", "cn-north-1", "local"]
                    )
                ),
                "account_id": _mixed(
                    st.text("0123456789", min_size=12, max_size=12)
                ),
                "host": hosts,
                "port": _mixed(
                    st.sampled_from([0, _IN_USE]),
                    st.one_of(
                        st.sampled_from([-1, 65536, 2**16 + 80, True]),
                        big_ints,
                        junk,
                    ),
                ),
                "faults": _mixed(st.sampled_from([None, Faults()])),
            },
        )
    )
    if kwargs.get("port") is _IN_USE:
        kwargs["port"] = _port(kms)  # the shared server's
    try:
        local = LocalKms(**kwargs)
    except ConfigurationError as error:
        refused: ConfigurationError | None = error
    else:
        refused = None
    if refused is not None:
        event(f"refused: {refused.option}")
        assert refused.option in kwargs, str(refused)
        return
    assert repr(local)
    if local._port == 0:
        with pytest.raises(RuntimeError):
            local.endpoint_url  # noqa: B018 - documented to raise
    try:
        local.start()
    except OSError as error:
        event(f"start: {type(error).__name__}")
        assert not local.running
        return
    try:
        event("serves")
        key = local.create_key()["Arn"]
        status, _, payload = _post(local, "Encrypt", {"KeyId": key})
        assert 400 == status
        assert "ValidationException" == json.loads(payload)["__type"]
        blob = local._operations.encrypt({"KeyId": key, "Plaintext": "cA=="})
        if data.draw(st.booleans(), label="restart"):
            # Stopped twice, then started again: same port, same keys.
            url = local.endpoint_url
            local.stop()
            local.stop()
            assert not local.running
            with local:
                assert url == local.endpoint_url
                assert 200 == _post(local, "Decrypt", blob)[0]
            local.start()
        status, _, payload = _post(local, "Decrypt", blob)
        assert (200, key) == (status, json.loads(payload)["KeyId"])
    finally:
        local.stop()
    _still_serves(kms, world)


def _key_ids(world: dict[str, Any]) -> st.SearchStrategy[Any]:
    return _mixed(
        st.sampled_from(
            [
                world["source"],
                world["source_arn"],
                "alias/hostile-local-source",
                "alias/aws/s3",
                "alias/missing",
                "1234abcd-12ab-34cd-56ef-1234567890ab",
            ]
        )
    )


@hostile(80)
@given(data=st.data())
def test_local_kms_methods_raise_only_their_documented_errors(
    kms: LocalKms,
    world: dict[str, Any],
    server_log: _Records,
    data: st.DataObject,
) -> None:
    """``create_key``, ``describe_key``, ``set_key_state``,
    ``kms_client``, ``client``, the ``faults`` setter and ``stats``, with
    any arguments: a result, or the errors their docstrings name."""
    method = data.draw(
        st.sampled_from(
            [
                "create_key",
                "describe_key",
                "set_key_state",
                "kms_client",
                "client",
                "faults",
            ]
        ),
        label="method",
    )
    event(method)
    scratch = kms.create_key()["KeyId"]
    outcome = "ok"
    created = 0
    answered: KmsError | None = None
    try:
        if method == "create_key":
            args = data.draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "key_spec": _mixed(
                            st.sampled_from(
                                [
                                    "SYMMETRIC_DEFAULT",
                                    "RSA_2048",
                                    "ECC_NIST_P256",
                                    "HMAC_256",
                                    "SM2",
                                    "ML_KEM_512",
                                ]
                            )
                        ),
                        "key_usage": _mixed(
                            st.sampled_from(
                                [
                                    "ENCRYPT_DECRYPT",
                                    "SIGN_VERIFY",
                                    "GENERATE_VERIFY_MAC",
                                    "KEY_AGREEMENT",
                                ]
                            )
                        ),
                        "multi_region": _mixed(st.booleans()),
                        "alias": _mixed(
                            st.one_of(
                                st.none(),
                                st.text(
                                    string.ascii_letters + "/_-:", max_size=20
                                ).map(lambda name: f"alias/{name}"),
                                st.just("alias/hostile-local-source"),
                                st.just("alias/aws/x"),
                            )
                        ),
                        "description": _mixed(
                            st.one_of(any_text, st.just("d" * 8193))
                        ),
                    },
                )
            )
            keys_before = len(kms._store.all_keys())
            try:
                made = kms.create_key(**args)
            finally:
                # A refused call created nothing; a good one one key.
                created = len(kms._store.all_keys()) - keys_before
            assert 1 == created
            assert made == kms.describe_key(made["Arn"])
            if args.get("alias") is not None:
                assert made == kms.describe_key(args["alias"])
        elif method == "describe_key":
            found = kms.describe_key(data.draw(_key_ids(world)))
            assert found["Arn"].startswith("arn:aws:kms:us-east-1:")
        elif method == "set_key_state":
            key_id = data.draw(
                _mixed(st.sampled_from([scratch, f"alias/{scratch}"]))
            )
            state = data.draw(_mixed(st.sampled_from(KEY_STATES)))
            try:
                kms.set_key_state(key_id, state)
            except KmsError:
                raise
            except ValueError:
                outcome = "ValueError"
                assert state not in KEY_STATES
            else:
                assert state == kms.describe_key(scratch)["KeyState"]
        elif method in ("kms_client", "client"):
            config = data.draw(
                _mixed(st.sampled_from([None, NO_RETRIES, Config()]))
            )
            made = getattr(kms, method)(config=config)
            assert made is not None
        else:
            faults = data.draw(_mixed(st.builds(Faults)))
            before = kms.faults
            try:
                kms.faults = faults
            except ConfigurationError as error:
                outcome = f"ConfigurationError {error.option}"
                assert before is kms.faults
            else:
                assert (Faults() if faults is None else faults) == kms.faults
                kms.faults = Faults()
    except KmsError as error:
        answered = error
        outcome = f"KmsError {error.code}"
    except ConfigurationError as error:
        outcome = f"ConfigurationError {error.option}"
    event(outcome)
    if answered is not None:
        assert method in ("create_key", "describe_key", "set_key_state")
        allowed = codes_of("CreateKey") | codes_of("CreateAlias")
        assert answered.code in allowed | codes_of("DescribeKey"), answered
        assert isinstance(answered.message, str)
        assert answered.status < 500
        assert 0 == created, "a refused create_key made a key"
    if outcome.startswith("ConfigurationError"):
        expected = "config" if method != "faults" else "faults"
        assert f"ConfigurationError {expected}" == outcome

    stats = kms.stats
    assert stats.total_requests >= 0
    assert repr(kms)
    _no_internal_errors(server_log)


@hostile(150)
@given(kwargs=fault_kwargs, now=st.floats(0, 1e9))
def test_faults_constructor_raises_only_configuration_error(
    kwargs: dict[str, Any], now: float
) -> None:
    """``Faults(...)`` with any value: an instance whose every decision is
    sane (a finite delay, a known error), or ConfigurationError, which is
    a ValueError as documented."""
    try:
        faults = Faults(**kwargs)
    except ConfigurationError as error:
        refused: ConfigurationError | None = error
    else:
        refused = None
    if refused is not None:
        assert isinstance(refused, ValueError)
        assert refused.option in kwargs, str(refused)
        event(f"refused: {refused.option}")
        return
    event("faults")
    assert repr(faults)
    assert hash(faults) == hash(Faults(**kwargs))
    clock = iter([now + step / 10 for step in range(100)])
    injector = FaultInjector(faults, clock=lambda: next(clock))
    for _ in range(20):
        decision = injector.decide()
        assert math.isfinite(decision.delay)
        assert 0 <= decision.delay <= 86_400
        assert decision.error_code in (
            None,
            "ThrottlingException",
            *SERVER_FAULTS,
        )
    counted = injector.snapshot()
    assert 20 >= sum(
        (
            counted.throttled,
            counted.server_errors,
            counted.resets,
            counted.response_resets,
        )
    )


@hostile(100)
@given(
    kwargs=st.fixed_dictionaries(
        {
            "requests": _mixed(
                st.dictionaries(
                    st.sampled_from(sorted(OPERATIONS)), st.integers(0, 99)
                )
            )
        },
        optional={
            name: _mixed(st.integers(0, 99))
            for name in (
                "throttled",
                "server_errors",
                "resets",
                "response_resets",
            )
        },
    )
)
def test_local_kms_stats_constructor_raises_only_configuration_error(
    kwargs: dict[str, Any],
) -> None:
    """``LocalKmsStats(...)``: a snapshot whose total adds up, or
    ConfigurationError."""
    try:
        stats = LocalKmsStats(**kwargs)
    except ConfigurationError as error:
        refused: ConfigurationError | None = error
    else:
        refused = None
    if refused is not None:
        assert refused.option in kwargs, str(refused)
        event(f"refused: {refused.option}")
        return
    event("stats")
    assert sum(kwargs["requests"].values()) == stats.total_requests
    assert repr(stats)
    with pytest.raises(TypeError):
        stats.requests["ReEncrypt"] = 1  # type: ignore[index]


# -- the HTTP surface, as a hostile client hits it -------------------------

#: The members each operation reads.
FIELDS: dict[str, tuple[str, ...]] = {
    "ReEncrypt": (
        "CiphertextBlob",
        "SourceEncryptionContext",
        "SourceKeyId",
        "DestinationKeyId",
        "DestinationEncryptionContext",
        "SourceEncryptionAlgorithm",
        "DestinationEncryptionAlgorithm",
        "GrantTokens",
        "DryRun",
        "DryRunModifiers",
    ),
    "Encrypt": (
        "KeyId",
        "Plaintext",
        "EncryptionContext",
        "EncryptionAlgorithm",
        "GrantTokens",
        "DryRun",
    ),
    "Decrypt": (
        "CiphertextBlob",
        "KeyId",
        "EncryptionContext",
        "EncryptionAlgorithm",
        "GrantTokens",
        "DryRun",
    ),
    "GenerateDataKey": (
        "KeyId",
        "KeySpec",
        "NumberOfBytes",
        "EncryptionContext",
        "GrantTokens",
        "DryRun",
    ),
    "CreateKey": (
        "KeySpec",
        "CustomerMasterKeySpec",
        "KeyUsage",
        "Origin",
        "Description",
        "MultiRegion",
        "Tags",
        "CustomKeyStoreId",
    ),
    "DescribeKey": ("KeyId", "GrantTokens"),
    "DisableKey": ("KeyId",),
    "ScheduleKeyDeletion": ("KeyId", "PendingWindowInDays"),
    "CancelKeyDeletion": ("KeyId",),
    "CreateAlias": ("AliasName", "TargetKeyId"),
    "DeleteAlias": ("AliasName",),
    "ListKeys": ("Limit", "Marker"),
    "ListAliases": ("KeyId", "Limit", "Marker"),
    "CreateGrant": ("KeyId", "GranteePrincipal", "Operations"),
    "GetPublicKey": ("KeyId",),
}
FIELDS["GenerateDataKeyWithoutPlaintext"] = FIELDS["GenerateDataKey"]
FIELDS["EnableKey"] = FIELDS["DisableKey"]
#: Operations that change a key or an alias: they only get the scratch
#: key of their example, never a key of ``world``.
MUTATING = frozenset(
    {
        "EnableKey",
        "DisableKey",
        "ScheduleKeyDeletion",
        "CancelKeyDeletion",
        "CreateAlias",
        "DeleteAlias",
        "CreateGrant",
    }
)
ALGORITHMS = ["SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
JSON_TYPE = "application/x-amz-json-1.1"

#: Any JSON value, text of any code point (lone surrogates too, sent as
#: \\ud800 escapes), numbers of any size.
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        json_ints,
        st.floats(),
        any_text,
        st.sampled_from(["", "\x00", HUGE_TEXT, "AQICAH==", "not base64!"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(any_text, inner, max_size=4),
    ),
    max_leaves=8,
)


def _b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode("ascii")


def _forged(key_id: str, rest: bytes) -> bytes:
    """A ciphertext whose header names a real key: the rest is noise."""
    return BLOB_MAGIC + key_id.encode("ascii")[:36].ljust(36, b"0") + rest


def _valid_member(
    field: str, operation: str, world: dict[str, Any], scratch: str
) -> st.SearchStrategy[Any]:
    """A value of the right type and plausible content for one member."""
    if field in ("KeyId", "SourceKeyId", "DestinationKeyId", "TargetKeyId"):
        if operation in MUTATING:
            return st.sampled_from([scratch, f"alias/{scratch}", "x"])
        return st.sampled_from(
            [
                world["source"],
                world["destination_arn"],
                world["rsa"],
                world["hmac"],
                world["disabled"],
                "alias/hostile-local-source",
                "alias/aws/s3",
                "alias/missing",
                "k" * 2049,
            ]
        )
    if field == "CiphertextBlob":
        return st.one_of(
            st.sampled_from([world["blob"], world["rsa_blob"]]),
            st.builds(
                _forged,
                st.sampled_from([world["source"], world["rsa"], scratch]),
                st.binary(max_size=64),
            ),
            st.binary(max_size=7000).map(lambda b: b or b"\x00"),
        ).map(_b64)
    if field == "Plaintext":
        return st.binary(min_size=0, max_size=5000).map(_b64)
    if field.endswith("Context"):
        return st.one_of(
            st.just(CONTEXT), st.dictionaries(any_text, any_text, max_size=3)
        )
    if field.endswith("Algorithm"):
        return st.sampled_from([*ALGORITHMS, "SM2PKE", "rsaes_oaep_sha_1"])
    if field == "GrantTokens":
        return st.one_of(
            st.just([world["grant"]]),
            st.lists(st.text(max_size=9), max_size=11),
            st.just(["g" * 8193]),
        )
    if field in ("DryRun", "MultiRegion"):
        return st.booleans()
    if field == "DryRunModifiers":
        return st.sampled_from([["IGNORE_CIPHERTEXT"], ["BOGUS"], []])
    if field in ("KeySpec", "CustomerMasterKeySpec"):
        if operation.startswith("Generate"):
            return st.sampled_from(["AES_256", "AES_128", "RSA_2048"])
        # No RSA_3072/4096: making one takes a second or more.
        return st.sampled_from(
            ["SYMMETRIC_DEFAULT", "HMAC_256", "ECC_NIST_P256", "SM2", ""]
        )
    if field == "KeyUsage":
        return st.sampled_from(
            ["ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC"]
        )
    if field == "Origin":
        return st.sampled_from(["AWS_KMS", "EXTERNAL"])
    if field == "Tags":
        return st.just([{"TagKey": "k", "TagValue": "v"}])
    if field in ("NumberOfBytes", "PendingWindowInDays", "Limit"):
        return st.integers(-2, 1030)
    if field == "Marker":
        return st.sampled_from(["0", "1", "-1", "x"])
    if field == "AliasName":
        return st.text(string.ascii_letters + "_-", max_size=20).map(
            lambda name: f"alias/fuzz-{name}"
        )
    if field == "GranteePrincipal":
        return st.just("arn:aws:iam::111122223333:role/hostile")
    if field == "Operations":
        return st.sampled_from([["Decrypt"], ["ReEncryptFrom", "Nope"]])
    return st.text(max_size=20)


def _json_body(
    operation: str, world: dict[str, Any], scratch: str
) -> st.SearchStrategy[bytes]:
    members = st.fixed_dictionaries(
        {},
        optional={
            field: _mixed(
                _valid_member(field, operation, world, scratch), json_values
            )
            for field in FIELDS.get(operation, ("KeyId",))
        },
    )
    extra = st.dictionaries(any_text, json_values, max_size=2)
    request = st.builds(lambda m, e: {**e, **m}, members, extra)
    encodings = {
        "ascii": lambda r: json.dumps(r).encode(),
        # Lone surrogates written raw: invalid UTF-8.
        "utf-8": lambda r: json.dumps(r, ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        ),
        "utf-16": lambda r: json.dumps(r).encode("utf-16"),
    }
    return st.tuples(
        request, st.sampled_from(["ascii"] * 6 + ["utf-8", "utf-16"])
    ).map(lambda pair: encodings[pair[1]](pair[0]))


NESTED = b"[" * 100_000 + b"]" * 100_000
SPECIAL_BODIES = [
    b"",
    b"{",
    b"null",
    b"[]",
    b'"text"',
    b"1",
    b"NaN",
    b"\xef\xbb\xbf{}",
    b"\xff\xfe{\x00}\x00",
    b"{}" + b"\x00" * 50,
    NESTED,
    b'{"KeyId":' + NESTED + b"}",
    b'{"KeyId": ' + b"9" * 5000 + b"}",
    b'{"Limit": 1' + b"0" * 5000 + b', "Marker": 1e999}',
    b'{"PendingWindowInDays": 1' + b"0" * 5000 + b"}",
    b'{"NumberOfBytes": -1e400, "KeyId": NaN, "DryRun": Infinity}',
    b'{"CiphertextBlob": "not base64!", "DestinationKeyId": "x"}',
    b'{"CiphertextBlob": "QUJD", "DestinationKeyId": "x"}',
    b'{"CiphertextBlob": "\\u00e9\\u00e9==", "DestinationKeyId": "x"}',
    b'{"KeyId": "\\ud800", "AliasName": "alias/\\udfff"}',
    json.dumps({"KeyId": "\ud800"}).encode("utf-16"),
    json.dumps({"Tags": 5, "Description": "\x00"}).encode(),
    json.dumps({"Tags": [1, "x", {"TagKey": 2}]}).encode(),
    json.dumps({"Tags": {"TagKey": "k"}}).encode(),
    json.dumps({"Description": "d" * 2_000_000}).encode(),
]
TARGETS = [
    "",
    "TrentService.",
    "TrentService.Bogus",
    "TrentService.ReEncrypt\x00",
    "TrentService.reencrypt",
    "Other.ReEncrypt",
    "TrentService." + "R" * 5000,
    "\x00",
    "TrentService.__init__",
    "TrentService.create_key",
    "TrentService.Sign",
]
header_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"),
    max_size=40,
)


@st.composite
def raw_requests(
    draw: st.DrawFn, world: dict[str, Any], scratch: str
) -> tuple[bytes, bool, str, str]:
    """Bytes of one HTTP request; whether to half-close after sending;
    the method; the operation named (or "")."""
    operation = draw(st.sampled_from(sorted(OPERATIONS)))
    method = draw(
        _mixed(
            st.just("POST"),
            st.sampled_from(["GET", "PUT", "DELETE", "OPTIONS", "BREW"]),
            odds=8,
        )
    )
    target = draw(
        _mixed(
            st.just(f"TrentService.{operation}"),
            st.one_of(st.sampled_from(TARGETS), header_text, st.none()),
            odds=8,
        )
    )
    body = draw(
        _mixed(
            _json_body(operation, world, scratch),
            st.one_of(st.sampled_from(SPECIAL_BODIES), st.binary()),
        )
    )
    length = draw(
        _mixed(
            st.just(str(len(body))),
            st.sampled_from(
                [
                    None,
                    "abc",
                    "-1",
                    "1e3",
                    "",
                    " ",
                    "0x10",
                    str(len(body) + 7),
                    str(max(len(body) - 1, 0)),
                    "9" * 30,
                    str(2**63),
                    str(10**12),
                    "\u0661",
                ]
            ),
            odds=8,
        )
    )
    headers = [("Host", "127.0.0.1")]
    if target is not None:
        headers.append(("X-Amz-Target", target))
    content_type = draw(
        _mixed(
            st.just(JSON_TYPE),
            st.sampled_from(["", "text/plain", "application/json"]),
            odds=8,
        )
    )
    headers.append(("Content-Type", content_type))
    if length is not None:
        headers.append(("Content-Length", length))
    headers.extend(
        draw(
            st.lists(
                st.sampled_from(
                    [
                        ("Transfer-Encoding", "chunked"),
                        ("Connection", "close"),
                        ("Content-Length", "3"),
                        ("X-Amz-Target", "TrentService.DescribeKey"),
                        ("X-Junk", "j" * 70_000),
                        ("Expect", "100-continue"),
                    ]
                ),
                max_size=1,
            )
        )
    )
    path = draw(
        _mixed(st.just("/"), st.sampled_from(["/x?y=1", "*", "//"]), odds=8)
    )
    version = draw(
        _mixed(
            st.just("HTTP/1.1"),
            st.sampled_from(["HTTP/1.0", "HTTP/9", "HTTP/1.1 x"]),
            odds=8,
        )
    )
    head = f"{method} {path} {version}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers
    )
    raw = head.encode("utf-8") + b"\r\n" + body
    # A body shorter than its Content-Length: say that nothing more is
    # coming, as a client that gave up would.
    half_close = length is not None and length.strip().isdigit()
    # The server reads the first X-Amz-Target header.
    named = next((v for k, v in headers if k == "X-Amz-Target"), "")
    return raw, half_close, method, named


def _exchange(
    kms: LocalKms, raw: bytes, *, half_close: bool, method: str
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """Send raw bytes; return the complete first answer. A dropped
    connection or a hang raises."""
    host = kms.endpoint_url.removeprefix("http://").rsplit(":", 1)[0]
    address = (host.strip("[]"), _port(kms))
    with socket.create_connection(address, timeout=TIMEOUT) as s:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            # The server may answer and close before reading all of it;
            # the answer must still be readable.
            s.sendall(raw)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        answer = http.client.HTTPResponse(s, method=method)
        answer.begin()
        return answer.status, answer.headers, answer.read()


def _post(
    kms: LocalKms,
    operation: str,
    body: Any,
    *,
    headers: str = "",
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """POST a body (bytes, or an object sent as JSON) on a new
    connection, as a plain HTTP client would."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    host = kms.endpoint_url.removeprefix("http://").rsplit(":", 1)[0]
    request = (
        f"POST / HTTP/1.1\r\nHost: {host}\r\n"
        f"X-Amz-Target: TrentService.{operation}\r\n"
        f"Content-Type: {JSON_TYPE}\r\n"
        f"Content-Length: {len(raw)}\r\n{headers}\r\n"
    ).encode() + raw
    return _exchange(kms, request, half_close=False, method="POST")


def _check_answer(
    status: int, headers: http.client.HTTPMessage, payload: bytes, op: str
) -> str:
    """A KMS-style answer: JSON, and an error code the real service
    sends for the operation, with that code's status."""
    assert JSON_TYPE == headers["Content-Type"]
    assert headers["x-amzn-RequestId"]
    assert str(len(payload)) == headers["Content-Length"]
    body = json.loads(payload)
    assert isinstance(body, dict)
    if status == 200:
        assert "__type" not in body
        return "200"
    code = body["__type"]
    assert isinstance(body["message"], str)
    allowed = codes_of(op) if op in OPERATIONS else UNKNOWN_CODES
    assert code in allowed | PROTOCOL_CODES | UNKNOWN_CODES, body
    assert http_status(code) == status, body
    assert status < 500, body
    return code


@hostile(250)
@given(data=st.data())
def test_any_http_request_gets_a_kms_json_answer(
    kms: LocalKms,
    world: dict[str, Any],
    server_log: _Records,
    data: st.DataObject,
) -> None:
    """Raw HTTP of any shape: a complete KMS-style JSON answer, never a
    5xx, a dropped connection or a hang; the server answers the next
    request on a new connection."""
    scratch = kms.create_key()["KeyId"]
    raw, half_close, method, target = data.draw(raw_requests(world, scratch))
    operation = (
        target.removeprefix("TrentService.")
        if target.startswith("TrentService.") and method == "POST"
        else ""
    )

    status, headers, payload = _exchange(
        kms, raw, half_close=half_close, method=method
    )

    event(_check_answer(status, headers, payload, operation))
    _no_internal_errors(server_log)
    status, _, _ = _post(kms, "DescribeKey", {"KeyId": world["source"]})
    assert 200 == status


def test_the_server_serves_after_the_http_fuzzing(
    kms: LocalKms, world: dict[str, Any], server_log: _Records
) -> None:
    """After everything above: ReEncrypt through the library, and only
    real operation names in the request counters."""
    _still_serves(kms, world)
    assert set(kms.stats.requests) <= {*OPERATIONS, "<unknown>"}
    _no_internal_errors(server_log)


# -- ReEncrypt through botocore, typed but random ------------------------


def _malformed(call: dict[str, Any]) -> list[str]:
    """The members of a ReEncrypt request that break a constraint of the
    model (length, enum, required): the service answers those
    ValidationException before anything else."""
    ignore = call.get("DryRun") is True and "IGNORE_CIPHERTEXT" in call.get(
        "DryRunModifiers", []
    )
    blob = call.get("CiphertextBlob")
    tokens = call.get("GrantTokens", [])
    enums = set(ALGORITHMS) | {"SM2PKE"}
    broken = {
        "CiphertextBlob": (
            not 1 <= len(blob) <= 6144 if blob is not None else not ignore
        ),
        "DestinationKeyId": len(call["DestinationKeyId"]) > 2048,
        "SourceKeyId": (
            len(call["SourceKeyId"]) > 2048
            if "SourceKeyId" in call
            else ignore
        ),
        "SourceEncryptionAlgorithm": call.get(
            "SourceEncryptionAlgorithm", "SYMMETRIC_DEFAULT"
        )
        not in enums,
        "DestinationEncryptionAlgorithm": call.get(
            "DestinationEncryptionAlgorithm", "SYMMETRIC_DEFAULT"
        )
        not in enums,
        "GrantTokens": len(tokens) > 10 or any(len(t) > 8192 for t in tokens),
        "DryRunModifiers": any(
            m != "IGNORE_CIPHERTEXT" for m in call.get("DryRunModifiers", [])
        ),
    }
    return [name for name, bad in broken.items() if bad]


def _good(call: dict[str, Any], world: dict[str, Any]) -> bool:
    """True for a request that must succeed: the real ciphertext and its
    context, an enabled symmetric destination, the right source key,
    symmetric algorithms, the real grant token."""
    return not _malformed(call) and (
        call.get("CiphertextBlob") == world["blob"]
        and call.get("SourceEncryptionContext") == CONTEXT
        and call["DestinationKeyId"]
        in (
            world["destination"],
            world["destination_arn"],
            "alias/hostile-local-destination",
            world["source"],
            world["mrk"],
        )
        and call.get("SourceKeyId", world["source"])
        in (world["source"], world["source_arn"], "alias/hostile-local-source")
        and call.get("SourceEncryptionAlgorithm", "SYMMETRIC_DEFAULT")
        == "SYMMETRIC_DEFAULT"
        and call.get("DestinationEncryptionAlgorithm", "SYMMETRIC_DEFAULT")
        == "SYMMETRIC_DEFAULT"
        and call.get("GrantTokens", [world["grant"]]) == [world["grant"]]
        and not set(call.get("DryRunModifiers", [])) - {"IGNORE_CIPHERTEXT"}
    )


def _typed_requests(world: dict[str, Any]) -> st.SearchStrategy[Any]:
    """ReEncrypt members of the right types: each one valid (a request
    that succeeds) three times in four, anything of its type otherwise."""
    key_ids = st.one_of(
        st.sampled_from(
            [
                *(
                    world[name]
                    for name in (
                        "source",
                        "source_arn",
                        "destination",
                        "destination_arn",
                        "rsa",
                        "hmac",
                        "ecc",
                        "mrk",
                        "disabled",
                        "pending",
                    )
                ),
                "alias/hostile-local-source",
                "alias/hostile-local-destination",
                "alias/aws/s3",
                "alias/missing",
                "arn:aws:kms:us-east-1:111122223333:alias/"
                "hostile-local-destination",
                world["destination_arn"].replace("us-east-1", "eu-west-1"),
                world["destination_arn"].replace("1111", "9999"),
                "k" * 2049,
            ]
        ),
        typed_text,
    )
    blob = world["blob"]
    blobs = st.one_of(
        st.sampled_from(
            [
                world["rsa_blob"],
                blob[:-1] + bytes([blob[-1] ^ 1]),
                blob[:80],
                base64.b64encode(blob),
                bytes(6145),
                b"",
                None,  # left out
            ]
        ),
        st.builds(
            _forged,
            st.sampled_from(
                [world[n] for n in ("source", "rsa", "hmac", "mrk")]
            ),
            st.binary(max_size=100),
        ),
        st.binary(max_size=300),
    )
    contexts = st.dictionaries(
        st.text(TYPED_CHAR, max_size=8),
        st.text(TYPED_CHAR, max_size=8),
        max_size=3,
    )
    algorithms = st.one_of(
        st.sampled_from([*ALGORITHMS, "SM2PKE", "symmetric_default"]),
        typed_text,
    )
    return st.fixed_dictionaries(
        {
            "DestinationKeyId": _mixed(
                st.sampled_from(
                    [
                        world["destination"],
                        world["destination_arn"],
                        "alias/hostile-local-destination",
                        world["source"],
                        world["mrk"],
                    ]
                ),
                key_ids,
            ),
            "CiphertextBlob": _mixed(st.just(blob), blobs),
            "SourceEncryptionContext": _mixed(st.just(CONTEXT), contexts),
        },
        optional={
            "SourceKeyId": _mixed(
                st.sampled_from(
                    [
                        world["source"],
                        world["source_arn"],
                        "alias/hostile-local-source",
                    ]
                ),
                key_ids,
            ),
            "DestinationEncryptionContext": contexts,
            "SourceEncryptionAlgorithm": _mixed(
                st.just("SYMMETRIC_DEFAULT"), algorithms
            ),
            "DestinationEncryptionAlgorithm": _mixed(
                st.just("SYMMETRIC_DEFAULT"), algorithms
            ),
            "GrantTokens": _mixed(
                st.just([world["grant"]]),
                st.one_of(
                    st.lists(typed_text, max_size=11),
                    st.just(["g" * 8193]),
                ),
            ),
            "DryRun": st.booleans(),
            "DryRunModifiers": st.lists(
                st.sampled_from(["IGNORE_CIPHERTEXT", "BOGUS"]), max_size=2
            ),
        },
    ).map(
        # The members botocore would refuse: absent instead.
        lambda call: {k: v for k, v in call.items() if v is not None}
    )


@hostile(200)
@given(data=st.data())
def test_botocore_re_encrypt_answers_only_real_re_encrypt_codes(
    kms: LocalKms,
    world: dict[str, Any],
    server_log: _Records,
    data: st.DataObject,
) -> None:
    """ReEncrypt through ``kms_client()`` with random well-typed members:
    a new ciphertext that decrypts to the plaintext, or a ClientError
    whose code real KMS returns for ReEncrypt, never a server fault."""
    call = data.draw(_typed_requests(world))
    raw = world["raw"]
    malformed = _malformed(call)
    good = _good(call, world)

    try:
        answer = raw.re_encrypt(**call)
    except ClientError as error:
        response: dict[str, Any] | None = error.response  # type: ignore[assignment]
    else:
        response = None
    if response is not None:
        code = response["Error"]["Code"]
        status = response["ResponseMetadata"]["HTTPStatusCode"]
        assert code in RE_ENCRYPT_CODES, response
        assert http_status(code) == status
        if code == "DryRunOperationException":
            assert call.get("DryRun") is True
        # The service checks member constraints before anything else.
        if malformed:
            assert "ValidationException" == code, malformed
        if good:
            assert "DryRunOperationException" == code, response
        event(code)
    else:
        event("re-encrypted")
        assert not malformed
        assert call.get("DryRun") is not True
        assert call["CiphertextBlob"] in (world["blob"], world["rsa_blob"])
        decrypt: dict[str, Any] = {
            "CiphertextBlob": answer["CiphertextBlob"],
            "KeyId": answer["KeyId"],
            "EncryptionAlgorithm": answer["DestinationEncryptionAlgorithm"],
        }
        if answer["DestinationEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT":
            decrypt["EncryptionContext"] = call.get(
                "DestinationEncryptionContext", {}
            )
        assert PLAINTEXT == raw.decrypt(**decrypt)["Plaintext"]
    _no_internal_errors(server_log)


def test_the_server_serves_after_the_botocore_fuzzing(
    kms: LocalKms, world: dict[str, Any], server_log: _Records
) -> None:
    _still_serves(kms, world)
    _no_internal_errors(server_log)


# -- faults through the server ------------------------------------------


@hostile(25)
@given(
    faults=st.builds(
        Faults,
        latency=st.floats(0, 0.002),
        throttle_fraction=st.floats(0, 1),
        server_error_fraction=st.floats(0, 1),
        reset_fraction=st.floats(0, 0.5),
        response_reset_fraction=st.floats(0, 0.5),
        seed=st.integers(0, 2**32),
    ),
    operation=st.sampled_from(["Encrypt", "DescribeKey"]),
)
def test_only_injected_faults_drop_connections_or_answer_5xx(
    kms: LocalKms,
    world: dict[str, Any],
    server_log: _Records,
    faults: Faults,
    operation: str,
) -> None:
    """With random faults, each request gets a complete answer (a
    success, an injected ThrottlingException or server fault) or a reset;
    the counters account for every reset and injected error, and key
    management is never disturbed."""
    request = {"KeyId": world["source"], "Plaintext": "cA=="}
    before = kms.stats
    dropped = injected = 0
    kms.faults = faults
    try:
        for _ in range(6):
            try:
                status, _, payload = _post(kms, operation, request)
            except (ConnectionError, http.client.HTTPException):
                dropped += 1
                continue
            code = json.loads(payload).get("__type")
            if code is not None:
                assert code in {"ThrottlingException", *SERVER_FAULTS}
                assert http_status(code) == status
                injected += 1
    finally:
        kms.faults = Faults()
    after = kms.stats

    event(f"dropped {dropped}, injected {injected}")
    if operation == "DescribeKey":
        assert (0, 0) == (dropped, injected)
    assert dropped == (
        after.resets
        + after.response_resets
        - before.resets
        - before.response_resets
    )
    assert injected == (
        after.throttled
        + after.server_errors
        - before.throttled
        - before.server_errors
    )
    _no_internal_errors(server_log)


# -- regressions: what the fuzzing found, one fixed example each ---------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("region", None),
        ("region", "us east 1"),
        ("region", "\ud800"),
        ("account_id", False),
        ("account_id", "1234"),
        ("account_id", "\u0661" * 12),
        ("host", None),
        ("host", ""),
        ("host", "127.0.0.1\x00"),
        ("host", "k" * 100_000),
        ("port", -1),
        ("port", 65536),
        ("port", "80"),
        ("port", True),
        ("port", 10**100),
        pytest.param("port", 10**5000, id="port-10**5000"),
        ("faults", 1.5),
    ],
)
def test_local_kms_refuses_a_bad_option_at_once(
    option: str, value: Any
) -> None:
    """Each was accepted and failed later: an AttributeError at
    construction (region), ARNs naming account "False", a TypeError,
    OverflowError or socket error at ``start`` (host, port), an
    AttributeError on the first request (faults)."""
    with pytest.raises(ConfigurationError) as info:
        LocalKms(**{option: value})

    assert option == info.value.option
    assert isinstance(info.value, ValueError)


def test_an_ipv6_host_is_served() -> None:
    """The server listened on IPv4 only: ``host="::1"`` failed to start
    with a name resolution error although ``endpoint_url`` brackets it."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    with LocalKms(host="::1") as local:
        key = local.create_key()["KeyId"]

        status, _, payload = _post(local, "DescribeKey", {"KeyId": key})

    assert local.endpoint_url.startswith("http://[::1]:")
    assert 200 == status
    assert key == json.loads(payload)["KeyMetadata"]["KeyId"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"latency": math.nan},
        {"latency": math.inf},
        {"latency": 1e300},
        {"latency": 10**400},
        {"latency": -(10**5000)},
        {"latency": MAX_LATENCY + 1},
        {"latency": "1"},
        {"latency": True},
        {"max_rps": 10**400},
        {"max_rps": math.nan},
        {"max_rps": math.inf},
        {"throttle_fraction": None},
        {"reset_fraction": [0.5]},
        {"seed": [1]},
        {"seed": 1.5},
        {"seed": "\ud800"},
    ],
)
def test_faults_refuse_what_the_server_cannot_use(
    kwargs: dict[str, Any],
) -> None:
    """A NaN or infinite latency was accepted and made ``time.sleep`` fail
    in the server, which dropped the connection; so did a max_rps too
    large for a float. Wrong types failed with a TypeError, and a list
    seed only when a LocalKms was built."""
    with pytest.raises(ConfigurationError) as info:
        Faults(**kwargs)

    assert set(kwargs) == {info.value.option}
    assert isinstance(info.value, ValueError)


def test_faults_keep_numbers_as_floats() -> None:
    faults = Faults(latency=1, max_rps=2, throttle_fraction=0)

    assert (1.0, 2.0, 0.0) == (
        faults.latency,
        faults.max_rps,
        faults.throttle_fraction,
    )
    assert isinstance(faults.latency, float)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"requests": "ReEncrypt"},
        {"requests": {"ReEncrypt": -1}},
        {"requests": {"ReEncrypt": True}},
        {"requests": {1: 1}},
        {"requests": {}, "throttled": -1},
        {"requests": {}, "resets": 1.5},
    ],
)
def test_local_kms_stats_refuse_what_is_not_a_count(
    kwargs: dict[str, Any],
) -> None:
    with pytest.raises(ConfigurationError):
        LocalKmsStats(**kwargs)


def test_local_kms_methods_refuse_wrong_types_with_kms_errors(
    kms: LocalKms,
) -> None:
    """``set_key_state(None, ...)`` raised AttributeError; a faults
    setter given None a TypeError its docstring did not name; a lone
    surrogate in a description was stored."""
    with pytest.raises(KmsError) as no_key_id:
        kms.set_key_state(None, "Enabled")  # type: ignore[arg-type]
    with pytest.raises(KmsError) as key_id:
        kms.set_key_state(5, "Enabled")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="state must be one of"):
        kms.set_key_state(kms.create_key()["KeyId"], 5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError) as faults:
        kms.faults = 1.5  # type: ignore[assignment]
    with pytest.raises(KmsError) as description:
        kms.create_key(description="\ud800")

    assert "ValidationException" == no_key_id.value.code
    assert "SerializationException" == key_id.value.code
    assert "faults" == faults.value.option
    assert "SerializationException" == description.value.code


@pytest.mark.parametrize(
    ("alias", "code"),
    [
        ("alias/aws/mine", "InvalidAliasNameException"),
        ("alias/has space", "InvalidAliasNameException"),
        ("", "ValidationException"),
        (5, "SerializationException"),
        ("alias/hostile-local-source", "AlreadyExistsException"),
    ],
)
def test_create_key_with_a_bad_alias_makes_no_key(
    kms: LocalKms, world: dict[str, Any], alias: Any, code: str
) -> None:
    """The key was made first, then the alias refused: the caller got
    an error and a key it never heard of."""
    before = len(kms._store.all_keys())

    with pytest.raises(KmsError) as info:
        kms.create_key(alias=alias)

    assert code == info.value.code
    assert before == len(kms._store.all_keys())


def _raw(kms: LocalKms, request: bytes, method: str = "POST") -> Any:
    status, headers, payload = _exchange(
        kms, request, half_close=False, method=method
    )
    assert JSON_TYPE == headers["Content-Type"]
    # The rest of the request cannot be told from a next one.
    assert "close" == headers["Connection"]
    body = json.loads(payload)
    return status, body.get("__type")


def _head(length: str, extra: str = "") -> bytes:
    return (
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "X-Amz-Target: TrentService.DescribeKey\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        # int("abc") failed outside the handler: no answer at all.
        (_head("abc") + b"{}", (400, "SerializationException")),
        # rfile.read(-1) waited for the client to close: a hang.
        (_head("-1") + b"{}", (400, "SerializationException")),
        (_head("1e3") + b"{}", (400, "SerializationException")),
        (
            _head("2", "Content-Length: 3\r\n") + b"{}",
            (400, "SerializationException"),
        ),
        # bytes were allocated for the announced length: MemoryError or
        # OverflowError, no answer.
        (_head(str(10**12)) + b"{}", (400, "ValidationException")),
        (_head("9" * 30) + b"{}", (400, "ValidationException")),
        # the chunks were read as the next request.
        (
            b"POST / HTTP/1.1\r\nX-Amz-Target: TrentService.DescribeKey\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            (400, "SerializationException"),
        ),
        # http.server's own HTML error pages, some without a status line.
        (b"BREW / HTTP/1.1\r\n\r\n", (400, "UnknownOperationException")),
        (b"GARBAGE\r\n\r\n", (400, "SerializationException")),
        (b"\r\n\r\n", (400, "SerializationException")),
        (b"POST / HTTP/9\r\n\r\n", (400, "SerializationException")),
        (b"POST / HTTP/2.0\r\n\r\n", (400, "SerializationException")),
        (
            _head("2", f"X-Junk: {'j' * 70_000}\r\n") + b"{}",
            (400, "SerializationException"),
        ),
        (
            b"POST " + b"/" * 70_000 + b" HTTP/1.1\r\n\r\n",
            (400, "SerializationException"),
        ),
    ],
)
def test_unreadable_http_gets_a_json_answer(
    kms: LocalKms,
    world: dict[str, Any],
    server_log: _Records,
    request_bytes: bytes,
    expected: tuple[int, str],
) -> None:
    assert expected == _raw(kms, request_bytes)
    assert 200 == _post(kms, "DescribeKey", {"KeyId": world["source"]})[0]
    _no_internal_errors(server_log)


@pytest.mark.parametrize("padding", [1, 40])
def test_a_content_length_with_leading_zeros_is_still_its_number(
    kms: LocalKms, world: dict[str, Any], padding: int
) -> None:
    """``Content-Length: 000...0NN`` is the number NN (it was answered
    "longer than 1048576 bytes" once more than nine digits long)."""
    body = json.dumps({"KeyId": world["source"]}).encode()
    length = "0" * padding + str(len(body))

    status, _, payload = _exchange(
        kms, _head(length) + body, half_close=False, method="POST"
    )

    assert 200 == status, payload
    assert world["source"] in json.loads(payload)["KeyMetadata"]["Arn"]


def test_a_body_shorter_than_its_length_is_answered_when_the_client_stops(
    kms: LocalKms,
) -> None:
    status, _, payload = _exchange(
        kms, _head("50") + b'{"KeyId": "x"', half_close=True, method="POST"
    )

    assert (400, "SerializationException") == (
        status,
        json.loads(payload)["__type"],
    )


@pytest.mark.parametrize(
    ("operation", "body", "expected"),
    [
        # RecursionError: KMSInternalException 500 (botocore retries it)
        # and a traceback in the log.
        ("DescribeKey", NESTED, (400, "SerializationException")),
        (
            "DescribeKey",
            b'{"KeyId": ' + NESTED + b"}",
            (400, "SerializationException"),
        ),
        # UTF-16 hid the \ud800 escape from the lone-surrogate check; the
        # context then failed to encode: KMSInternalException 500.
        (
            "Encrypt",
            json.dumps(
                {
                    "KeyId": "alias/hostile-local-source",
                    "Plaintext": "cA==",
                    "EncryptionContext": {"a": "\ud800"},
                }
            ).encode("utf-16"),
            (400, "SerializationException"),
        ),
        ("DescribeKey", b'{"KeyId": NaN}', (400, "SerializationException")),
        # Tags of the wrong type: TypeError, KMSInternalException 500.
        ("CreateKey", b'{"Tags": 5}', (400, "SerializationException")),
        (
            "CreateKey",
            b'{"Tags": [{"TagKey": 1, "TagValue": "v"}]}',
            (400, "SerializationException"),
        ),
        (
            "CreateKey",
            b'{"Tags": [{"TagKey": "", "TagValue": "v"}]}',
            (400, "ValidationException"),
        ),
        # KeySpec "" was taken for the default.
        ("CreateKey", b'{"KeySpec": ""}', (400, "ValidationException")),
        (
            "CreateKey",
            b'{"CustomKeyStoreId": 5}',
            (400, "SerializationException"),
        ),
        # A negative marker paged from the end; a null Limit was refused,
        # a boolean one taken for 1.
        ("ListKeys", b'{"Marker": "-1"}', (400, "InvalidMarkerException")),
        ("ListKeys", b'{"Marker": 1}', (400, "SerializationException")),
        ("ListKeys", b'{"Limit": null}', (200, None)),
        ("ListKeys", b'{"Limit": true}', (400, "SerializationException")),
        # An empty KeyId listed every alias.
        ("ListAliases", b'{"KeyId": ""}', (400, "ValidationException")),
        (
            "GenerateDataKey",
            b'{"KeyId": "k", "NumberOfBytes": true}',
            (400, "SerializationException"),
        ),
    ],
)
def test_malformed_members_get_the_real_services_errors(
    kms: LocalKms,
    server_log: _Records,
    operation: str,
    body: bytes,
    expected: tuple[int, str | None],
) -> None:
    status, _, payload = _post(kms, operation, body)

    assert expected == (status, json.loads(payload).get("__type"))
    _no_internal_errors(server_log)


def test_a_null_pending_window_is_the_default_30_days(kms: LocalKms) -> None:
    key = kms.create_key()["KeyId"]

    status, _, payload = _post(
        kms,
        "ScheduleKeyDeletion",
        {"KeyId": key, "PendingWindowInDays": None},
    )

    assert (200, 30) == (status, json.loads(payload)["PendingWindowInDays"])


def test_unknown_operations_are_counted_together(kms: LocalKms) -> None:
    """Each unknown name was a new counter: a client could grow the
    counters without bound."""
    before = kms.stats.requests.get("<unknown>", 0)

    for name in ("Bogus1", "Bogus2", "\x00"):
        assert 400 == _post(kms, name, b"{}")[0]

    requests = kms.stats.requests
    assert before + 3 == requests["<unknown>"]
    assert not {"Bogus1", "Bogus2", "\x00"} & set(requests)


def test_local_serve_on_a_port_in_use_exits_2(
    kms: LocalKms, capsys: pytest.CaptureFixture[str]
) -> None:
    """``local serve`` ended in an OSError traceback (status 1)."""
    status = main(["local", "serve", "--port", str(_port(kms))])

    assert 2 == status
    assert "cannot listen on 127.0.0.1 port" in capsys.readouterr().err
