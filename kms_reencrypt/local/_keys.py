"""Keys of the local KMS: the key store, identifier resolution and the
real cryptography (AES-256-GCM ciphertext blobs, RSA-OAEP).

The symmetric ciphertext blob::

    01 02 02 00 78       version and format bytes: the real service's
                         blobs begin the same way (base64 "AQICAH...")
    key id               36 ASCII bytes: a UUID or "mrk-" + 32 hex
    key material id      32 bytes (64 hex digits in responses)
    IV                   12 bytes
    ciphertext           as long as the plaintext
    tag                  16 bytes of the AES-GCM tag

The AES-GCM additional data is the 73-byte header followed by the
canonical encryption context (the pairs sorted, as compact JSON), so the
context must match exactly, byte for byte, and in no particular order.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._errors import KmsError

__all__ = [
    "BLOB_MAGIC",
    "KEY_STATES",
    "Key",
    "KeyStore",
    "canonical_context",
    "rsa_max_plaintext",
]

BLOB_MAGIC = b"\x01\x02\x02\x00\x78"
_KEY_ID_LEN = 36
_MATERIAL_ID_LEN = 32
_IV_LEN = 12
_TAG_LEN = 16
_HEADER_LEN = len(BLOB_MAGIC) + _KEY_ID_LEN + _MATERIAL_ID_LEN
_MIN_BLOB = _HEADER_LEN + _IV_LEN + _TAG_LEN + 1

KEY_STATES = (
    "Creating",
    "Enabled",
    "Disabled",
    "PendingDeletion",
    "PendingImport",
    "PendingReplicaDeletion",
    "Unavailable",
    "Updating",
)

_RSA_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
_RSA_ALGORITHMS = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "RSAES_OAEP_SHA_1": hashes.SHA1,
    "RSAES_OAEP_SHA_256": hashes.SHA256,
}
_UUID = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)
_MRK = re.compile(r"^mrk-[0-9a-f]{32}$")
_ALIAS = re.compile(r"^alias/[a-zA-Z0-9:/_-]+$")

# Key specs the local KMS can create, with the usages each allows.
KEY_SPEC_USAGES: dict[str, tuple[str, ...]] = {
    "SYMMETRIC_DEFAULT": ("ENCRYPT_DECRYPT",),
    "RSA_2048": ("ENCRYPT_DECRYPT", "SIGN_VERIFY"),
    "RSA_3072": ("ENCRYPT_DECRYPT", "SIGN_VERIFY"),
    "RSA_4096": ("ENCRYPT_DECRYPT", "SIGN_VERIFY"),
    "ECC_NIST_P256": ("SIGN_VERIFY",),
    "ECC_NIST_P384": ("SIGN_VERIFY",),
    "HMAC_256": ("GENERATE_VERIFY_MAC",),
}
_HMAC_BYTES = {"HMAC_256": 32}
_CURVES: dict[str, ec.EllipticCurve] = {
    "ECC_NIST_P256": ec.SECP256R1(),
    "ECC_NIST_P384": ec.SECP384R1(),
}


def canonical_context(context: Mapping[str, str] | None) -> bytes:
    """Return the encryption context as additional authenticated data.

    Args:
        context: The pairs; None and empty are the same context.

    Returns:
        The pairs sorted by key, as compact UTF-8 JSON.
    """
    pairs = sorted((context or {}).items())

    return json.dumps(
        pairs, ensure_ascii=False, separators=(",", ":")
    ).encode()


def rsa_max_plaintext(key_spec: str, algorithm: str) -> int:
    """Return the longest plaintext RSA-OAEP can encrypt with a key.

    Args:
        key_spec: ``RSA_2048``, ``RSA_3072`` or ``RSA_4096``.
        algorithm: ``RSAES_OAEP_SHA_1`` or ``RSAES_OAEP_SHA_256``.

    Returns:
        The limit in bytes: key bytes minus twice the hash, minus two.
    """
    digest = _HASHES[algorithm]().digest_size

    return _RSA_BITS[key_spec] // 8 - 2 * digest - 2


def _oaep(algorithm: str) -> padding.OAEP:
    digest = _HASHES[algorithm]()
    return padding.OAEP(
        mgf=padding.MGF1(algorithm=digest), algorithm=digest, label=None
    )


@attrs.define(kw_only=True)
class Key:
    """One KMS key; mutable state is changed under the store's lock.

    Attributes:
        key_id: The key id (UUID, or ``mrk-`` and 32 hex digits).
        arn: The key ARN.
        spec: The ``KeySpec``.
        usage: The ``KeyUsage``.
        state: The ``KeyState``.
        manager: ``CUSTOMER`` or ``AWS``.
    """

    key_id: str
    arn: str
    account_id: str
    spec: str
    usage: str
    state: str = "Enabled"
    manager: str = "CUSTOMER"
    description: str = ""
    multi_region: bool = False
    creation_date: float = attrs.field(factory=time.time)
    deletion_date: float | None = None
    pending_window: int | None = None
    tags: list[dict[str, str]] = attrs.field(factory=list)
    material: bytes = attrs.field(default=b"", repr=False)
    material_id: bytes = attrs.field(default=b"", repr=False)
    private_key: Any = attrs.field(default=None, repr=False)

    @property
    def symmetric(self) -> bool:
        """True for a ``SYMMETRIC_DEFAULT`` key."""
        return self.spec == "SYMMETRIC_DEFAULT"

    @property
    def encryption_algorithms(self) -> tuple[str, ...]:
        """The algorithms this key encrypts with; empty if none."""
        if self.usage != "ENCRYPT_DECRYPT":
            return ()
        if self.symmetric:
            return ("SYMMETRIC_DEFAULT",)

        return _RSA_ALGORITHMS

    def metadata(self, *, region: str) -> dict[str, Any]:
        """Return the ``KeyMetadata`` of DescribeKey, as sent on the wire."""
        meta: dict[str, Any] = {
            "AWSAccountId": self.account_id,
            "KeyId": self.key_id,
            "Arn": self.arn,
            "CreationDate": self.creation_date,
            "Enabled": self.state == "Enabled",
            "Description": self.description,
            "KeyUsage": self.usage,
            "KeyState": self.state,
            "Origin": "AWS_KMS",
            "KeyManager": self.manager,
            "CustomerMasterKeySpec": self.spec,
            "KeySpec": self.spec,
            "MultiRegion": self.multi_region,
        }
        if self.encryption_algorithms:
            meta["EncryptionAlgorithms"] = list(self.encryption_algorithms)
        if self.usage == "SIGN_VERIFY":
            meta["SigningAlgorithms"] = (
                ["ECDSA_SHA_256"]
                if self.spec == "ECC_NIST_P256"
                else ["ECDSA_SHA_384"]
                if self.spec == "ECC_NIST_P384"
                else [
                    "RSASSA_PSS_SHA_256",
                    "RSASSA_PSS_SHA_384",
                    "RSASSA_PSS_SHA_512",
                    "RSASSA_PKCS1_V1_5_SHA_256",
                    "RSASSA_PKCS1_V1_5_SHA_384",
                    "RSASSA_PKCS1_V1_5_SHA_512",
                ]
            )
        if self.usage == "GENERATE_VERIFY_MAC":
            meta["MacAlgorithms"] = ["HMAC_SHA_256"]
        if self.symmetric:
            meta["CurrentKeyMaterialId"] = self.material_id.hex()
        if self.multi_region:
            meta["MultiRegionConfiguration"] = {
                "MultiRegionKeyType": "PRIMARY",
                "PrimaryKey": {"Arn": self.arn, "Region": region},
                "ReplicaKeys": [],
            }
        if self.deletion_date is not None:
            meta["DeletionDate"] = self.deletion_date
            meta["PendingDeletionWindowInDays"] = self.pending_window

        return meta

    # -- cryptography; the key material never changes after creation --

    def seal(
        self, plaintext: bytes, context: Mapping[str, str] | None
    ) -> bytes:
        """Encrypt under this symmetric key into a ciphertext blob.

        Args:
            plaintext: The bytes to encrypt.
            context: The encryption context to bind the blob to.

        Returns:
            The blob, in the format of this module's docstring.
        """
        header = BLOB_MAGIC + self.key_id.encode("ascii") + self.material_id
        iv = os.urandom(_IV_LEN)
        sealed = AESGCM(self.material).encrypt(
            iv, plaintext, header + canonical_context(context)
        )

        return header + iv + sealed

    def open(self, blob: bytes, context: Mapping[str, str] | None) -> bytes:
        """Decrypt a ciphertext blob made by ``seal`` with this key.

        Args:
            blob: The ciphertext blob; its key id was already checked.
            context: The encryption context it must be bound to.

        Returns:
            The plaintext.

        Raises:
            KmsError: ``InvalidCiphertextException`` when the blob was
                not made by this key, is damaged, or the context differs.
        """
        header = blob[:_HEADER_LEN]
        if header[-_MATERIAL_ID_LEN:] != self.material_id:
            raise _invalid_ciphertext()
        iv = blob[_HEADER_LEN : _HEADER_LEN + _IV_LEN]
        try:
            plaintext: bytes = AESGCM(self.material).decrypt(
                iv,
                blob[_HEADER_LEN + _IV_LEN :],
                header + canonical_context(context),
            )
        except InvalidTag:
            raise _invalid_ciphertext() from None

        return plaintext

    def rsa_encrypt(self, plaintext: bytes, algorithm: str) -> bytes:
        """Encrypt with RSA-OAEP under this key's public key.

        Args:
            plaintext: The bytes; the caller checked the size limit.
            algorithm: ``RSAES_OAEP_SHA_1`` or ``RSAES_OAEP_SHA_256``.

        Returns:
            The ciphertext, as long as the key's modulus.
        """
        ciphertext: bytes = self.private_key.public_key().encrypt(
            plaintext, _oaep(algorithm)
        )
        return ciphertext

    def rsa_decrypt(self, ciphertext: bytes, algorithm: str) -> bytes:
        """Decrypt RSA-OAEP ciphertext with this key.

        A ciphertext that decrypts with this key's other OAEP hash gives
        ``IncorrectKeyException``, as AWS answers a wrong algorithm;
        anything else that does not decrypt gives
        ``InvalidCiphertextException``.

        Args:
            ciphertext: The RSA ciphertext.
            algorithm: The algorithm the caller says was used.

        Returns:
            The plaintext.

        Raises:
            KmsError: The ciphertext does not decrypt.
        """
        if len(ciphertext) != _RSA_BITS[self.spec] // 8:
            raise _invalid_ciphertext()
        try:
            plaintext: bytes = self.private_key.decrypt(
                ciphertext, _oaep(algorithm)
            )
        except ValueError:
            pass
        else:
            return plaintext
        other = next(a for a in _RSA_ALGORITHMS if a != algorithm)
        try:
            self.private_key.decrypt(ciphertext, _oaep(other))
        except ValueError:
            raise _invalid_ciphertext() from None
        raise KmsError(
            "IncorrectKeyException",
            "The key ID in the request does not identify a CMK that can "
            "perform this operation with the specified encryption algorithm.",
        )

    def public_key_der(self) -> bytes:
        """Return the public key as DER SubjectPublicKeyInfo."""
        der: bytes = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        return der


def _invalid_ciphertext() -> KmsError:
    return KmsError("InvalidCiphertextException", "")


def blob_key_id(blob: bytes) -> str:
    """Return the key id a symmetric ciphertext blob names.

    Args:
        blob: What the caller sent as ciphertext.

    Returns:
        The key id from the blob header.

    Raises:
        KmsError: ``InvalidCiphertextException`` when the blob is not in
            the local KMS format.
    """
    if len(blob) < _MIN_BLOB or not blob.startswith(BLOB_MAGIC):
        raise _invalid_ciphertext()
    raw = blob[len(BLOB_MAGIC) : len(BLOB_MAGIC) + _KEY_ID_LEN]
    try:
        key_id = raw.decode("ascii")
    except UnicodeDecodeError:
        raise _invalid_ciphertext() from None
    if not (_UUID.match(key_id) or _MRK.match(key_id)):
        raise _invalid_ciphertext()

    return key_id


def partition_of(region: str) -> str:
    """Return the AWS partition of a Region name."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"

    return "aws"


