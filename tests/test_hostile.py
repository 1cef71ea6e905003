"""Hostile input: every public entry point, fuzzed with hypothesis, ends in
a result or in one of its documented typed errors, and in nothing else.

Calls that get sent go to the local KMS over HTTP on 127.0.0.1. What each
entry point may raise is in its docstring and in docs/reliability.md
("Hostile input"); the ``except`` clauses below name exactly those
classes, so anything else (TypeError, KeyError, UnicodeError, a botocore
exception, ...) fails the test with its traceback.
"""

from __future__ import annotations

import base64
import contextlib
import io
import itertools
import json
import pickle
import sys
import threading
from collections.abc import Callable, Iterator, Sized
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.config import Config
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import kms_reencrypt
from kms_reencrypt import (
    ClientSettings,
    ConfigurationError,
    DryRunResult,
    InvalidKeyIdentifierError,
    KeyIdentifier,
    KeyIdForm,
    KmsReEncryptError,
    KmsServiceError,
    ParameterTypeError,
    ReEncryptClient,
    ReEncryptResult,
    RequestValidationError,
    RotationConfig,
    RotationItem,
    RotationOutcome,
    RotationStatus,
    RotationStoppedError,
    WriteBackError,
)
from kms_reencrypt._cli import build_parser, main
from kms_reencrypt._jsonl import MAX_LINE_BYTES, read_items
from kms_reencrypt._rotate import SAME_CONTEXT, MalformedItem
from kms_reencrypt.local import LocalKms

HOSTILE = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def hostile(examples: int) -> settings:
    """The settings of these tests, with their number of examples."""
    return settings(HOSTILE, max_examples=examples)


#: Codes by which KMS says a request was malformed: validation before
#: sending must have caught it.
MALFORMED = frozenset({"ValidationException", "SerializationException"})

# -- strategies ----------------------------------------------------------

#: Any code point: NUL, controls, lone surrogates, astral planes.
ANY_CHAR = st.characters(exclude_categories=[])
any_text = st.text(ANY_CHAR, max_size=40)
HUGE_TEXT = "k" * 100_000
HUGE_BLOB = b"\x01\x02\x02\x00" + bytes(1_000_000)


class _Opaque:
    """An object no parameter has a use for."""

    def __repr__(self) -> str:
        return "<opaque>"


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**100, 10**400, -1, 0, 2**63, -(2**70)]),
    st.floats(),
    any_text,
    st.binary(max_size=64),
    st.sampled_from(["", "\x00", "\ud800", "\udcff", HUGE_TEXT, "é" * 3000]),
    st.sampled_from([b"", b"\x00" * 7000, HUGE_BLOB]),
    st.builds(bytearray, st.binary(max_size=16)),
    st.binary(max_size=16).map(lambda b: memoryview(b)),
    st.lists(st.one_of(any_text, st.integers(), st.none()), max_size=12),
    st.tuples(any_text),
    st.frozensets(st.text(max_size=3), max_size=3),
    st.dictionaries(
        st.one_of(any_text, st.integers()),
        st.one_of(any_text, st.binary(max_size=4), st.none(), st.integers()),
        max_size=4,
    ),
    st.builds(_Opaque),
    st.builds(threading.Lock),  # cannot be pickled
    st.builds(io.BytesIO, st.binary(max_size=8)),
    st.just(print),
)


