"""The KMS operations of the local KMS, on decoded JSON requests.

Each handler takes the request body (blobs still base64) and returns the
response body, or raises ``KmsError``. The checks follow the real
service's behaviour as written down in docs/local-kms.md; where AWS does
not document an error code, the choice made is named in a comment.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from ._errors import KmsError
from ._keys import (
    KEY_SPEC_USAGES,
    Key,
    KeyStore,
    blob_key_id,
    rsa_max_plaintext,
)

__all__ = ["CRYPTO_OPERATIONS", "OPERATIONS", "Operations"]

ALGORITHMS = (
    "SYMMETRIC_DEFAULT",
    "RSAES_OAEP_SHA_1",
    "RSAES_OAEP_SHA_256",
    "SM2PKE",
)
ALL_KEY_SPECS = (
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "SYMMETRIC_DEFAULT",
    "HMAC_224",
    "HMAC_256",
    "HMAC_384",
    "HMAC_512",
    "SM2",
    "ML_DSA_44",
    "ML_DSA_65",
    "ML_DSA_87",
    "ECC_NIST_EDWARDS25519",
    "ML_KEM_512",
    "ML_KEM_768",
    "ML_KEM_1024",
)
KEY_USAGES = (
    "SIGN_VERIFY",
    "ENCRYPT_DECRYPT",
    "GENERATE_VERIFY_MAC",
    "KEY_AGREEMENT",
    "ENCAPSULATE_DECAPSULATE",
)
_USABLE_STATES = ("Enabled", "Updating")
_STATE_WORDS = {
    "PendingDeletion": "pending deletion",
    "PendingReplicaDeletion": "pending replica deletion",
    "PendingImport": "pending import",
    "Unavailable": "unavailable",
    "Creating": "creating",
}
_SYMMETRIC_MAX_PLAINTEXT = 4096
_MAX_BLOB = 6144
_MAX_KEY_ID = 2048
_MAX_GRANT_TOKENS = 10
_MAX_GRANT_TOKEN = 8192


class _Validation:
    """Collects constraint violations into one ``ValidationException``."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def null(self, field: str) -> None:
        self.problems.append(
            f"Value null at '{field}' failed to satisfy constraint: "
            "Member must not be null"
        )

    def length(self, value: Any, field: str, low: int, high: int) -> None:
        if value is None:
            return
        if len(value) < low:
            self.problems.append(
                f"Value at '{field}' failed to satisfy constraint: Member "
                f"must have length greater than or equal to {low}"
            )
        elif len(value) > high:
            self.problems.append(
                f"Value at '{field}' failed to satisfy constraint: Member "
                f"must have length less than or equal to {high}"
            )

    def enum(self, value: Any, field: str, values: tuple[str, ...]) -> None:
        if value is not None and value not in values:
            self.problems.append(
                f"Value '{value}' at '{field}' failed to satisfy "
                "constraint: Member must satisfy enum value set: "
                f"[{', '.join(values)}]"
            )

    def grant_tokens(self, tokens: list[str] | None) -> None:
        self.length(tokens, "grantTokens", 0, _MAX_GRANT_TOKENS)
        for index, token in enumerate(tokens or ()):
            self.length(
                token, f"grantTokens.{index + 1}.member", 1, _MAX_GRANT_TOKEN
            )

    def check(self) -> None:
        if not self.problems:
            return
        count = len(self.problems)
        noun = "error" if count == 1 else "errors"
        raise KmsError(
            "ValidationException",
            f"{count} validation {noun} detected: " + "; ".join(self.problems),
        )


def _serialization(message: str) -> KmsError:
    return KmsError("SerializationException", message)


def _opt_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _serialization(f"{name} must be a string")
    if not value.isascii():
        # Text from Python (LocalKms methods) can hold lone surrogates,
        # which a JSON request cannot: refuse them the same way.
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _serialization(f"{name} is not Unicode text") from None
    return value