@attrs.define
class _Alias:
    target: str
    created: float = attrs.field(factory=time.time)


@attrs.define
class _Grant:
    grant_id: str
    key_id: str


class KeyStore:
    """All keys, aliases and grants of one local KMS; thread-safe.

    Args:
        region: The Region the keys live in.
        account_id: The account that owns them.
    """

    def __init__(self, *, region: str, account_id: str) -> None:
        self.region = region
        self.account_id = account_id
        self.partition = partition_of(region)
        self.lock = threading.RLock()
        self._keys: dict[str, Key] = {}
        self._aliases: dict[str, _Alias] = {}
        self._grants: dict[str, _Grant] = {}

    # -- identifiers --

    def key_arn(self, key_id: str) -> str:
        """Return the ARN of a key id in this account and Region."""
        return (
            f"arn:{self.partition}:kms:{self.region}:{self.account_id}:"
            f"key/{key_id}"
        )

    def alias_arn(self, name: str) -> str:
        """Return the ARN of an alias name in this account and Region."""
        return (
            f"arn:{self.partition}:kms:{self.region}:{self.account_id}:{name}"
        )

    def resolve(self, identifier: str, *, for_crypto: bool) -> Key:
        """Find the key an identifier names.

        Args:
            identifier: Key id, key ARN, alias name or alias ARN.
            for_crypto: True for a cryptographic operation, where AWS
                managed keys are refused; otherwise naming an absent
                ``alias/aws/...`` creates its AWS managed key, as AWS does.

        Returns:
            The key.

        Raises:
            KmsError: ``NotFoundException`` for an unknown or foreign
                identifier, ``AccessDeniedException`` for an AWS managed
                key in a cryptographic operation.
        """
        name = identifier
        if identifier.startswith("arn:"):
            parts = identifier.split(":", 5)
            if (
                len(parts) != 6
                or parts[1] != self.partition
                or parts[2] != "kms"
                or parts[3] != self.region
                or parts[4] != self.account_id
            ):
                raise _not_found(identifier)
            name = parts[5]
            if name.startswith("key/"):
                name = name[len("key/") :]
                if name.startswith("alias/"):
                    raise _not_found(identifier)
            elif not name.startswith("alias/"):
                raise _not_found(identifier)
        with self.lock:
            if name.startswith("alias/"):
                key = self._by_alias(name, identifier, for_crypto=for_crypto)
            else:
                found = self._keys.get(name)
                if found is None:
                    raise _not_found(identifier)
                key = found
        if for_crypto and key.manager == "AWS":
            raise _access_denied(key.arn)

        return key

    def _by_alias(
        self, name: str, identifier: str, *, for_crypto: bool
    ) -> Key:
        alias = self._aliases.get(name)
        if name.startswith("alias/aws/"):
            if for_crypto:
                raise _access_denied(self.alias_arn(name))
            if alias is None and _ALIAS.match(name):
                key = self._build_key(spec="SYMMETRIC_DEFAULT", manager="AWS")
                self._keys[key.key_id] = key
                key.description = (
                    f"Default key that protects my {name[10:]} resources "
                    "when no other key is defined"
                )
                self._aliases[name] = alias = _Alias(key.key_id)
        if alias is None:
            raise KmsError(
                "NotFoundException",
                f"Alias {self.alias_arn(name)} is not found.",
            )

        return self._keys[alias.target]

    # -- keys --

    def _build_key(
        self,
        *,
        spec: str,
        usage: str = "ENCRYPT_DECRYPT",
        manager: str = "CUSTOMER",
        multi_region: bool = False,
    ) -> Key:
        # Reads only the immutable Region and account: safe without the
        # lock, so that RSA key generation does not block other requests.
        key_id = (
            "mrk-" + secrets.token_hex(16)
            if multi_region
            else str(uuid.uuid4())
        )
        key = Key(
            key_id=key_id,
            arn=self.key_arn(key_id),
            account_id=self.account_id,
            spec=spec,
            usage=usage,
            manager=manager,
            multi_region=multi_region,
        )
        if spec == "SYMMETRIC_DEFAULT":
            key.material = AESGCM.generate_key(bit_length=256)
            key.material_id = os.urandom(_MATERIAL_ID_LEN)
        elif spec in _RSA_BITS:
            key.private_key = rsa.generate_private_key(
                public_exponent=65537, key_size=_RSA_BITS[spec]
            )
        elif spec in _CURVES:
            key.private_key = ec.generate_private_key(_CURVES[spec])
        else:
            key.material = os.urandom(_HMAC_BYTES[spec])

        return key

    def create_key(
        self,
        *,
        spec: str,
        usage: str,
        multi_region: bool = False,
        description: str = "",
        tags: list[dict[str, str]] | None = None,
    ) -> Key:
        """Create a customer managed key; the caller checked the inputs."""
        key = self._build_key(
            spec=spec, usage=usage, multi_region=multi_region
        )
        key.description = description
        key.tags = list(tags or [])
        with self.lock:
            self._keys[key.key_id] = key

        return key

    def all_keys(self) -> list[Key]:
        """Return every key, oldest first."""
        with self.lock:
            return list(self._keys.values())

    def key_by_id(self, key_id: str) -> Key | None:
        """Return the key with an exact key id, or None."""
        with self.lock:
            return self._keys.get(key_id)

    # -- aliases --

    def create_alias(self, name: str, key: Key) -> None:
        """Point a new alias at a key.

        Raises:
            KmsError: ``AlreadyExistsException`` if the alias exists.
        """
        with self.lock:
            self.check_alias_free(name)
            self._aliases[name] = _Alias(key.key_id)

    def check_alias_free(self, name: str) -> None:
        """Refuse an alias name in use.

        Raises:
            KmsError: ``AlreadyExistsException`` if the alias exists.
        """
        with self.lock:
            if name in self._aliases:
                raise KmsError(
                    "AlreadyExistsException",
                    f"An alias with the name {self.alias_arn(name)} "
                    "already exists",
                )

    def delete_alias(self, name: str) -> None:
        """Remove an alias.

        Raises:
            KmsError: ``NotFoundException`` if there is no such alias.
        """
        with self.lock:
            if self._aliases.pop(name, None) is None:
                raise KmsError(
                    "NotFoundException",
                    f"Alias {self.alias_arn(name)} is not found.",
                )

    def aliases(self) -> list[tuple[str, str, float]]:
        """Return (name, target key id, creation time) of every alias."""
        with self.lock:
            return [(n, a.target, a.created) for n, a in self._aliases.items()]

    # -- grants --

    def create_grant(self, key: Key) -> tuple[str, str]:
        """Record a grant on a key; return its id and token."""
        grant_id = secrets.token_hex(32)
        token = base64.b64encode(
            b"local-kms-grant:" + secrets.token_bytes(96)
        ).decode("ascii")
        with self.lock:
            self._grants[token] = _Grant(grant_id, key.key_id)

        return grant_id, token

    def grant_token_known(self, token: str) -> bool:
        """True if this store issued the grant token."""
        with self.lock:
            return token in self._grants


def _not_found(identifier: str) -> KmsError:
    if _UUID.match(identifier) or _MRK.match(identifier):
        return KmsError(
            "NotFoundException", f"Key '{identifier}' does not exist"
        )
    if identifier.startswith("arn:") and ":key/" in identifier:
        return KmsError(
            "NotFoundException", f"Key '{identifier}' does not exist"
        )

    return KmsError("NotFoundException", f"Invalid keyId {identifier}")


def _access_denied(resource: str) -> KmsError:
    return KmsError(
        "AccessDeniedException",
        f"The caller is not authorized to use {resource} directly: AWS "
        "managed keys are used only by the AWS service that owns them.",
    )