def _mixed(
    valid: st.SearchStrategy[Any],
    wrong: st.SearchStrategy[Any] = junk,
    *,
    odds: int = 4,
) -> st.SearchStrategy[Any]:
    """``wrong`` (junk) once in ``odds``, else a valid value: with several
    arguments each drawn this way, calls of every kind occur (all valid,
    one wrong, many wrong)."""
    # Not st.integers(1, odds): hypothesis favours its bounds.
    choices = [True] * (odds - 1)
    choices.insert(odds // 2, False)
    return st.sampled_from(choices).flatmap(lambda ok: valid if ok else wrong)


HEX = "0123456789abcdef"
uuids = st.uuids().map(str)
ARN_SHAPED = st.builds(
    lambda partition, region, account, resource: (
        f"arn:{partition}:kms:{region}:{account}:{resource}"
    ),
    st.sampled_from(["aws", "aws-cn", "aws-us-gov", "aws-x", "", "AWS"]),
    st.one_of(
        st.sampled_from(["us-east-1", "cn-north-1", "eu-west-1", ""]),
        any_text,
    ),
    st.one_of(
        st.text("0123456789", min_size=11, max_size=13),
        st.just("\u0661" * 12),  # twelve digits, not ASCII ones
        any_text,
    ),
    st.one_of(
        uuids.map(lambda k: f"key/{k}"),
        st.text(HEX, min_size=32, max_size=32).map(lambda h: f"key/mrk-{h}"),
        st.text(max_size=20).map(lambda name: f"alias/{name}"),
        any_text,
    ),
)
identifier_like = st.one_of(
    uuids,
    uuids.map(str.upper),
    st.text(HEX, min_size=32, max_size=32).map(lambda h: f"mrk-{h}"),
    st.text(ANY_CHAR, max_size=30).map(lambda name: f"alias/{name}"),
    st.just("alias/aws/s3"),
    ARN_SHAPED,
)


# -- fixtures ------------------------------------------------------------


@pytest.fixture(scope="module")
def local_kms() -> Iterator[LocalKms]:
    """One local KMS for the module (its request counts only grow, and
    each test compares them before and after what it does)."""
    with LocalKms() as kms:
        yield kms


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, local_kms: Any) -> None:
    """Dummy credentials, the local KMS as every client's endpoint, and
    none of the user's AWS files: a client built from the environment
    (``client=None``) talks to the local KMS and nothing else."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_ENDPOINT_URL_KMS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAHOSTILETESTS0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", local_kms.region)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_ENDPOINT_URL", local_kms.endpoint_url)


@pytest.fixture(scope="module")
def world(local_kms: Any) -> dict[str, Any]:
    """Keys, real ciphertexts, a grant token and clients on the local KMS."""
    raw = local_kms.kms_client()
    source = local_kms.create_key()
    destination = local_kms.create_key(alias="alias/hostile-destination")
    context = {"tenant": "acme", "ü": "ß"}
    blobs = [
        raw.encrypt(
            KeyId=source["KeyId"],
            Plaintext=b"plain %d" % n,
            EncryptionContext=context,
        )["CiphertextBlob"]
        for n in range(3)
    ]
    grant = raw.create_grant(
        KeyId=source["Arn"],
        GranteePrincipal="arn:aws:iam::111122223333:role/hostile",
        Operations=["ReEncryptFrom", "ReEncryptTo"],
    )["GrantToken"]
    return {
        "raw": raw,
        "facade": local_kms.client(),
        "settings": ClientSettings.for_local_kms(local_kms),
        "source": source["KeyId"],
        "destination": destination["KeyId"],
        "destination_arn": destination["Arn"],
        "alias": "alias/hostile-destination",
        "context": context,
        "blobs": blobs,
        "grant": grant,
    }


def _keys(world: dict[str, Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(
            [
                world["destination"],
                world["destination_arn"],
                world["alias"],
                world["source"],
                "alias/missing",
            ]
        ),
        identifier_like,
    )


def _blobs(world: dict[str, Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(world["blobs"]),
        st.binary(max_size=300).map(lambda b: b"\x01\x02\x02\x00" + b),
        st.binary(max_size=600),
        st.sampled_from(world["blobs"]).map(base64.b64encode),
    )


def _request(world: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """ReEncrypt keyword arguments: a valid call, or any member of any
    type; DestinationKeyId is always there (Python itself refuses a call
    without it)."""
    contexts = st.one_of(
        st.just(world["context"]),
        st.dictionaries(any_text, any_text, max_size=4),
    )
    algorithms = st.sampled_from(
        [
            "SYMMETRIC_DEFAULT",
            "RSAES_OAEP_SHA_1",
            "RSAES_OAEP_SHA_256",
            "SM2PKE",
            "symmetric_default",
        ]
    )
    tokens = st.one_of(
        st.just([world["grant"]]), st.lists(any_text, max_size=11)
    )
    valid = st.fixed_dictionaries(
        {
            "CiphertextBlob": st.sampled_from(world["blobs"]),
            "SourceEncryptionContext": st.just(world["context"]),
            "DestinationKeyId": st.sampled_from(
                [world["destination"], world["alias"]]
            ),
        },
        optional={
            "SourceKeyId": st.just(world["source"]),
            "DestinationEncryptionContext": contexts,
            "GrantTokens": st.just([world["grant"]]),
            "DryRun": st.booleans(),
            "preflight": st.booleans(),
        },
    )
    fuzzed = st.fixed_dictionaries(
        {"DestinationKeyId": _mixed(_keys(world))},
        optional={
            "CiphertextBlob": _mixed(_blobs(world)),
            "SourceKeyId": _mixed(_keys(world)),
            "SourceEncryptionContext": _mixed(contexts),
            "DestinationEncryptionContext": _mixed(contexts),
            "SourceEncryptionAlgorithm": _mixed(algorithms),
            "DestinationEncryptionAlgorithm": _mixed(algorithms),
            "GrantTokens": _mixed(tokens),
            "DryRun": _mixed(st.booleans()),
            "DryRunModifiers": _mixed(st.just(["IGNORE_CIPHERTEXT"])),
            "preflight": _mixed(st.booleans()),
            "allow_aws_managed_key": _mixed(st.booleans()),
        },
    )
    return st.one_of(valid, fuzzed)


def _check_error(error: BaseException) -> None:
    """A documented error: it prints, and survives pickling (worker
    processes send errors back to their parent)."""
    assert isinstance(error, KmsReEncryptError)
    text = str(error)
    assert text
    assert repr(error)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == text


def _re_encrypted(local_kms: Any, call: Callable[[], Any]) -> str:
    """Run one ReEncrypt through the library; return what came of it.

    Only a result, a RequestValidationError (having sent no ReEncrypt)
    or a KmsServiceError may come out, and KMS must never find the
    request malformed: validation catches that first.
    """
    before = local_kms.stats.requests.get("ReEncrypt", 0)
    result: Any = None
    refused: RequestValidationError | None = None
    answered: KmsServiceError | None = None
    try:
        result = call()
    except RequestValidationError as error:
        refused = error
    except KmsServiceError as error:
        answered = error
    sent = local_kms.stats.requests.get("ReEncrypt", 0) - before

    if refused is not None:
        _check_error(refused)
        # A bare RequestValidationError would be botocore's refusal,
        # translated: a rule build_request does not know.
        assert type(refused) is not RequestValidationError, str(refused)
        assert isinstance(refused.parameter, str)
        assert refused.parameter
        assert sent == 0, f"{sent} ReEncrypt sent for a refused request"
        return type(refused).__name__
    if answered is not None:
        _check_error(answered)
        assert answered.code not in MALFORMED, str(answered)
        return answered.code
    assert isinstance(result, ReEncryptResult | DryRunResult)
    assert repr(result)
    return type(result).__name__


# -- single calls --------------------------------------------------------


@hostile(150)
@given(data=st.data())
def test_re_encrypt_ends_in_a_result_or_a_documented_error(
    local_kms: Any, world: dict[str, Any], data: st.DataObject
) -> None:
    """``ReEncryptClient.re_encrypt`` with any argument of any type."""
    call = data.draw(_request(world))
    facade: ReEncryptClient = world["facade"]

    event(_re_encrypted(local_kms, lambda: facade.re_encrypt(**call)))


@hostile(80)
@given(data=st.data())
def test_kms_re_encrypt_ends_in_a_result_or_a_documented_error(
    local_kms: Any, world: dict[str, Any], aws_env: None, data: st.DataObject
) -> None:
    """``kms_re_encrypt`` with any request and any ``client``: the facade,
    a botocore client, None (the environment's, pointed at the local
    KMS), or anything else (ConfigurationError)."""
    call = data.draw(_request(world))
    client = data.draw(
        _mixed(st.sampled_from([world["facade"], world["raw"], None]))
    )
    is_client = client is None or client in (world["facade"], world["raw"])

    refused: ConfigurationError | None = None
    try:
        outcome = _re_encrypted(
            local_kms,
            lambda: kms_reencrypt.kms_re_encrypt(**call, client=client),
        )
    except ConfigurationError as error:
        refused = error
        outcome = "not a client"

    event(outcome)
    if refused is not None:
        _check_error(refused)
        assert not is_client, str(refused)
        assert refused.option == "kms_client"


ENDPOINTS = ["http://127.0.0.1:9", "https://127.0.0.1:1/x", "ftp://127.0.0.1"]


def _endpoints(local_kms: Any) -> st.SearchStrategy[Any]:
    # Made-up text with "://" could name a host on the network: only
    # loopback URLs are drawn, and text without a scheme.
    known = [local_kms.endpoint_url, *ENDPOINTS]
    return st.one_of(
        st.sampled_from([*known, "127.0.0.1:9", "", "http://", "http://[::1"]),
        junk.filter(lambda v: not (isinstance(v, str) and "://" in v)),
    )


regions = _mixed(
    st.sampled_from(["us-east-1", "eu-west-1", "cn-north-1", "us east 1"])
)


@hostile(60)
@given(data=st.data())
def test_client_factory_ends_in_a_client_or_configuration_error(
    local_kms: Any, aws_env: None, data: st.DataObject
) -> None:
    """``kms_reencrypt.client()`` with any option values sends nothing and
    raises nothing but ConfigurationError."""
    kwargs = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "region_name": regions,
                "endpoint_url": _endpoints(local_kms),
                "profile_name": _mixed(st.sampled_from(["missing-profile"])),
                "session": st.one_of(
                    st.builds(botocore.session.Session), junk
                ),
                "config": st.one_of(
                    st.just(Config()),
                    st.just(Config(retries={"total_max_attempts": 1})),
                    junk,
                ),
            },
        )
    )
    before = local_kms.stats.total_requests

    try:
        made = kms_reencrypt.client(**kwargs)
    except ConfigurationError as error:
        _check_error(error)
        event(f"refused: {error.option}")
    else:
        assert isinstance(made, ReEncryptClient)
        assert repr(made)
        event("client")

    assert before == local_kms.stats.total_requests


@hostile(60)
@given(data=st.data())
def test_facade_and_settings_constructors_raise_only_configuration_error(
    local_kms: Any, world: dict[str, Any], aws_env: None, data: st.DataObject
) -> None:
    """``ReEncryptClient(...)`` and ``ClientSettings(...).build()``."""
    kwargs = data.draw(
        st.fixed_dictionaries(
            {"kms_client": st.one_of(st.just(world["raw"]), junk)},
            optional={
                "allow_aws_managed_key": _mixed(st.booleans()),
                "preflight": _mixed(st.booleans()),
                "preflight_ttl": _mixed(
                    st.one_of(st.floats(0, 1e9), st.integers(0, 10**6))
                ),
            },
        )
    )
    try:
        facade = ReEncryptClient(**kwargs)
    except ConfigurationError as error:
        _check_error(error)
    else:
        assert facade.kms_client is world["raw"]

    fields = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "region_name": regions,
                "endpoint_url": _endpoints(local_kms),
                "profile_name": _mixed(st.sampled_from(["missing-profile"])),
                "local": _mixed(st.booleans()),
            },
        )
    )
    try:
        built = ClientSettings(**fields).build(max_pool_connections=1)
    except ConfigurationError as error:
        _check_error(error)
    else:
        assert isinstance(built, ReEncryptClient)


@hostile(400)
@given(
    text=st.one_of(identifier_like, any_text, junk),
    parameter=st.one_of(st.just("KeyId"), any_text),
)
def test_parse_key_id_parses_or_raises_invalid_key_identifier(
    text: Any, parameter: str
) -> None:
    """Parsing keeps the text exactly, or explains; nothing else."""
    try:
        key = kms_reencrypt.parse_key_id(text, parameter=parameter)
    except InvalidKeyIdentifierError as error:
        _check_error(error)
        return

    assert str(key) == text
    assert isinstance(key.form, KeyIdForm)
    assert text.isascii()
    for flag in (key.is_arn, key.is_alias, key.is_multi_region):
        assert isinstance(flag, bool)
    assert isinstance(key.is_aws_managed, bool)


@hostile(200)
@given(
    fields=st.fixed_dictionaries(
        {
            "text": _mixed(any_text),
            "form": _mixed(st.sampled_from(KeyIdForm)),
        },
        optional={
            name: _mixed(any_text)
            for name in (
                "key_id",
                "alias_name",
                "partition",
                "region",
                "account",
            )
        },
    )
)
def test_key_identifier_constructor_holds_its_types(
    fields: dict[str, Any],
) -> None:
    """Built directly, a KeyIdentifier either refuses parts of the wrong
    type or prints and answers every property."""
    try:
        key = KeyIdentifier(**fields)
    except InvalidKeyIdentifierError as error:
        _check_error(error)
        return

    assert str(key) == fields["text"]
    assert repr(key)
    assert {key.is_arn, key.is_alias, key.is_multi_region} <= {True, False}
    assert key.is_aws_managed in (True, False)


@hostile(200)
@given(
    item=st.fixed_dictionaries(
        {"id": junk, "ciphertext_blob": junk},
        optional={
            "encryption_context": junk,
            "source_key_id": junk,
            "source_encryption_algorithm": junk,
            "line": junk,
        },
    ),
    config=st.fixed_dictionaries(
        {},
        optional={
            name: _mixed(st.integers(1, 64))
            for name in (
                "workers",
                "processes",
                "window",
                "max_attempts",
                "systemic_streak",
                "chunk_size",
            )
        }
        | {
            "rate": _mixed(st.floats(0.001, 1e6)),
            "backoff_base": _mixed(st.floats(0.001, 10)),
            "backoff_cap": _mixed(st.floats(0.001, 60)),
            "max_failures": _mixed(
                st.one_of(st.integers(0, 100), st.floats(0.01, 0.99))
            ),
        },
    ),
)
def test_rotation_item_and_config_constructors(
    item: dict[str, Any], config: dict[str, Any]
) -> None:
    """A RotationItem takes anything (the engine checks items) and its
    repr never fails; a RotationConfig is valid or ConfigurationError."""
    built = RotationItem(**item)
    assert repr(built).startswith("RotationItem(")

    try:
        made = RotationConfig(**config)
    except ConfigurationError as error:
        _check_error(error)
        return
    assert made.effective_window >= 1
    assert isinstance(made.effective_window, int)


@hostile(150)
@given(blob=junk)
def test_base64_helpers_raise_only_request_validation_errors(
    blob: Any,
) -> None:
    """``ciphertext_to_base64`` / ``ciphertext_from_base64``."""
    for function in (
        kms_reencrypt.ciphertext_to_base64,
        kms_reencrypt.ciphertext_from_base64,
    ):
        try:
            function(blob)
        except RequestValidationError as error:
            _check_error(error)


# -- bulk rotation -------------------------------------------------------


def _items(world: dict[str, Any]) -> st.SearchStrategy[Any]:
    real = st.sampled_from(world["blobs"])
    ids = _mixed(st.one_of(st.sampled_from(["a", "b", "c"]), any_text))
    good = st.builds(
        lambda item_id, blob: RotationItem(
            id=item_id,
            ciphertext_blob=blob,
            encryption_context=world["context"],
        ),
        st.text(min_size=1, max_size=8),
        real,
    )
    known = {
        "ciphertext_blob": _mixed(real),
        "encryption_context": _mixed(st.just(world["context"])),
        "source_key_id": _mixed(st.just(world["source"])),
        "source_encryption_algorithm": _mixed(st.just("SYMMETRIC_DEFAULT")),
        "line": _mixed(st.integers(0, 10**6)),
    }
    mapping = st.builds(
        lambda fields, extra: {**extra, **fields},
        st.fixed_dictionaries({"id": ids}, optional=known),
        st.dictionaries(any_text, junk, max_size=2),
    )
    item = st.builds(
        RotationItem,
        id=ids,
        ciphertext_blob=_mixed(real),
        encryption_context=_mixed(st.just(world["context"])),
        source_key_id=_mixed(st.just(world["source"])),
        source_encryption_algorithm=_mixed(st.just("SYMMETRIC_DEFAULT")),
        line=_mixed(st.integers(1, 100)),
    )
    malformed = st.builds(
        MalformedItem,
        error=st.just(ParameterTypeError("line 1: bad.", parameter="line")),
        id=_mixed(any_text),
        line=_mixed(st.integers()),
    )
    return st.lists(
        _mixed(st.one_of(good, good, mapping, item, malformed)), max_size=8
    )


def _small(value: Any) -> bool:
    # Junk passed as the items themselves: an iterable of at most a
    # hundred of them (a megabyte of bytes would be a million items).
    return not isinstance(value, Sized) or len(value) <= 100


def _collect(outcome: RotationOutcome) -> None:
    assert isinstance(outcome, RotationOutcome)


def _refuse(outcome: RotationOutcome) -> None:
    raise OSError("the writer's disk is full")


def _not_a_running_choice(value: Any) -> bool:
    # Valid values that would start worker processes (slow) or wait for
    # ever (a rate far below one call a second) are left out.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return not (1 < value < 10**9 or 0 < value < 100)
    return True


def _rare(
    valid: st.SearchStrategy[Any], wrong: st.SearchStrategy[Any] = junk
) -> st.SearchStrategy[Any]:
    # rotate_iter has many options: a wrong one once in ten keeps runs
    # that get as far as the items frequent.
    return _mixed(valid, wrong, odds=10)


def _options(world: dict[str, Any]) -> Any:
    """Options of rotate_iter; ``journal`` is drawn as True (a fresh path)
    or junk, as any str would be a path in the working directory."""
    contexts = st.one_of(
        st.just(SAME_CONTEXT),
        st.none(),
        st.just(world["context"]),
        st.dictionaries(any_text, any_text, max_size=3),
    )
    clients = st.sampled_from(
        [world["facade"], world["raw"], world["settings"], None]
    )
    return st.fixed_dictionaries(
        {
            "destination_key_id": _rare(
                st.sampled_from([world["destination"], world["alias"]]),
                st.one_of(_keys(world), junk),
            ),
            "client": _rare(clients),
        },
        optional={
            "destination_encryption_context": _rare(contexts),
            "destination_encryption_algorithm": _rare(
                st.sampled_from(["SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_256"])
            ),
            "grant_tokens": _rare(
                st.one_of(
                    st.just([world["grant"]]), st.lists(any_text, max_size=11)
                )
            ),
            "dry_run": _rare(st.booleans()),
            "server_dry_run": _rare(st.integers(0, 3)),
            "writer": _rare(st.sampled_from([_collect, _refuse])),
            "journal": _rare(
                st.just(True), junk.filter(lambda v: not isinstance(v, str))
            ),
            "config": _rare(
                st.builds(RotationConfig, workers=st.integers(1, 4))
            ),
            "workers": _rare(st.integers(1, 8)),
            "processes": _rare(st.just(1), junk.filter(_not_a_running_choice)),
            "rate": _rare(
                st.floats(100, 1e6), junk.filter(_not_a_running_choice)
            ),
            "max_failures": _rare(
                st.one_of(st.integers(0, 5), st.floats(0.01, 0.99))
            ),
            "progress": _rare(
                st.just(False), junk.filter(lambda v: v is not True)
            ),
        },
    )


_STRATEGIES: dict[str, Any] = {}
_JOURNALS = itertools.count()


def _drawn(name: str, make: Callable[[], Any], data: st.DataObject) -> Any:
    # Strategies built once per module (they depend on the world's keys),
    # not once per example.
    if name not in _STRATEGIES:
        _STRATEGIES[name] = make()
    return data.draw(_STRATEGIES[name])


@hostile(80)
@given(data=st.data())
def test_rotate_iter_reports_every_item_or_refuses_the_call(
    local_kms: Any,
    world: dict[str, Any],
    aws_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    data: st.DataObject,
) -> None:
    """``rotate_iter`` with any items and any option values either
    refuses the call (ConfigurationError, RequestValidationError) or
    yields one outcome per item read, each failure carrying a documented
    error, and ends normally or with RotationStoppedError."""
    monkeypatch.chdir(tmp_path)
    items = _drawn(
        "items",
        lambda: _mixed(_items(world), junk.filter(_small)),
        data,
    )
    options = _drawn("options", lambda: _options(world), data)
    if options.get("journal") is True:
        options["journal"] = tmp_path / f"journal-{next(_JOURNALS)}.db"

    try:
        rotation = kms_reencrypt.rotate_iter(items, **options)
    except (ConfigurationError, RequestValidationError) as error:
        _check_error(error)
        at_fault = getattr(error, "option", getattr(error, "parameter", ""))
        event(f"refused: {at_fault}")
        return
    outcomes: list[RotationOutcome] = []
    stopped = None
    with rotation:
        try:
            outcomes.extend(rotation)
        except RotationStoppedError as error:
            _check_error(error)
            stopped = error
    report = rotation.report

    assert len(outcomes) + report.not_attempted == report.total
    if stopped is None:
        assert report.not_attempted == 0
        if isinstance(items, Sized):
            assert report.total == len(items)
    for outcome in outcomes:
        assert isinstance(outcome, RotationOutcome)
        assert repr(outcome)
        event(str(outcome.status))
        if outcome.status is RotationStatus.OK:
            assert isinstance(outcome.ciphertext_blob, bytes)
        if outcome.status is RotationStatus.FAILED:
            assert isinstance(outcome.error, KmsReEncryptError), repr(
                outcome.error
            )
            assert outcome.error_code
            if isinstance(outcome.error, WriteBackError):
                assert options.get("writer") is not _collect
    assert repr(report)
    json.dumps(report.to_dict())


def test_items_that_cannot_be_pickled_fail_alone_across_processes(
    local_kms: Any, world: dict[str, Any]
) -> None:
    """With worker processes, items whose members cannot cross into a
    process (a lock, a memoryview, a context of junk) are failed outcomes
    of their own, the good ones are rotated, and the run ends: nothing is
    lost on a queue's feeder thread."""
    good = [
        RotationItem(
            id=f"good-{n}",
            ciphertext_blob=blob,
            encryption_context=world["context"],
        )
        for n, blob in enumerate(world["blobs"])
    ]
    lock: Any = threading.Lock()
    view: Any = memoryview(world["blobs"][0])
    hostile = [
        RotationItem(id="lock", ciphertext_blob=lock),
        RotationItem(
            id="view",
            ciphertext_blob=view,
            encryption_context=world["context"],
        ),
        RotationItem(
            id="junk-context",
            ciphertext_blob=world["blobs"][0],
            encryption_context=5,  # the converter keeps it for the engine
        ),
        RotationItem(
            id="lambda-key",
            ciphertext_blob=world["blobs"][0],
            source_key_id=lambda: None,  # type: ignore[arg-type]
        ),
    ]

    outcomes = {
        o.id: o
        for o in kms_reencrypt.rotate_iter(
            [*good, *hostile],
            destination_key_id=world["destination"],
            client=world["settings"],
            processes=2,
            workers=2,
        )
    }

    assert {o.id for o in good} | {"view"} == {
        i for i, o in outcomes.items() if o.ok
    }
    for item_id in ("lock", "junk-context", "lambda-key"):
        assert isinstance(outcomes[item_id].error, RequestValidationError)


