"""ReEncrypt conformance: the same scenarios against the local KMS and,
when KMS_REENCRYPT_AWS_REGION names a Region, against real AWS KMS.

Each scenario is one row: a name, a function that makes the request(s)
through a raw botocore client (no client-side checks of ours, no
retries), and the error code expected (None for success). On AWS the
suite creates its own keys, tagged ``kms-reencrypt-conformance``, and
schedules their deletion (7-day window) at the end; see
docs/local-kms.md for the IAM permissions it needs.

Where AWS does not document an error code, a row lists the other codes
AWS may answer (``aws_also``); the local KMS always gives ``expect``.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

AWS_REGION = os.environ.get("KMS_REENCRYPT_AWS_REGION")
TAG = {"TagKey": "kms-reencrypt-conformance", "TagValue": "true"}
CONTEXT = {"Purpose": "conformance", "tenant": "Acme"}
PLAINTEXT = b"conformance plaintext"
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
HEX64 = re.compile(r"^[a-f0-9]{64}$")


@attrs.define
class Env:
    """The keys, ciphertexts and client of one target."""

    target: str
    kms: BaseClient
    region: str
    account: str
    local: Any = None
    keys: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    aliases: dict[str, str] = attrs.field(factory=dict)
    blobs: dict[str, bytes] = attrs.field(factory=dict)
    grant_token: str = ""
    prefix: str = attrs.field(factory=lambda: uuid.uuid4().hex[:8])

    def key_id(self, name: str) -> str:
        return str(self.keys[name]["KeyId"])

    def arn(self, name: str) -> str:
        return str(self.keys[name]["Arn"])

    def re_encrypt(self, **request: Any) -> dict[str, Any]:
        response: dict[str, Any] = self.kms.re_encrypt(**request)
        return response

    def create_key(self, name: str, **options: Any) -> str:
        metadata = self.kms.create_key(Tags=[TAG], **options)["KeyMetadata"]
        self.keys[name] = metadata
        return str(metadata["KeyId"])

    def encrypt(self, name: str, plaintext: bytes = PLAINTEXT) -> bytes:
        blob: bytes = self.kms.encrypt(
            KeyId=self.key_id(name),
            Plaintext=plaintext,
            EncryptionContext=CONTEXT,
        )["CiphertextBlob"]
        return blob


def _rsa_offline(env: Env, algorithm: str, plaintext: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    der = env.kms.get_public_key(KeyId=env.key_id("rsa"))["PublicKey"]
    public = serialization.load_der_public_key(der)
    digest = hashes.SHA256() if algorithm.endswith("256") else hashes.SHA1()
    ciphertext: bytes = public.encrypt(  # type: ignore[union-attr]
        plaintext,
        padding.OAEP(
            mgf=padding.MGF1(algorithm=digest), algorithm=digest, label=None
        ),
    )
    return ciphertext


def _build(env: Env) -> Env:
    env.create_key("sym", Description="conformance symmetric")
    env.create_key("sym2")
    env.create_key("mrk", MultiRegion=True)
    env.create_key("rsa", KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    env.create_key("sign", KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    env.create_key("hmac", KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    env.create_key("disabled")
    env.create_key("pending")
    for name in ("sym", "sym2", "mrk", "rsa"):
        alias = f"alias/kmsre-conf-{env.prefix}-{name}"
        env.kms.create_alias(AliasName=alias, TargetKeyId=env.key_id(name))
        env.aliases[name] = alias

    env.blobs["sym"] = env.encrypt("sym")
    env.blobs["mrk"] = env.encrypt("mrk")
    env.blobs["big"] = env.encrypt("sym", os.urandom(4096))
    env.blobs["disabled"] = env.encrypt("disabled")
    env.blobs["pending"] = env.encrypt("pending")
    env.blobs["rsa256"] = _rsa_offline(env, "RSAES_OAEP_SHA_256", PLAINTEXT)
    env.kms.disable_key(KeyId=env.key_id("disabled"))
    env.kms.schedule_key_deletion(
        KeyId=env.key_id("pending"), PendingWindowInDays=7
    )
    env.grant_token = env.kms.create_grant(
        KeyId=env.key_id("sym"),
        GranteePrincipal=f"arn:aws:iam::{env.account}:root",
        Operations=["ReEncryptFrom", "ReEncryptTo", "Decrypt"],
    )["GrantToken"]

    return env


def _clean_up(env: Env) -> None:
    for alias in env.aliases.values():
        with contextlib.suppress(ClientError):
            env.kms.delete_alias(AliasName=alias)
    for metadata in env.keys.values():
        with contextlib.suppress(ClientError):
            env.kms.schedule_key_deletion(
                KeyId=metadata["KeyId"], PendingWindowInDays=7
            )


TARGETS = [
    pytest.param("local", id="local"),
    pytest.param(
        "aws",
        id="aws",
        marks=[
            pytest.mark.aws,
            pytest.mark.skipif(
                not AWS_REGION,
                reason="set KMS_REENCRYPT_AWS_REGION to run against AWS KMS",
            ),
        ],
    ),
]


@pytest.fixture(scope="module", params=TARGETS)
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    if request.param == "local":
        from kms_reencrypt.local import LocalKms

        with LocalKms() as local:
            yield _build(
                Env(
                    target="local",
                    kms=local.kms_client(config=NO_RETRIES),
                    region=local.region,
                    account=local.account_id,
                    local=local,
                )
            )
        return

    import botocore.session

    assert AWS_REGION is not None
    session = botocore.session.Session()
    kms = session.create_client(
        "kms", region_name=AWS_REGION, config=NO_RETRIES
    )
    account = session.create_client(
        "sts", region_name=AWS_REGION
    ).get_caller_identity()["Account"]
    aws_env = Env(target="aws", kms=kms, region=AWS_REGION, account=account)
    try:
        yield _build(aws_env)
    finally:
        _clean_up(aws_env)


@attrs.frozen
class Scenario:
    name: str
    run: Callable[[Env], Any]
    expect: str | None = None
    aws_also: tuple[str, ...] = ()
    local_only: bool = False


SCENARIOS: list[Scenario] = []


def row(
    name: str,
    expect: str | None = None,
    *,
    aws_also: tuple[str, ...] = (),
    local_only: bool = False,
) -> Callable[[Callable[[Env], Any]], Callable[[Env], Any]]:
    """Register the decorated function as a scenario."""

    def register(run: Callable[[Env], Any]) -> Callable[[Env], Any]:
        SCENARIOS.append(Scenario(name, run, expect, aws_also, local_only))
        return run

    return register


def reencrypt_row(
    name: str,
    expect: str | None,
    build: Callable[[Env], dict[str, Any]],
    **options: Any,
) -> None:
    """Register a scenario that is a single ReEncrypt request."""
    row(name, expect, **options)(lambda env: env.re_encrypt(**build(env)))


def sym(env: Env, **extra: Any) -> dict[str, Any]:
    """A valid symmetric-to-symmetric request, with overrides."""
    request: dict[str, Any] = {
        "CiphertextBlob": env.blobs["sym"],
        "SourceEncryptionContext": CONTEXT,
        "DestinationKeyId": env.key_id("sym2"),
    }
    request.update(extra)
    return {k: v for k, v in request.items() if v is not None}


# -- success, and the shape of the answer --


@row("sym to sym without SourceKeyId: seven members, round trip")
def _(env: Env) -> None:
    response = env.re_encrypt(
        **sym(env, DestinationEncryptionContext={"new": "context"})
    )
    assert response["SourceKeyId"] == env.arn("sym")
    assert response["KeyId"] == env.arn("sym2")
    assert response["SourceEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert response["DestinationEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert HEX64.match(response["SourceKeyMaterialId"])
    assert HEX64.match(response["DestinationKeyMaterialId"])
    assert response["CiphertextBlob"][:4] == b"\x01\x02\x02\x00"
    decrypted = env.kms.decrypt(
        CiphertextBlob=response["CiphertextBlob"],
        EncryptionContext={"new": "context"},
    )
    assert decrypted["Plaintext"] == PLAINTEXT


for _form in ("key id", "key ARN", "alias name", "alias ARN"):

    def _source(env: Env, form: str = _form) -> dict[str, Any]:
        ids = {
            "key id": env.key_id("sym"),
            "key ARN": env.arn("sym"),
            "alias name": env.aliases["sym"],
            "alias ARN": (
                f"arn:aws:kms:{env.region}:{env.account}:{env.aliases['sym']}"
            ),
        }
        return sym(env, SourceKeyId=ids[form], DestinationKeyId=ids[form])

    reencrypt_row(f"SourceKeyId and destination as {_form}", None, _source)


@row("same key, new context: the new blob needs the new context")
def _(env: Env) -> None:
    response = env.re_encrypt(
        **sym(
            env,
            DestinationKeyId=env.key_id("sym"),
            DestinationEncryptionContext={"Purpose": "other"},
        )
    )
    with pytest.raises(ClientError) as info:
        env.kms.decrypt(
            CiphertextBlob=response["CiphertextBlob"],
            EncryptionContext=CONTEXT,
        )
    assert info.value.response["Error"]["Code"] == "InvalidCiphertextException"


@row("context pairs in another order are the same context")
def _(env: Env) -> None:
    reordered = dict(reversed(list(CONTEXT.items())))
    env.re_encrypt(**sym(env, SourceEncryptionContext=reordered))


@row("multi-Region key as source and destination")
def _(env: Env) -> None:
    assert re.match(r"^mrk-[0-9a-f]{32}$", env.key_id("mrk"))
    response = env.re_encrypt(
        CiphertextBlob=env.blobs["mrk"],
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=env.key_id("mrk"),
    )
    assert response["SourceKeyId"] == env.arn("mrk")
    assert response["KeyId"] == env.arn("mrk")


@row("grant token from CreateGrant is accepted")
def _(env: Env) -> None:
    env.re_encrypt(**sym(env, GrantTokens=[env.grant_token]))


@row("to RSA_2048 with RSAES_OAEP_SHA_256: 256-byte RSA ciphertext")
def _(env: Env) -> None:
    response = env.re_encrypt(
        **sym(
            env,
            DestinationKeyId=env.key_id("rsa"),
            DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256",
        )
    )
    assert len(response["CiphertextBlob"]) == 256
    assert "DestinationKeyMaterialId" not in response
    assert HEX64.match(response["SourceKeyMaterialId"])
    decrypted = env.kms.decrypt(
        CiphertextBlob=response["CiphertextBlob"],
        KeyId=env.key_id("rsa"),
        EncryptionAlgorithm="RSAES_OAEP_SHA_256",
    )
    assert decrypted["Plaintext"] == PLAINTEXT


@row("RSA-OAEP ciphertext made outside KMS with the public key")
def _(env: Env) -> None:
    response = env.re_encrypt(
        CiphertextBlob=env.blobs["rsa256"],
        SourceKeyId=env.key_id("rsa"),
        SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256",
        DestinationKeyId=env.key_id("sym"),
    )
    assert response["SourceEncryptionAlgorithm"] == "RSAES_OAEP_SHA_256"
    assert "SourceKeyMaterialId" not in response
    assert HEX64.match(response["DestinationKeyMaterialId"])
    decrypted = env.kms.decrypt(CiphertextBlob=response["CiphertextBlob"])
    assert decrypted["Plaintext"] == PLAINTEXT


@row("DescribeKey of alias/aws/s3 shows an AWS managed key")
def _(env: Env) -> None:
    metadata = env.kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    assert metadata["KeyManager"] == "AWS"


@row("DescribeKey of customer keys: realistic KeyMetadata")
def _(env: Env) -> None:
    sym_meta = env.kms.describe_key(KeyId=env.key_id("sym"))["KeyMetadata"]
    assert sym_meta["KeyManager"] == "CUSTOMER"
    assert sym_meta["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert sym_meta["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert sym_meta["MultiRegion"] is False
    assert HEX64.match(sym_meta["CurrentKeyMaterialId"])
    rsa_meta = env.kms.describe_key(KeyId=env.key_id("rsa"))["KeyMetadata"]
    assert sorted(rsa_meta["EncryptionAlgorithms"]) == [
        "RSAES_OAEP_SHA_1",
        "RSAES_OAEP_SHA_256",
    ]
    hmac_meta = env.kms.describe_key(KeyId=env.key_id("hmac"))["KeyMetadata"]
    assert "EncryptionAlgorithms" not in hmac_meta
    assert (
        env.kms.describe_key(KeyId=env.key_id("pending"))["KeyMetadata"][
            "KeyState"
        ]
        == "PendingDeletion"
    )


# -- DryRun --

reencrypt_row(
    "DryRun of a valid request",
    "DryRunOperationException",
    lambda env: sym(env, DryRun=True),
)
reencrypt_row(
    "DryRun with IGNORE_CIPHERTEXT and no ciphertext",
    "DryRunOperationException",
    lambda env: {
        "SourceKeyId": env.key_id("sym"),
        "DestinationKeyId": env.key_id("sym2"),
        "DryRun": True,
        "DryRunModifiers": ["IGNORE_CIPHERTEXT"],
    },
)
reencrypt_row(
    "DryRun with IGNORE_CIPHERTEXT needs SourceKeyId",
    "ValidationException",
    lambda env: {
        "DestinationKeyId": env.key_id("sym2"),
        "DryRun": True,
        "DryRunModifiers": ["IGNORE_CIPHERTEXT"],
    },
)
reencrypt_row(
    "DryRun of a request that would fail gives the real error",
    "NotFoundException",
    lambda env: sym(env, DryRun=True, DestinationKeyId=str(uuid.uuid4())),
)
reencrypt_row(
    "DryRun towards a disabled key",
    "DisabledException",
    lambda env: sym(env, DryRun=True, DestinationKeyId=env.key_id("disabled")),
)


@row("DryRun changes nothing")
def _(env: Env) -> None:
    before = env.kms.describe_key(KeyId=env.key_id("sym2"))["KeyMetadata"]
    with pytest.raises(ClientError):
        env.re_encrypt(**sym(env, DryRun=True))
    after = env.kms.describe_key(KeyId=env.key_id("sym2"))["KeyMetadata"]
    assert after == before


# -- source key and ciphertext --

reencrypt_row(
    "SourceKeyId names another existing key",
    "IncorrectKeyException",
    lambda env: sym(env, SourceKeyId=env.key_id("sym2")),
)
reencrypt_row(
    "SourceKeyId names no key",
    "NotFoundException",
    lambda env: sym(env, SourceKeyId=str(uuid.uuid4())),
)
reencrypt_row(
    "source context missing",
    "InvalidCiphertextException",
    lambda env: sym(env, SourceEncryptionContext={}),
)
reencrypt_row(
    "source context value differs",
    "InvalidCiphertextException",
    lambda env: sym(env, SourceEncryptionContext={**CONTEXT, "tenant": "X"}),
)
reencrypt_row(
    "source context key in another case",
    "InvalidCiphertextException",
    lambda env: sym(
        env,
        SourceEncryptionContext={"purpose": "conformance", "tenant": "Acme"},
    ),
)
reencrypt_row(
    "garbage ciphertext",
    "InvalidCiphertextException",
    lambda env: sym(env, CiphertextBlob=b"not a kms ciphertext at all" * 4),
)
reencrypt_row(
    "truncated ciphertext",
    "InvalidCiphertextException",
    lambda env: sym(env, CiphertextBlob=env.blobs["sym"][:-5]),
)
reencrypt_row(
    "bit-flipped ciphertext",
    "InvalidCiphertextException",
    lambda env: sym(
        env,
        CiphertextBlob=env.blobs["sym"][:-3]
        + bytes([env.blobs["sym"][-3] ^ 1])
        + env.blobs["sym"][-2:],
    ),
)
reencrypt_row(
    "ciphertext base64-encoded twice",
    "InvalidCiphertextException",
    lambda env: sym(env, CiphertextBlob=base64.b64encode(env.blobs["sym"])),
)
reencrypt_row(
    "AWS Encryption SDK message",
    "InvalidCiphertextException",
    lambda env: sym(env, CiphertextBlob=b"\x02\x05\x78" + bytes(200)),
)
reencrypt_row(
    "symmetric ciphertext with SourceEncryptionAlgorithm RSAES_OAEP_SHA_256",
    "InvalidKeyUsageException",
    lambda env: sym(env, SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256"),
    aws_also=("InvalidCiphertextException", "IncorrectKeyException"),
)
reencrypt_row(
    "RSA ciphertext without SourceKeyId",
    "InvalidCiphertextException",
    lambda env: {
        "CiphertextBlob": env.blobs["rsa256"],
        "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
        "DestinationKeyId": env.key_id("sym"),
    },
)
reencrypt_row(
    "RSA ciphertext with the wrong algorithm",
    "IncorrectKeyException",
    lambda env: {
        "CiphertextBlob": env.blobs["rsa256"],
        "SourceKeyId": env.key_id("rsa"),
        "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_1",
        "DestinationKeyId": env.key_id("sym"),
    },
)
reencrypt_row(
    "RSA ciphertext without SourceEncryptionAlgorithm",
    "InvalidKeyUsageException",
    lambda env: {
        "CiphertextBlob": env.blobs["rsa256"],
        "SourceKeyId": env.key_id("rsa"),
        "DestinationKeyId": env.key_id("sym"),
    },
)
reencrypt_row(
    "RSA source with an encryption context",
    "ValidationException",
    lambda env: {
        "CiphertextBlob": env.blobs["rsa256"],
        "SourceKeyId": env.key_id("rsa"),
        "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
        "SourceEncryptionContext": CONTEXT,
        "DestinationKeyId": env.key_id("sym"),
    },
    aws_also=("InvalidKeyUsageException", "InvalidCiphertextException"),
)

# -- destination key and algorithms --

reencrypt_row(
    "RSA destination without DestinationEncryptionAlgorithm",
    "InvalidKeyUsageException",
    lambda env: sym(env, DestinationKeyId=env.key_id("rsa")),
)
reencrypt_row(
    "RSA destination with SYMMETRIC_DEFAULT",
    "InvalidKeyUsageException",
    lambda env: sym(
        env,
        DestinationKeyId=env.key_id("rsa"),
        DestinationEncryptionAlgorithm="SYMMETRIC_DEFAULT",
    ),
)
reencrypt_row(
    "RSA destination with an encryption context",
    "ValidationException",
    lambda env: sym(
        env,
        DestinationKeyId=env.key_id("rsa"),
        DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256",
        DestinationEncryptionContext=CONTEXT,
    ),
    aws_also=("InvalidKeyUsageException",),
)
reencrypt_row(
    "4096-byte plaintext to RSA_2048 with RSAES_OAEP_SHA_256",
    "ValidationException",
    lambda env: sym(
        env,
        CiphertextBlob=env.blobs["big"],
        DestinationKeyId=env.key_id("rsa"),
        DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256",
    ),
    aws_also=("InvalidKeyUsageException", "InvalidCiphertextException"),
)
for _alg in ("RSAES_OAEP_SHA_1", "SM2PKE"):
    reencrypt_row(
        f"symmetric destination with {_alg}",
        "InvalidKeyUsageException",
        lambda env, alg=_alg: sym(env, DestinationEncryptionAlgorithm=alg),
    )
for _name in ("sign", "hmac"):
    reencrypt_row(
        f"destination {_name} key (not ENCRYPT_DECRYPT)",
        "InvalidKeyUsageException",
        lambda env, name=_name: sym(env, DestinationKeyId=env.key_id(name)),
    )

# -- identifiers --

reencrypt_row(
    "destination key id that does not exist",
    "NotFoundException",
    lambda env: sym(env, DestinationKeyId=str(uuid.uuid4())),
)
reencrypt_row(
    "destination alias that does not exist",
    "NotFoundException",
    lambda env: sym(env, DestinationKeyId=f"alias/missing-{env.prefix}"),
)
reencrypt_row(
    "destination malformed key id",
    "NotFoundException",
    lambda env: sym(env, DestinationKeyId="!!!"),
)
reencrypt_row(
    "destination key ARN of another account",
    "NotFoundException",
    lambda env: sym(
        env,
        DestinationKeyId=env.arn("sym2").replace(
            f":{env.account}:", ":210987654321:"
        ),
    ),
    aws_also=("AccessDeniedException",),
)
reencrypt_row(
    "destination key ARN of another Region",
    "NotFoundException",
    lambda env: sym(
        env,
        DestinationKeyId=env.arn("sym2").replace(
            f":{env.region}:",
            ":eu-west-3:" if env.region != "eu-west-3" else ":eu-west-1:",
        ),
    ),
)
for _ident in ("alias/aws/s3", "arn"):
    reencrypt_row(
        f"destination AWS managed key by {'alias ARN' if _ident == 'arn' else 'alias name'}",
        "AccessDeniedException",
        lambda env, ident=_ident: sym(
            env,
            DestinationKeyId=(
                ident
                if ident != "arn"
                else f"arn:aws:kms:{env.region}:{env.account}:alias/aws/s3"
            ),
        ),
    )
reencrypt_row(
    "source AWS managed key",
    "AccessDeniedException",
    lambda env: sym(env, SourceKeyId="alias/aws/s3"),
    aws_also=("IncorrectKeyException",),
)

# -- validation on the server --

reencrypt_row(
    "ciphertext of 6145 bytes",
    "ValidationException",
    lambda env: sym(env, CiphertextBlob=bytes(6145)),
)
reencrypt_row(
    "empty ciphertext",
    "ValidationException",
    lambda env: sym(env, CiphertextBlob=b""),
)
reencrypt_row(
    "missing ciphertext",
    "ValidationException",
    lambda env: {"DestinationKeyId": env.key_id("sym2")},
)
reencrypt_row(
    "destination key id of 2049 characters",
    "ValidationException",
    lambda env: sym(env, DestinationKeyId="a" * 2049),
)
reencrypt_row(
    "11 grant tokens",
    "ValidationException",
    lambda env: sym(env, GrantTokens=[env.grant_token] * 11),
)
reencrypt_row(
    "malformed grant token",
    "InvalidGrantTokenException",
    lambda env: sym(env, GrantTokens=["bogus"]),
)
reencrypt_row(
    "unknown DestinationEncryptionAlgorithm",
    "ValidationException",
    lambda env: sym(env, DestinationEncryptionAlgorithm="FOO"),
)
reencrypt_row(
    "unknown DryRunModifiers value",
    "ValidationException",
    lambda env: sym(env, DryRun=True, DryRunModifiers=["BOGUS"]),
)

# -- key states --

reencrypt_row(
    "source key disabled",
    "DisabledException",
    lambda env: sym(env, CiphertextBlob=env.blobs["disabled"]),
)
reencrypt_row(
    "destination key disabled",
    "DisabledException",
    lambda env: sym(env, DestinationKeyId=env.key_id("disabled")),
)
reencrypt_row(
    "source key pending deletion",
    "KMSInvalidStateException",
    lambda env: sym(env, CiphertextBlob=env.blobs["pending"]),
)
reencrypt_row(
    "destination key pending deletion",
    "KMSInvalidStateException",
    lambda env: sym(env, DestinationKeyId=env.key_id("pending")),
)


def _state_key(env: Env, state: str) -> tuple[str, bytes]:
    # Only the local KMS can put a key in these states on demand.
    key_id = env.create_key(f"state-{state}-{uuid.uuid4().hex[:6]}")
    blob = env.kms.encrypt(
        KeyId=key_id, Plaintext=PLAINTEXT, EncryptionContext=CONTEXT
    )["CiphertextBlob"]
    env.local.set_key_state(key_id, state)
    return key_id, blob


for _state, _code in (
    ("PendingImport", "KMSInvalidStateException"),
    ("PendingReplicaDeletion", "KMSInvalidStateException"),
    ("Unavailable", "KMSInvalidStateException"),
    ("Creating", "KMSInvalidStateException"),
    ("Updating", None),
):

    def _as_source(env: Env, state: str = _state) -> dict[str, Any]:
        _, blob = _state_key(env, state)
        return sym(env, CiphertextBlob=blob)

    def _as_destination(env: Env, state: str = _state) -> dict[str, Any]:
        key_id, _ = _state_key(env, state)
        return sym(env, DestinationKeyId=key_id)

    reencrypt_row(f"source key {_state}", _code, _as_source, local_only=True)
    reencrypt_row(
        f"destination key {_state}", _code, _as_destination, local_only=True
    )

# -- Encrypt and Decrypt follow the same key rules --


@row("Decrypt with the wrong KeyId", "IncorrectKeyException")
def _(env: Env) -> None:
    env.kms.decrypt(
        CiphertextBlob=env.blobs["sym"],
        EncryptionContext=CONTEXT,
        KeyId=env.key_id("sym2"),
    )


@row("Encrypt with a disabled key", "DisabledException")
def _(env: Env) -> None:
    env.kms.encrypt(KeyId=env.key_id("disabled"), Plaintext=PLAINTEXT)


@row("Encrypt with a SIGN_VERIFY key", "InvalidKeyUsageException")
def _(env: Env) -> None:
    env.kms.encrypt(KeyId=env.key_id("sign"), Plaintext=PLAINTEXT)


@row(
    "Encrypt 300 bytes with RSA_2048",
    "ValidationException",
    aws_also=("InvalidKeyUsageException",),
)
def _(env: Env) -> None:
    env.kms.encrypt(
        KeyId=env.key_id("rsa"),
        Plaintext=bytes(300),
        EncryptionAlgorithm="RSAES_OAEP_SHA_1",
    )


@row("GenerateDataKey with an RSA key", "InvalidKeyUsageException")
def _(env: Env) -> None:
    env.kms.generate_data_key(KeyId=env.key_id("rsa"), KeySpec="AES_256")


@pytest.mark.parametrize("case", SCENARIOS, ids=lambda case: case.name)
def test_conformance(env: Env, case: Scenario) -> None:
    if case.local_only and env.target != "local":
        pytest.skip("only the local KMS can put a key in this state")
    if case.expect is None:
        case.run(env)
        return

    with pytest.raises(ClientError) as info:
        case.run(env)

    allowed = (case.expect,) + (case.aws_also if env.target == "aws" else ())
    assert info.value.response["Error"]["Code"] in allowed