def _opt_blob(body: Mapping[str, Any], name: str) -> bytes | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _serialization(f"{name} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _serialization(f"{name} is not valid base64") from None


def _opt_list(body: Mapping[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(item, str) for item in value
    ):
        raise _serialization(f"{name} must be a list of strings")
    return value


def _opt_context(body: Mapping[str, Any], name: str) -> dict[str, str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _serialization(f"{name} must map strings to strings")
    return value


def _opt_int(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _serialization(f"{name} must be an integer")
    return value


def _opt_tags(body: Mapping[str, Any]) -> list[dict[str, str]]:
    tags = body.get("Tags")
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(
        isinstance(tag, dict)
        and isinstance(tag.get("TagKey"), str)
        and isinstance(tag.get("TagValue"), str)
        for tag in tags
    ):
        raise _serialization(
            "Tags must be a list of objects with TagKey and TagValue strings"
        )
    return [{"TagKey": t["TagKey"], "TagValue": t["TagValue"]} for t in tags]


def _opt_bool(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _serialization(f"{name} must be a boolean")
    return value


def _b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode("ascii")


def _usable(key: Key) -> None:
    """Refuse a key whose state forbids cryptographic operations."""
    if key.state in _USABLE_STATES:
        return
    if key.state == "Disabled":
        raise KmsError("DisabledException", f"{key.arn} is disabled.")
    raise KmsError(
        "KMSInvalidStateException",
        f"{key.arn} is {_STATE_WORDS.get(key.state, key.state)}.",
    )


def _algorithm(key: Key, requested: str | None, operation: str) -> str:
    """Return the encryption algorithm to use with a key, or refuse."""
    if key.usage != "ENCRYPT_DECRYPT":
        raise KmsError(
            "InvalidKeyUsageException",
            f"{key.arn} key usage is {key.usage} which is not valid for "
            f"{operation}.",
        )
    algorithm = requested or "SYMMETRIC_DEFAULT"
    if algorithm not in key.encryption_algorithms:
        raise KmsError(
            "InvalidKeyUsageException",
            f"Algorithm {algorithm} is incompatible with key spec {key.spec}.",
        )

    return algorithm


def _no_context_for_asymmetric(
    key: Key, context: Mapping[str, str] | None
) -> None:
    # AWS does not document the code for a context sent with an
    # asymmetric key; the local KMS answers ValidationException and the
    # conformance suite accepts InvalidKeyUsageException from AWS too.
    if context and not key.symmetric:
        raise KmsError(
            "ValidationException",
            "EncryptionContext is not supported with asymmetric keys "
            f"({key.spec}).",
        )


def _fits(key: Key, algorithm: str, plaintext: bytes) -> None:
    # AWS does not document the code for a plaintext longer than an RSA
    # key can take; the local KMS answers ValidationException.
    if key.symmetric:
        limit = _SYMMETRIC_MAX_PLAINTEXT
    else:
        limit = rsa_max_plaintext(key.spec, algorithm)
    if len(plaintext) > limit:
        raise KmsError(
            "ValidationException",
            f"Plaintext of {len(plaintext)} bytes is longer than the "
            f"{limit} bytes {key.spec} with {algorithm} can encrypt.",
        )


class Operations:
    """The operation handlers over one key store.

    Args:
        store: The keys, aliases and grants.
    """

    def __init__(self, store: KeyStore) -> None:
        self.store = store

    # -- shared steps --

    def _key(self, identifier: str, *, for_crypto: bool = True) -> Key:
        return self.store.resolve(identifier, for_crypto=for_crypto)

    def _grants(self, tokens: list[str] | None) -> None:
        for token in tokens or ():
            if not self.store.grant_token_known(token):
                raise KmsError(
                    "InvalidGrantTokenException",
                    "The grant token is not valid.",
                )

    def _dry_run(self, operation: str) -> None:
        raise KmsError(
            "DryRunOperationException",
            f"The {operation} request would have succeeded, but the DryRun "
            "flag is set.",
        )

    def _encrypt(
        self,
        key: Key,
        plaintext: bytes,
        *,
        algorithm: str,
        context: Mapping[str, str] | None,
    ) -> bytes:
        if key.symmetric:
            return key.seal(plaintext, context)
        return key.rsa_encrypt(plaintext, algorithm)

    def _decrypt(
        self,
        blob: bytes,
        *,
        key_id: str | None,
        algorithm: str | None,
        context: Mapping[str, str] | None,
        operation: str,
    ) -> tuple[Key, str, bytes]:
        """Find the key of a ciphertext, check it, and decrypt.

        Returns:
            The key, the algorithm used and the plaintext.
        """
        named = self._key(key_id) if key_id is not None else None
        if named is not None and not named.symmetric:
            _usable(named)
            used = _algorithm(named, algorithm, operation)
            _no_context_for_asymmetric(named, context)
            return named, used, named.rsa_decrypt(blob, used)

        # Symmetric: the blob names its key. An RSA ciphertext sent
        # without SourceKeyId lands here and is not in the blob format.
        blob_id = blob_key_id(blob)
        if named is not None and named.key_id != blob_id:
            raise KmsError(
                "IncorrectKeyException",
                "The key ID in the request does not identify a CMK that "
                "can perform this operation.",
            )
        key = named or self.store.key_by_id(blob_id)
        if key is None:
            raise KmsError("InvalidCiphertextException", "")
        if key.manager == "AWS":
            # Resolving it as a cryptographic key refuses it.
            self.store.resolve(key.arn, for_crypto=True)
        _usable(key)
        used = _algorithm(key, algorithm, operation)

        return key, used, key.open(blob, context)

    # -- cryptographic operations --

    def re_encrypt(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """ReEncrypt: decrypt with the source key, encrypt with the
        destination key, both inside the service."""
        blob = _opt_blob(body, "CiphertextBlob")
        source_id = _opt_str(body, "SourceKeyId")
        dest_id = _opt_str(body, "DestinationKeyId")
        source_alg = _opt_str(body, "SourceEncryptionAlgorithm")
        dest_alg = _opt_str(body, "DestinationEncryptionAlgorithm")
        source_ctx = _opt_context(body, "SourceEncryptionContext")
        dest_ctx = _opt_context(body, "DestinationEncryptionContext")
        tokens = _opt_list(body, "GrantTokens")
        dry_run = _opt_bool(body, "DryRun")
        modifiers = _opt_list(body, "DryRunModifiers") or []

        ignore_ciphertext = dry_run and "IGNORE_CIPHERTEXT" in modifiers
        checks = _Validation()
        if blob is None and not ignore_ciphertext:
            checks.null("ciphertextBlob")
        checks.length(blob, "ciphertextBlob", 1, _MAX_BLOB)
        if dest_id is None:
            checks.null("destinationKeyId")
        checks.length(dest_id, "destinationKeyId", 1, _MAX_KEY_ID)
        checks.length(source_id, "sourceKeyId", 1, _MAX_KEY_ID)
        if ignore_ciphertext and source_id is None:
            checks.null("sourceKeyId")
        checks.enum(source_alg, "sourceEncryptionAlgorithm", ALGORITHMS)
        checks.enum(dest_alg, "destinationEncryptionAlgorithm", ALGORITHMS)
        checks.grant_tokens(tokens)
        for index, modifier in enumerate(modifiers):
            checks.enum(
                modifier,
                f"dryRunModifiers.{index + 1}.member",
                ("IGNORE_CIPHERTEXT",),
            )
        checks.check()
        assert dest_id is not None
        self._grants(tokens)

        dest = self._key(dest_id)
        _usable(dest)
        used_dest_alg = _algorithm(dest, dest_alg, "ReEncrypt")
        _no_context_for_asymmetric(dest, dest_ctx)

        if ignore_ciphertext:
            assert source_id is not None
            source = self._key(source_id)
            _usable(source)
            _algorithm(source, source_alg, "ReEncrypt")
            _no_context_for_asymmetric(source, source_ctx)
            self._dry_run("ReEncrypt")
        assert blob is not None

        source, used_source_alg, plaintext = self._decrypt(
            blob,
            key_id=source_id,
            algorithm=source_alg,
            context=source_ctx,
            operation="ReEncrypt",
        )
        _fits(dest, used_dest_alg, plaintext)
        if dry_run:
            self._dry_run("ReEncrypt")
        new_blob = self._encrypt(
            dest, plaintext, algorithm=used_dest_alg, context=dest_ctx
        )

        response: dict[str, Any] = {
            "CiphertextBlob": _b64(new_blob),
            "SourceKeyId": source.arn,
            "KeyId": dest.arn,
            "SourceEncryptionAlgorithm": used_source_alg,
            "DestinationEncryptionAlgorithm": used_dest_alg,
        }
        if source.symmetric:
            response["SourceKeyMaterialId"] = source.material_id.hex()
        if dest.symmetric:
            response["DestinationKeyMaterialId"] = dest.material_id.hex()

        return response

    def encrypt(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Encrypt up to 4096 bytes (less for RSA keys)."""
        key_id = _opt_str(body, "KeyId")
        plaintext = _opt_blob(body, "Plaintext")
        context = _opt_context(body, "EncryptionContext")
        algorithm = _opt_str(body, "EncryptionAlgorithm")
        tokens = _opt_list(body, "GrantTokens")
        dry_run = _opt_bool(body, "DryRun")

        checks = _Validation()
        if key_id is None:
            checks.null("keyId")
        checks.length(key_id, "keyId", 1, _MAX_KEY_ID)
        if plaintext is None:
            checks.null("plaintext")
        checks.length(plaintext, "plaintext", 1, _SYMMETRIC_MAX_PLAINTEXT)
        checks.enum(algorithm, "encryptionAlgorithm", ALGORITHMS)
        checks.grant_tokens(tokens)
        checks.check()
        assert key_id is not None
        assert plaintext is not None
        self._grants(tokens)

        key = self._key(key_id)
        _usable(key)
        used = _algorithm(key, algorithm, "Encrypt")
        _no_context_for_asymmetric(key, context)
        _fits(key, used, plaintext)
        if dry_run:
            self._dry_run("Encrypt")
        blob = self._encrypt(key, plaintext, algorithm=used, context=context)

        response: dict[str, Any] = {
            "CiphertextBlob": _b64(blob),
            "KeyId": key.arn,
            "EncryptionAlgorithm": used,
        }
        if key.symmetric:
            response["KeyMaterialId"] = key.material_id.hex()

        return response

    def decrypt(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Decrypt a ciphertext made by this KMS or with a public key."""
        blob = _opt_blob(body, "CiphertextBlob")
        key_id = _opt_str(body, "KeyId")
        context = _opt_context(body, "EncryptionContext")
        algorithm = _opt_str(body, "EncryptionAlgorithm")
        tokens = _opt_list(body, "GrantTokens")
        dry_run = _opt_bool(body, "DryRun")

        checks = _Validation()
        if blob is None:
            checks.null("ciphertextBlob")
        checks.length(blob, "ciphertextBlob", 1, _MAX_BLOB)
        checks.length(key_id, "keyId", 1, _MAX_KEY_ID)
        checks.enum(algorithm, "encryptionAlgorithm", ALGORITHMS)
        checks.grant_tokens(tokens)
        checks.check()
        assert blob is not None
        self._grants(tokens)

        key, used, plaintext = self._decrypt(
            blob,
            key_id=key_id,
            algorithm=algorithm,
            context=context,
            operation="Decrypt",
        )
        if dry_run:
            self._dry_run("Decrypt")

        response: dict[str, Any] = {
            "Plaintext": _b64(plaintext),
            "KeyId": key.arn,
            "EncryptionAlgorithm": used,
        }
        if key.symmetric:
            response["KeyMaterialId"] = key.material_id.hex()

        return response

    def _data_key(
        self, body: Mapping[str, Any], operation: str
    ) -> tuple[Key, bytes, bytes]:
        key_id = _opt_str(body, "KeyId")
        context = _opt_context(body, "EncryptionContext")
        spec = _opt_str(body, "KeySpec")
        count = _opt_int(body, "NumberOfBytes")
        tokens = _opt_list(body, "GrantTokens")
        dry_run = _opt_bool(body, "DryRun")

        checks = _Validation()
        if key_id is None:
            checks.null("keyId")
        checks.length(key_id, "keyId", 1, _MAX_KEY_ID)
        checks.enum(spec, "keySpec", ("AES_256", "AES_128"))
        if count is not None and not 1 <= count <= 1024:
            checks.problems.append(
                "Value at 'numberOfBytes' failed to satisfy constraint: "
                "Member must have value between 1 and 1024"
            )
        checks.grant_tokens(tokens)
        checks.check()
        assert key_id is not None
        if (spec is None) == (count is None):
            raise KmsError(
                "ValidationException",
                "Specify either KeySpec or NumberOfBytes, not both.",
            )
        self._grants(tokens)

        key = self._key(key_id)
        _usable(key)
        if not key.symmetric:
            raise KmsError(
                "InvalidKeyUsageException",
                f"{key.arn} key usage is {key.usage} and key spec is "
                f"{key.spec}, which is not valid for {operation}.",
            )
        _algorithm(key, None, operation)
        if dry_run:
            self._dry_run(operation)
        size = (
            count if count is not None else (32 if spec == "AES_256" else 16)
        )
        plaintext = os.urandom(size)

        return key, plaintext, key.seal(plaintext, context)

    def generate_data_key(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """GenerateDataKey: a random data key, plaintext and encrypted."""
        key, plaintext, blob = self._data_key(body, "GenerateDataKey")

        return {
            "CiphertextBlob": _b64(blob),
            "Plaintext": _b64(plaintext),
            "KeyId": key.arn,
            "KeyMaterialId": key.material_id.hex(),
        }

    def generate_data_key_without_plaintext(
        self, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """GenerateDataKeyWithoutPlaintext: only the encrypted data key."""
        key, _, blob = self._data_key(body, "GenerateDataKeyWithoutPlaintext")

        return {
            "CiphertextBlob": _b64(blob),
            "KeyId": key.arn,
            "KeyMaterialId": key.material_id.hex(),
        }

    # -- key management --

    def create_key(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """CreateKey, for the key specs the local KMS implements."""
        spec = _opt_str(body, "KeySpec")
        if spec is None:
            spec = _opt_str(body, "CustomerMasterKeySpec")
        usage = _opt_str(body, "KeyUsage")
        origin = _opt_str(body, "Origin")
        description = _opt_str(body, "Description") or ""
        multi_region = _opt_bool(body, "MultiRegion")
        tags = _opt_tags(body)
        custom_store = _opt_str(body, "CustomKeyStoreId")

        checks = _Validation()
        checks.enum(spec, "keySpec", ALL_KEY_SPECS)
        checks.enum(usage, "keyUsage", KEY_USAGES)
        checks.enum(
            origin,
            "origin",
            ("AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"),
        )
        checks.length(description, "description", 0, 8192)
        checks.length(custom_store, "customKeyStoreId", 1, 64)
        checks.length(tags, "tags", 0, 50)
        for index, tag in enumerate(tags):
            checks.length(
                tag["TagKey"], f"tags.{index + 1}.member.tagKey", 1, 128
            )
            checks.length(
                tag["TagValue"], f"tags.{index + 1}.member.tagValue", 0, 256
            )
        checks.check()
        spec = spec or "SYMMETRIC_DEFAULT"
        usage = usage or "ENCRYPT_DECRYPT"
        if origin not in (None, "AWS_KMS") or custom_store is not None:
            raise KmsError(
                "UnsupportedOperationException",
                "The local KMS creates only AWS_KMS keys: imported key "
                "material and custom key stores are not implemented.",
            )
        if spec not in KEY_SPEC_USAGES:
            raise KmsError(
                "UnsupportedOperationException",
                f"The local KMS does not implement key spec {spec}.",
            )
        if usage not in KEY_SPEC_USAGES[spec]:
            raise KmsError(
                "ValidationException",
                f"KeyUsage {usage} is not compatible with KeySpec {spec}.",
            )
        key = self.store.create_key(
            spec=spec,
            usage=usage,
            multi_region=multi_region,
            description=description,
            tags=tags,
        )

        return {"KeyMetadata": key.metadata(region=self.store.region)}

    def described_key(self, body: Mapping[str, Any]) -> Key:
        """The key a DescribeKey request names, after its checks."""
        key_id = _opt_str(body, "KeyId")
        checks = _Validation()
        if key_id is None:
            checks.null("keyId")
        checks.length(key_id, "keyId", 1, _MAX_KEY_ID)
        checks.grant_tokens(_opt_list(body, "GrantTokens"))
        checks.check()
        assert key_id is not None

        return self._key(key_id, for_crypto=False)

    def describe_key(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """DescribeKey; creates an AWS managed key named by its alias."""
        key = self.described_key(body)
        with self.store.lock:
            return {"KeyMetadata": key.metadata(region=self.store.region)}

    def _managed_key(self, body: Mapping[str, Any]) -> Key:
        # Key-management operations take a key id or key ARN only.
        key_id = _opt_str(body, "KeyId")
        checks = _Validation()
        if key_id is None:
            checks.null("keyId")
        checks.length(key_id, "keyId", 1, _MAX_KEY_ID)
        checks.check()
        assert key_id is not None
        if key_id.startswith("alias/") or ":alias/" in key_id:
            raise KmsError("NotFoundException", f"Invalid keyId {key_id}")
        key = self._key(key_id, for_crypto=False)
        if key.manager == "AWS":
            raise KmsError(
                "AccessDeniedException",
                f"AWS managed key {key.arn} cannot be modified.",
            )

        return key

    def _set_state(
        self, body: Mapping[str, Any], state: str
    ) -> dict[str, Any]:
        key = self._managed_key(body)
        with self.store.lock:
            if key.state in ("PendingDeletion", "PendingReplicaDeletion"):
                raise KmsError(
                    "KMSInvalidStateException",
                    f"{key.arn} is {_STATE_WORDS[key.state]}.",
                )
            key.state = state

        return {}

    def enable_key(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """EnableKey."""
        return self._set_state(body, "Enabled")

    def disable_key(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """DisableKey."""
        return self._set_state(body, "Disabled")

    def schedule_key_deletion(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """ScheduleKeyDeletion: the key goes to PendingDeletion; it is
        never actually deleted by the local KMS."""
        key = self._managed_key(body)
        days = _opt_int(body, "PendingWindowInDays")
        if days is None:
            days = 30
        if not 7 <= days <= 30:
            raise KmsError(
                "ValidationException",
                "1 validation error detected: Value at "
                "'pendingWindowInDays' failed to satisfy constraint: Member "
                "must have value between 7 and 30",
            )
        with self.store.lock:
            if key.state in ("PendingDeletion", "PendingReplicaDeletion"):
                raise KmsError(
                    "KMSInvalidStateException",
                    f"{key.arn} is {_STATE_WORDS[key.state]}.",
                )
            key.state = "PendingDeletion"
            key.pending_window = days
            key.deletion_date = time.time() + days * 86400

        return {
            "KeyId": key.arn,
            "DeletionDate": key.deletion_date,
            "KeyState": "PendingDeletion",
            "PendingWindowInDays": days,
        }

    def cancel_key_deletion(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """CancelKeyDeletion: back to Disabled, as AWS does."""
        key = self._managed_key(body)
        with self.store.lock:
            if key.state != "PendingDeletion":
                raise KmsError(
                    "KMSInvalidStateException",
                    f"{key.arn} is not pending deletion.",
                )
            key.state = "Disabled"
            key.deletion_date = None
            key.pending_window = None

        return {"KeyId": key.arn}

    def check_new_alias(self, name: str) -> None:
        """Refuse, as CreateAlias would, an alias name that cannot be
        created: of the wrong type or form, or taken.

        Raises:
            KmsError: What CreateAlias answers for that name.
        """
        self._alias_name({"AliasName": name, "TargetKeyId": "-"})
        self.store.check_alias_free(name)

    def _alias_name(self, body: Mapping[str, Any]) -> tuple[str, str]:
        """The alias name and target key id of a CreateAlias request,
        checked as AWS checks them."""
        name = _opt_str(body, "AliasName")
        target = _opt_str(body, "TargetKeyId")
        checks = _Validation()
        if name is None:
            checks.null("aliasName")
        checks.length(name, "aliasName", 1, 256)
        if target is None:
            checks.null("targetKeyId")
        checks.length(target, "targetKeyId", 1, _MAX_KEY_ID)
        checks.check()
        assert name is not None
        assert target is not None
        if (
            not name.startswith("alias/")
            or name.startswith("alias/aws/")
            or not all(
                c.isascii() and (c.isalnum() or c in ":/_-") for c in name
            )
        ):
            raise KmsError(
                "InvalidAliasNameException",
                f"Alias name {name} is not valid: it must start with "
                "'alias/', not 'alias/aws/', and use only letters, digits "
                "and ':/_-'.",
            )
        return name, target

    def create_alias(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """CreateAlias for a customer managed key."""
        name, target = self._alias_name(body)
        key = self._managed_key({"KeyId": target})
        if key.state in ("PendingDeletion", "PendingReplicaDeletion"):
            raise KmsError(
                "KMSInvalidStateException",
                f"{key.arn} is {_STATE_WORDS[key.state]}.",
            )
        self.store.create_alias(name, key)

        return {}

    def delete_alias(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """DeleteAlias."""
        name = _opt_str(body, "AliasName")
        checks = _Validation()
        if name is None:
            checks.null("aliasName")
        checks.length(name, "aliasName", 1, 256)
        checks.check()
        assert name is not None
        if name.startswith("alias/aws/"):
            raise KmsError(
                "AccessDeniedException",
                f"Alias {name} belongs to AWS and cannot be deleted.",
            )
        self.store.delete_alias(name)

        return {}

    def list_keys(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """ListKeys, paginated with Limit and Marker."""
        keys = [
            {"KeyId": key.key_id, "KeyArn": key.arn}
            for key in self.store.all_keys()
        ]
        return _page(keys, body)

    def list_aliases(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """ListAliases, optionally for one key, paginated."""
        key_id = _opt_str(body, "KeyId")
        checks = _Validation()
        checks.length(key_id, "keyId", 1, _MAX_KEY_ID)
        checks.check()
        wanted = (
            self._key(key_id, for_crypto=False).key_id
            if key_id is not None
            else None
        )
        aliases = [
            {
                "AliasName": name,
                "AliasArn": self.store.alias_arn(name),
                "TargetKeyId": target,
                "CreationDate": created,
                "LastUpdatedDate": created,
            }
            for name, target, created in sorted(self.store.aliases())
            if wanted is None or target == wanted
        ]
        return _page(aliases, body, name="Aliases")

    def create_grant(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """CreateGrant: returns a grant id and a token this KMS accepts.

        Grants are not enforced: the local KMS has no permissions model.
        """
        key_id = _opt_str(body, "KeyId")
        grantee = _opt_str(body, "GranteePrincipal")
        operations = _opt_list(body, "Operations")
        checks = _Validation()
        if key_id is None:
            checks.null("keyId")
        checks.length(key_id, "keyId", 1, _MAX_KEY_ID)
        if grantee is None:
            checks.null("granteePrincipal")
        if operations is None:
            checks.null("operations")
        checks.check()
        assert key_id is not None
        key = self._managed_key({"KeyId": key_id})
        grant_id, token = self.store.create_grant(key)

        return {"GrantId": grant_id, "GrantToken": token}

    def get_public_key(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """GetPublicKey: DER SubjectPublicKeyInfo of an asymmetric key."""
        key_id = _opt_str(body, "KeyId")
        checks = _Validation()
        if key_id is None:
            checks.null("keyId")
        checks.length(key_id, "keyId", 1, _MAX_KEY_ID)
        checks.check()
        assert key_id is not None
        key = self._key(key_id)
        _usable(key)
        if key.private_key is None:
            raise KmsError(
                "UnsupportedOperationException",
                f"{key.arn} key spec {key.spec} has no public key.",
            )

        response: dict[str, Any] = {
            "KeyId": key.arn,
            "PublicKey": _b64(key.public_key_der()),
            "CustomerMasterKeySpec": key.spec,
            "KeySpec": key.spec,
            "KeyUsage": key.usage,
        }
        if key.encryption_algorithms:
            response["EncryptionAlgorithms"] = list(key.encryption_algorithms)
        else:
            meta = key.metadata(region=self.store.region)
            response["SigningAlgorithms"] = meta["SigningAlgorithms"]

        return response


def _page(
    items: list[dict[str, Any]],
    body: Mapping[str, Any],
    *,
    name: str = "Keys",
) -> dict[str, Any]:
    limit = _opt_int(body, "Limit")
    if limit is None:
        limit = 100
    if not 1 <= limit <= 1000:
        raise KmsError(
            "ValidationException",
            "1 validation error detected: Value at 'limit' failed to "
            "satisfy constraint: Member must have value between 1 and 1000",
        )
    marker = _opt_str(body, "Marker")
    start = 0
    if marker is not None:
        # Markers this KMS hands out are item offsets.
        if not (marker.isascii() and marker.isdigit()) or len(marker) > 9:
            raise KmsError(
                "InvalidMarkerException", "The marker is not valid."
            )
        start = int(marker)
    page = items[start : start + limit]
    response: dict[str, Any] = {name: page, "Truncated": False}
    if start + limit < len(items):
        response["Truncated"] = True
        response["NextMarker"] = str(start + limit)

    return response


Handler = Callable[[Operations, Mapping[str, Any]], dict[str, Any]]

#: Operation name -> handler.
OPERATIONS: dict[str, Handler] = {
    "ReEncrypt": Operations.re_encrypt,
    "Encrypt": Operations.encrypt,
    "Decrypt": Operations.decrypt,
    "GenerateDataKey": Operations.generate_data_key,
    "GenerateDataKeyWithoutPlaintext": (
        Operations.generate_data_key_without_plaintext
    ),
    "CreateKey": Operations.create_key,
    "DescribeKey": Operations.describe_key,
    "EnableKey": Operations.enable_key,
    "DisableKey": Operations.disable_key,
    "ScheduleKeyDeletion": Operations.schedule_key_deletion,
    "CancelKeyDeletion": Operations.cancel_key_deletion,
    "CreateAlias": Operations.create_alias,
    "DeleteAlias": Operations.delete_alias,
    "ListKeys": Operations.list_keys,
    "ListAliases": Operations.list_aliases,
    "CreateGrant": Operations.create_grant,
    "GetPublicKey": Operations.get_public_key,
}

#: The operations that faults apply to.
CRYPTO_OPERATIONS = frozenset(
    {
        "ReEncrypt",
        "Encrypt",
        "Decrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
    }
)