# -- the JSON Lines reader -----------------------------------------------

json_lines = st.one_of(
    st.builds(
        lambda item_id, blob: json.dumps(
            {"id": item_id, "ciphertext": base64.b64encode(blob).decode()}
        ).encode(),
        st.text(min_size=1, max_size=10),
        st.binary(min_size=1, max_size=40),
    ),
    st.binary(max_size=80).filter(lambda b: b"\n" not in b),
    st.builds(
        lambda value: json.dumps(value).encode(),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), any_text),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=8,
        ),
    ),
    st.sampled_from(
        [
            b"",
            b"   ",
            b"[" * 50_000,
            b'{"id": ' + b"9" * 5000 + b"}",
            b'{"id": "\\ud800", "ciphertext": "AQIDAA=="}',
            b"\xef\xbb\xbf{}",
            b"x" * (MAX_LINE_BYTES + 1),
        ]
    ),
)


@hostile(200)
@given(lines=st.lists(json_lines, max_size=12), last_newline=st.booleans())
def test_reader_yields_one_record_per_line_with_its_number(
    lines: list[bytes], last_newline: bool
) -> None:
    """Any bytes: one item or malformed record per non-blank line,
    numbered as the file is; never an exception."""
    data = b"\n".join(lines) + (b"\n" if last_newline and lines else b"")

    records = list(read_items(io.BytesIO(data)))

    bom = b"\xef\xbb\xbf"
    expected = [
        number
        for number, line in enumerate(data.split(b"\n"), start=1)
        if (line[3:] if number == 1 and line.startswith(bom) else line).strip()
    ]
    assert expected == [record.line for record in records]
    for record in records:
        assert isinstance(record, RotationItem | MalformedItem)
        if isinstance(record, MalformedItem):
            assert f"line {record.line}" in str(record.error)


# -- the command line ----------------------------------------------------

PATHS = [
    "in.jsonl",
    "out.jsonl",
    "missing.jsonl",
    "sub",
    "nodir/x.jsonl",
    "-",
    "",
    "out.jsonl.journal",
    "r.json",
    "blob.bin",
    "a\x00b",
    "\udcff",
]
VALUES = [
    *PATHS,
    "0",
    "1",
    "2",
    "-1",
    "1.5",
    "nan",
    "inf",
    "1e9",
    "99999999999999999999",
    "5%",
    "150%",
    '{"a": "b"}',
    "[1]",
    "{",
    '{"a": 1}',
    '{"a": "\\ud800"}',
    "!!",
    "AAAA",
    "us-east-1",
    "us east",
    "raw",
    "json",
    "SYMMETRIC_DEFAULT",
    "RSAES_OAEP_SHA_256",
    "alias/missing",
    "not a key",
    "junk-endpoint",
]
OPTIONS = [
    "--to",
    "--destination-key-id",
    "--input",
    "--output",
    "--journal",
    "--report",
    "--dry-run",
    "--server-dry-run",
    "--rate",
    "--workers",
    "--processes",
    "--max-failures",
    "--destination-context",
    "--no-destination-context",
    "--endpoint-url",
    "--region",
    "--profile",
    "--local",
    "--ciphertext-b64",
    "--ciphertext-file",
    "--output-format",
    "--source-key-id",
    "--source-encryption-context",
    "--destination-encryption-context",
    "--source-encryption-algorithm",
    "--destination-encryption-algorithm",
    "--grant-token",
    "--ignore-ciphertext",
    "--count",
    "--port",
    "--help",
    "--bogus",
]
# Free text never holds a slash: every path stays in the test's directory.
free_text = st.text(
    ANY_CHAR.filter(lambda c: c not in "/\\"), min_size=1, max_size=12
)


def _argv(world: dict[str, Any], local_kms: Any) -> Any:
    """Command lines: a sub-command with its usual arguments followed by
    options with plausible or wrong values, or a soup of tokens."""
    value = st.one_of(
        st.sampled_from(VALUES),
        st.sampled_from(
            [
                world["destination"],
                world["alias"],
                local_kms.endpoint_url,
                base64.b64encode(world["blobs"][0]).decode(),
            ]
        ),
        free_text,
    )

    def pick(good: list[str], bad: list[str]) -> st.SearchStrategy[str]:
        return _mixed(st.sampled_from(good), st.sampled_from(bad))

    context = '{"tenant": "acme", "\\u00fc": "\\u00df"}'
    typed = {
        "--to": pick([world["destination"], world["alias"]], ["alias/x"]),
        "--input": pick(["in.jsonl", "-"], PATHS),
        "--output": pick(["out.jsonl", "out2.jsonl", "-"], PATHS),
        "--journal": pick(["j.db"], PATHS),
        "--report": pick(["r.json"], PATHS),
        "--server-dry-run": pick(["0", "1"], ["-1", "x"]),
        "--rate": pick(["500"], ["0", "-1", "nan", "inf", "x"]),
        "--workers": pick(["1", "4"], ["0", "2000", "1.5"]),
        "--processes": pick(["1"], ["0", "-2", "300", "x"]),
        "--max-failures": pick(["0", "3", "5%", "0.5"], ["2.5", "-1"]),
        "--destination-context": pick([context], ['{"a": 1}', "[]"]),
        "--source-encryption-context": pick([context], ["{", "null"]),
        "--endpoint-url": pick([local_kms.endpoint_url], ["junk-endpoint"]),
        "--region": pick([local_kms.region], ["eu-west-1", "x y"]),
        "--profile": pick(["missing-profile"], ["missing-profile"]),
        "--output-format": pick(["raw", "base64", "json"], ["x"]),
        "--grant-token": pick([world["grant"]], ["", "t" * 9000]),
        "--source-key-id": pick([world["source"]], ["nope"]),
        "--ciphertext-file": pick(["blob.bin"], ["sub", "none"]),
    }
    flags = ["--dry-run", "--no-destination-context", "--local", "-v"]
    flags += ["--ignore-ciphertext"]

    def option(name: str) -> st.SearchStrategy[list[str]]:
        if name in flags:
            return st.just([name])
        return _mixed(typed[name], value, odds=8).map(lambda v: [name, v])

    options = st.sampled_from([*typed, *flags]).flatmap(option)
    rotate = st.lists(options, max_size=4).map(
        lambda chosen: [
            "rotate",
            "--to",
            world["destination"],
            "--input",
            "in.jsonl",
            *itertools.chain.from_iterable(chosen),
        ]
    )
    blob = base64.b64encode(world["blobs"][0]).decode()
    re_encrypt = st.lists(options, max_size=4).map(
        lambda chosen: [
            "re-encrypt",
            "--to",
            world["destination"],
            "--ciphertext-b64",
            blob,
            "--source-encryption-context",
            json.dumps(world["context"]),
            *itertools.chain.from_iterable(chosen),
        ]
    )
    soup = st.builds(
        lambda flags, name, rest: [*flags, name, *rest],
        st.lists(st.sampled_from(["-v", "-vv", "--version"]), max_size=1),
        st.sampled_from(["rotate", "re-encrypt", "demo", "local", "x"]),
        st.lists(st.one_of(st.sampled_from(OPTIONS), value), max_size=10),
    )
    return st.one_of(rotate, rotate, re_encrypt, soup)


def _runs_long(argv: list[str]) -> bool:
    """True for command lines that parse into a run this test leaves
    out: the demo (its own test), a local KMS serving until interrupted,
    and worker processes (slow to start)."""
    with (
        contextlib.redirect_stderr(io.StringIO()),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:
            return False
    return args.command in ("demo", "local") or (
        getattr(args, "processes", 1) > 1
    )


def _input_file(world: dict[str, Any], path: Path) -> None:
    lines = [
        json.dumps(
            {
                "id": f"row-{n}",
                "ciphertext": base64.b64encode(blob).decode(),
                "encryption_context": world["context"],
            }
        )
        for n, blob in enumerate(world["blobs"])
    ]
    path.write_text("\n".join([*lines, "{bad"]) + "\n")


@hostile(70)
@given(data=st.data())
def test_any_command_line_exits_with_a_documented_status(
    local_kms: Any,
    world: dict[str, Any],
    aws_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
    data: st.DataObject,
) -> None:
    """``kms-reencrypt`` with random arguments: exit status 0-3, or
    argparse's SystemExit (2, or 0 for --help/--version); a status of 2
    printed an error and sent nothing."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    _input_file(world, tmp_path / "in.jsonl")
    (tmp_path / "sub").mkdir(exist_ok=True)
    (tmp_path / "blob.bin").write_bytes(world["blobs"][0])
    argv = _drawn("argv", lambda: _argv(world, local_kms), data)
    assume(not _runs_long(argv))
    capsysbinary.readouterr()  # ``--output-format raw`` writes bytes
    before = local_kms.stats.total_requests

    try:
        status: object = main(argv)
    except SystemExit as exit_:
        status = exit_.code or 0  # argparse: 2, or 0 for --help
    err = capsysbinary.readouterr().err.decode("utf-8", "replace")

    event(f"status {status}")
    assert status in (0, 1, 2, 3)
    if status == 2:
        assert "error:" in err
        assert before == local_kms.stats.total_requests, "status 2 sent"


def _b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


def _encrypt(local_kms: Any, key: str, plaintext: bytes, context: Any) -> str:
    blob = local_kms.kms_client().encrypt(
        KeyId=key, Plaintext=plaintext, EncryptionContext=context
    )["CiphertextBlob"]
    return _b64(blob)


def test_a_hostile_input_file_fails_each_bad_line_and_rotates_the_rest(
    local_kms: Any,
    world: dict[str, Any],
    aws_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Truncated lines, invalid UTF-8, 10 MB lines, wrong types, duplicate
    ids and more, through ``kms-reencrypt rotate``: every bad line is a
    failed output line (and a report entry, and a number on standard
    error) naming its line; every good line is rotated and decrypts; the
    refused lines send nothing."""
    context = {"tenant": "acme"}
    key = world["source"]
    good = {
        f"g{n}": _encrypt(local_kms, key, b"secret %d" % n, context)
        for n in range(4)
    }
    good["n\x00ul"] = _encrypt(local_kms, key, b"nul", context)
    good["ключ-🔑"] = _encrypt(local_kms, key, b"key", context)

    def line(item_id: str, **extra: Any) -> bytes:
        record: dict[str, Any] = {"id": item_id, "ciphertext": good[item_id]}
        record["encryption_context"] = context
        record.update(extra)
        return json.dumps(record).encode()

    lines: list[tuple[bytes, str | None]] = [
        (b"\xef\xbb\xbf" + line("g0"), "ok"),  # 1, after a BOM
        (line("g1"), "ok"),
        (b"", None),  # 3, blank
        (b'{"id": "t1", "ciphertext": "AQID', "ParameterTypeError"),
        (b'{"id": "u1", "ciphertext": "\xff\xfe"}', "ParameterTypeError"),
        (b"x" * (10 * 2**20), "ParameterTypeError"),  # 6: a 10 MB line
        (
            json.dumps(
                {"id": "big", "ciphertext": "A" * (10 * 2**20)}
            ).encode(),
            "ParameterTypeError",
        ),
        (line("g2"), "ok"),  # 8
        (line("g3", id=7), "ParameterTypeError"),
        (line("g3", ciphertext=12), "ParameterTypeError"),  # 10
        (line("g3", encryption_context=["a"]), "ParameterTypeError"),
        (line("g3", source_key_id=5), "ParameterTypeError"),
        (line("g1"), "ConflictingParametersError"),  # 13: duplicate id
        (b'{"id": "\\ud800", "ciphertext": "AQID"}', "ParameterTypeError"),
        (b"[" * 100_000, "ParameterTypeError"),  # 15: nested too deep
        (b'{"id": "n", "x": ' + b"1" * 5000 + b"}", "ParameterTypeError"),
        (b'{"id": "raw\x00nul", "ciphertext": "AQID"}', "ParameterTypeError"),
        (b"[1, 2]", "ParameterTypeError"),  # 18
        (
            json.dumps({"ciphertext": good["g3"]}).encode(),
            "MissingParameterError",
        ),
        (b'{"id": "no-ciphertext"}', "MissingParameterError"),  # 20
        (b'{"id": "b64", "ciphertext": "!!!"}', "CiphertextEncodingError"),
        (
            json.dumps({"id": "long", "ciphertext": "A" * 700_000}).encode(),
            "ParameterLengthError",
        ),
        (line("n\x00ul"), "ok"),  # 23: a NUL (escaped) in an id is text
        (line("ключ-🔑"), "ok"),
        (
            json.dumps(
                {"id": "forged", "ciphertext": _b64(b"\x01\x02\x02\x00" * 20)}
            ).encode(),
            "InvalidCiphertextException",
        ),
        (b" \t ", None),  # 26, blank
        (line("g3"), "ok"),  # 27, last, without a newline
    ]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(text for text, _ in lines))
    output, report = tmp_path / "out.jsonl", tmp_path / "report.json"
    capsys.readouterr()
    before = local_kms.stats.requests.get("ReEncrypt", 0)

    status = main(
        [
            "rotate",
            "--to",
            world["destination"],
            "--input",
            str(source),
            "--output",
            str(output),
            "--report",
            str(report),
            "--endpoint-url",
            local_kms.endpoint_url,
        ]
    )

    records = [json.loads(text) for text in output.read_text().splitlines()]
    expected_failed = {
        number: code
        for number, (_, code) in enumerate(lines, start=1)
        if code not in (None, "ok")
    }
    failed = [r for r in records if r["status"] == "failed"]
    assert 1 == status
    assert expected_failed == {r["line"]: r["error"]["code"] for r in failed}
    assert len(failed) == len(expected_failed)  # each bad line once
    ok = {r["id"]: r for r in records if r["status"] == "ok"}
    assert set(good) == set(ok)
    kms = local_kms.kms_client()
    plaintexts = {
        item_id: kms.decrypt(
            CiphertextBlob=base64.b64decode(record["ciphertext"]),
            EncryptionContext=record["encryption_context"],
        )
        for item_id, record in ok.items()
    }
    assert all(
        p["KeyId"] == world["destination_arn"] for p in plaintexts.values()
    )
    assert b"secret 2" == plaintexts["g2"]["Plaintext"]
    summary = json.loads(report.read_text())
    assert sorted(expected_failed) == sorted(
        entry["line"] for entry in summary["failed_items"]
    )
    assert 25 == summary["total"]
    err = capsys.readouterr().err
    shown = ", ".join(str(n) for n in sorted(expected_failed))
    assert f"failed input lines: {shown}" in err
    # Only the good lines and the forged ciphertext went to KMS.
    sent = local_kms.stats.requests.get("ReEncrypt", 0) - before
    assert len(good) + 1 == sent


@pytest.mark.parametrize("content", [b"", b"\n\n  \n\t\r\n\n"])
def test_an_empty_input_rotates_nothing_and_exits_0(
    local_kms: Any,
    world: dict[str, Any],
    aws_env: None,
    tmp_path: Path,
    content: bytes,
) -> None:
    """An empty file and a file of blank lines: no item, no call, an empty
    output and a report of zeros."""
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(content)
    report = tmp_path / "report.json"
    before = local_kms.stats.total_requests

    status = main(
        [
            "rotate",
            "--to",
            world["destination"],
            "--input",
            str(source),
            "--output",
            str(output),
            "--report",
            str(report),
            "--endpoint-url",
            local_kms.endpoint_url,
        ]
    )

    assert 0 == status
    assert b"" == output.read_bytes()
    assert 0 == json.loads(report.read_text())["total"]
    assert before == local_kms.stats.total_requests


ROTATE_MISUSE: list[list[str]] = [
    ["--local", "--endpoint-url", "{endpoint}"],
    ["--local", "--profile", "default"],
    ["--local", "--region", "us-east-1"],
    ["--local", "--processes", "2"],
    ["--server-dry-run", "3"],
    ["--server-dry-run", "-1", "--dry-run"],
    ["--dry-run", "--journal", "j.db"],
    ["--processes", "0"],
    ["--processes", "100000"],
    ["--workers", "x"],
    ["--workers", "0"],
    ["--workers", "1.5"],
    ["--rate", "-1"],
    ["--rate", "0"],
    ["--rate", "nan"],
    ["--rate", "1e-300"],
    ["--max-failures", "2.5"],
    ["--max-failures", "-1"],
    ["--max-failures", "some"],
    ["--destination-context", "[1]"],
    ["--destination-context", '{"a": "b"}', "--no-destination-context"],
    ["--destination-context", '{"a": "\\udfff"}'],
    ["--destination-context", "{deep}"],
    ["--input", "missing.jsonl"],
    ["--input", "{input}", "--output", "{input}"],
    ["--journal", "{input}"],
    ["--report", "{input}"],
    ["--output", "nodir/out.jsonl"],
    ["--output", "sub"],
    ["--output", ""],
    ["--report", "x\x00y"],
    ["--endpoint-url", "not a url"],
    ["--region", "us east 1"],
    ["--profile", "missing-profile"],
    ["--to", "not a key"],
    ["--to", "\udcff"],
    ["--no-such-option"],
    ["--to"],
]


@pytest.mark.parametrize(
    "misuse",
    ROTATE_MISUSE,
    ids=lambda m: " ".join(m).encode("ascii", "replace").decode(),
)
def test_contradictory_or_bad_rotate_options_are_usage_errors(
    local_kms: Any,
    world: dict[str, Any],
    aws_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    misuse: list[str],
) -> None:
    """Exit status 2 with the usage line, before anything is sent and
    before any file is written: the input is unchanged and no output,
    journal or report exists."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    source = tmp_path / "in.jsonl"
    _input_file(world, source)
    original = source.read_bytes()
    names = {"{endpoint}": local_kms.endpoint_url, "{input}": str(source)}
    names["{deep}"] = DEEP
    extra = [names.get(part, part) for part in misuse]
    argv = ["rotate", "--to", world["destination"], "--input", str(source)]
    argv += ["--output", "out.jsonl"] if "--output" not in extra else []
    if "--local" not in extra and "--endpoint-url" not in extra:
        argv += ["--endpoint-url", local_kms.endpoint_url]
    capsys.readouterr()
    before = local_kms.stats.total_requests

    try:
        status = main([*argv, *extra])
    except SystemExit as exit_:
        status = int(exit_.code or 0)
    err = capsys.readouterr().err

    assert 2 == status
    assert "usage: kms-reencrypt" in err
    assert "error:" in err
    assert before == local_kms.stats.total_requests
    assert original == source.read_bytes()
    assert not (tmp_path / "out.jsonl").exists()
    assert not (tmp_path / "out.jsonl.journal").exists()


#: A context option nested too deep for the JSON parser (it raised
#: RecursionError, a traceback and status 1).
DEEP = "[" * 100_000

REENCRYPT_MISUSE: list[list[str]] = [
    ["--ciphertext-b64", "{blob}", "--ignore-ciphertext"],
    ["--ciphertext-b64", "{blob}", "--local", "--endpoint-url", "{endpoint}"],
    ["--ciphertext-b64", "{blob}", "--ciphertext-file", "blob.bin"],
    ["--ciphertext-file", "missing.bin"],
    ["--ciphertext-file", "."],
    ["--dry-run"],
    ["--ciphertext-b64", "{blob}", "--source-encryption-context", "[]"],
    ["--ciphertext-b64", "{blob}", "--source-encryption-context", "{deep}"],
    [
        "--ciphertext-b64",
        "{blob}",
        "--destination-encryption-context",
        "{deep}",
    ],
    ["--ciphertext-b64", "{blob}", "--output-format", "xml"],
    ["--ciphertext-b64", "{blob}", "--endpoint-url", "not a url"],
]


@pytest.mark.parametrize("misuse", REENCRYPT_MISUSE, ids=" ".join)
def test_contradictory_or_bad_re_encrypt_options_are_usage_errors(
    local_kms: Any,
    world: dict[str, Any],
    aws_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    misuse: list[str],
) -> None:
    """The same for ``re-encrypt``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blob.bin").write_bytes(world["blobs"][0])
    names = {
        "{endpoint}": local_kms.endpoint_url,
        "{blob}": _b64(world["blobs"][0]),
        "{deep}": DEEP,
    }
    extra = [names.get(part, part) for part in misuse]
    argv = ["re-encrypt", "--to", world["destination"], *extra]
    if "--local" not in extra and "--endpoint-url" not in extra:
        argv += ["--endpoint-url", local_kms.endpoint_url]
    capsys.readouterr()
    before = local_kms.stats.total_requests

    try:
        status = main(argv)
    except SystemExit as exit_:
        status = int(exit_.code or 0)
    err = capsys.readouterr().err

    assert 2 == status
    assert "usage: kms-reencrypt re-encrypt" in err
    assert before == local_kms.stats.total_requests


def _usage_error(argv: list[str], capsys: Any) -> tuple[int, str]:
    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = int(exit_.code or 0)
    return status, capsys.readouterr().err


MISSING: list[list[str]] = [
    [],
    ["rotate"],
    ["rotate", "--input", "in.jsonl", "--output", "out.jsonl"],
    ["re-encrypt", "--ciphertext-b64", "{blob}"],
    ["re-encrypt", "--to", "{destination}"],
    ["rotate-parquet", "--to", "{destination}"],
    ["rotate-parquet", "--input", "in", "--output", "out"],
    [
        "rotate-parquet",
        "--to",
        "{destination}",
        "--input",
        "in",
        "--output",
        "out",
        "--column",
        "blob",
    ],
]


@pytest.mark.parametrize(
    "argv", MISSING, ids=lambda a: " ".join(a[:1] + a[1::2]) or "nothing"
)
def test_missing_options_are_usage_errors(
    local_kms: Any,
    world: dict[str, Any],
    aws_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    """No sub-command, no destination, no ciphertext, no column: status 2
    with the usage line, nothing sent and no file written."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    _input_file(world, tmp_path / "in.jsonl")
    (tmp_path / "in").mkdir()
    names = {
        "{destination}": world["destination"],
        "{blob}": _b64(world["blobs"][0]),
    }
    before = local_kms.stats.total_requests

    status, err = _usage_error([names.get(a, a) for a in argv], capsys)

    assert 2 == status
    assert "usage: kms-reencrypt" in err
    assert "error:" in err
    assert before == local_kms.stats.total_requests
    assert {"in", "in.jsonl"} == {p.name for p in tmp_path.iterdir()}


PARQUET_MISUSE: list[list[str]] = [
    ["--local", "--endpoint-url", "{endpoint}"],
    ["--local", "--dask-scheduler", "tcp://127.0.0.1:1"],
    ["--dry-run", "--journal-dir", "j"],
    ["--output", "in"],
    ["--input", "missing"],
    ["--context-field", "a=b", "--context-column", "c"],
    ["--context-field", "no-column"],
    ["--destination-context", '{"a": "\\udfff"}'],
    ["--destination-context", '{"a": "b"}', "--no-destination-context"],
    ["--destination-context", "{deep}"],
    ["--max-failures", "2.5"],
    ["--workers", "0"],
    ["--rate", "nan"],
    ["--to", "not a key"],
]


@pytest.mark.parametrize("misuse", PARQUET_MISUSE, ids=" ".join)
def test_contradictory_or_bad_rotate_parquet_options_are_usage_errors(
    local_kms: Any,
    world: dict[str, Any],
    aws_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    misuse: list[str],
) -> None:
    """The same for ``rotate-parquet``, refused before a Dask cluster is
    started: no output, journal or report directory appears."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "keep.parquet").write_bytes(b"not parquet")
    names = {"{endpoint}": local_kms.endpoint_url, "{deep}": DEEP}
    extra = [names.get(part, part) for part in misuse]
    argv = ["rotate-parquet", "--to", world["destination"], "--input", "in"]
    argv += ["--column", "blob", "--id-column", "id"]
    argv += ["--output", "out"] if "--output" not in extra else []
    argv += ["--report", "r.json"]
    if "--local" not in extra and "--endpoint-url" not in extra:
        argv += ["--endpoint-url", local_kms.endpoint_url]
    before = local_kms.stats.total_requests

    status, err = _usage_error([*argv, *extra], capsys)

    assert 2 == status
    assert "usage: kms-reencrypt rotate-parquet" in err
    assert "error:" in err
    assert before == local_kms.stats.total_requests
    assert {"in"} == {p.name for p in tmp_path.iterdir()}
    assert ["keep.parquet"] == [p.name for p in (tmp_path / "in").iterdir()]
