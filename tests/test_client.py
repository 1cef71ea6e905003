"""The ReEncrypt facade end to end against the local KMS over HTTP."""

from __future__ import annotations

import pickle
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError, ParamValidationError

import kms_reencrypt
from kms_reencrypt import (
    ConfigurationError,
    DryRunResult,
    EncryptionAlgorithm,
    InvalidCiphertextException,
    NotFoundException,
    ParameterTypeError,
    ReEncryptClient,
    ReEncryptResult,
)

CONTEXT = {"tenant": "acme", "purpose": "test"}


@pytest.fixture
def kms(local_kms: Any) -> Any:
    return local_kms.kms_client()


@pytest.fixture
def keys(kms: Any) -> dict[str, str]:
    source = kms.create_key()["KeyMetadata"]
    destination = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/source", TargetKeyId=source["KeyId"])
    kms.create_alias(AliasName="alias/dest", TargetKeyId=destination["KeyId"])
    region, account = source["Arn"].split(":")[3:5]
    return {
        "source_id": source["KeyId"],
        "source_arn": source["Arn"],
        "source_alias": "alias/source",
        "source_alias_arn": f"arn:aws:kms:{region}:{account}:alias/source",
        "dest_id": destination["KeyId"],
        "dest_arn": destination["Arn"],
        "dest_alias": "alias/dest",
        "dest_alias_arn": f"arn:aws:kms:{region}:{account}:alias/dest",
    }


@pytest.fixture
def blob(kms: Any, keys: dict[str, str]) -> bytes:
    answer = kms.encrypt(
        KeyId=keys["source_id"],
        Plaintext=b"sixteen byte key",
        EncryptionContext=CONTEXT,
    )
    return bytes(answer["CiphertextBlob"])


FORMS = ["id", "arn", "alias", "alias_arn"]


@pytest.mark.parametrize("source_form", FORMS)
@pytest.mark.parametrize("dest_form", FORMS)
def test_round_trip_with_every_identifier_form(
    local_kms: Any,
    kms: Any,
    keys: dict[str, str],
    blob: bytes,
    source_form: str,
    dest_form: str,
) -> None:
    """Source and destination may each be named by key ID, key ARN, alias
    name or alias ARN; the new ciphertext decrypts to the same data under
    the destination key."""
    facade = local_kms.client()

    result = facade.re_encrypt(
        CiphertextBlob=blob,
        SourceKeyId=keys[f"source_{source_form}"],
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=keys[f"dest_{dest_form}"],
        DestinationEncryptionContext=CONTEXT,
    )

    assert isinstance(result, ReEncryptResult)
    assert keys["dest_arn"] == result.key_id
    assert keys["source_arn"] == result.source_key_id
    plain = kms.decrypt(
        CiphertextBlob=result.ciphertext_blob, EncryptionContext=CONTEXT
    )
    assert b"sixteen byte key" == plain["Plaintext"]
    assert keys["dest_arn"] == plain["KeyId"]


def test_result_carries_all_seven_members(
    local_kms: Any, keys: dict[str, str], blob: bytes
) -> None:
    """A symmetric-to-symmetric answer fills every response member."""
    result = local_kms.client().re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=keys["dest_id"],
    )

    assert EncryptionAlgorithm.SYMMETRIC_DEFAULT == (
        result.source_encryption_algorithm
    )
    assert EncryptionAlgorithm.SYMMETRIC_DEFAULT == (
        result.destination_encryption_algorithm
    )
    assert len(result.source_key_material_id or "") == 64
    assert len(result.destination_key_material_id or "") == 64
    assert {
        "CiphertextBlob",
        "KeyId",
        "SourceKeyId",
        "SourceEncryptionAlgorithm",
        "DestinationEncryptionAlgorithm",
        "SourceKeyMaterialId",
        "DestinationKeyMaterialId",
    } == set(result.to_dict())


def test_result_is_frozen_and_its_repr_hides_the_ciphertext(
    local_kms: Any, keys: dict[str, str], blob: bytes
) -> None:
    """The repr shows the ciphertext's length, never its bytes."""
    result = local_kms.client().re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=keys["dest_id"],
    )

    text = repr(result)
    assert f"<{len(result.ciphertext_blob)} bytes>" in text
    assert repr(result.ciphertext_blob) not in text
    with pytest.raises(AttributeError):
        result.key_id = "x"  # type: ignore[misc]


def test_to_dict_plain_strings(
    local_kms: Any, keys: dict[str, str], blob: bytes
) -> None:
    """to_dict gives boto3's shape with plain str algorithm names."""
    result = local_kms.client().re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=keys["dest_id"],
    )

    data = result.to_dict()
    assert type(data["SourceEncryptionAlgorithm"]) is str
    assert result.ciphertext_blob == data["CiphertextBlob"]


def test_wrong_source_context_is_invalid_ciphertext(
    local_kms: Any, keys: dict[str, str], blob: bytes
) -> None:
    """A context that differs only in case does not decrypt."""
    with pytest.raises(InvalidCiphertextException) as caught:
        local_kms.client().re_encrypt(
            CiphertextBlob=blob,
            SourceEncryptionContext={"tenant": "ACME", "purpose": "test"},
            DestinationKeyId=keys["dest_id"],
        )

    error = caught.value
    assert "InvalidCiphertextException" == error.code
    assert "ReEncrypt" == error.operation
    assert 400 == error.http_status
    assert error.request_id
    assert error.retryable is False
    assert "case included" in str(error)
    assert error.__cause__ is not None


def test_unknown_destination_is_not_found(local_kms: Any, blob: bytes) -> None:
    """An alias that does not exist gives NotFoundException."""
    with pytest.raises(NotFoundException) as caught:
        local_kms.client().re_encrypt(
            CiphertextBlob=blob,
            SourceEncryptionContext=CONTEXT,
            DestinationKeyId="alias/does-not-exist",
        )

    assert "alias/does-not-exist" == caught.value.key_id
    assert "ARN" in str(caught.value)


def test_dry_run_that_would_succeed_returns_a_result(
    local_kms: Any, keys: dict[str, str], blob: bytes
) -> None:
    """KMS answers DryRunOperationException; the facade returns a result."""
    result = local_kms.client().re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=keys["dest_alias"],
        DryRun=True,
    )

    assert isinstance(result, DryRunResult)
    assert result.would_succeed
    assert keys["dest_alias"] == result.destination_key_id


def test_dry_run_ignore_ciphertext(
    local_kms: Any, keys: dict[str, str]
) -> None:
    """With IGNORE_CIPHERTEXT no blob is needed, only the source key."""
    result = local_kms.client().re_encrypt(
        SourceKeyId=keys["source_arn"],
        DestinationKeyId=keys["dest_arn"],
        DryRun=True,
        DryRunModifiers=["IGNORE_CIPHERTEXT"],
    )

    assert ("IGNORE_CIPHERTEXT",) == result.modifiers


def test_failing_dry_run_raises_the_real_error(
    local_kms: Any, blob: bytes
) -> None:
    """A dry run that would fail raises what the real call would."""
    with pytest.raises(NotFoundException):
        local_kms.client().re_encrypt(
            CiphertextBlob=blob,
            SourceEncryptionContext=CONTEXT,
            DestinationKeyId="alias/nope",
            DryRun=True,
        )


def test_wraps_a_boto3_client(
    local_kms: Any, keys: dict[str, str], blob: bytes
) -> None:
    """A boto3 KMS client works, wrapped or passed as client=."""
    boto3 = pytest.importorskip("boto3")
    raw = boto3.session.Session(
        aws_access_key_id="x",
        aws_secret_access_key="y",
        region_name=local_kms.region,
    ).client("kms", endpoint_url=local_kms.endpoint_url)

    wrapped = ReEncryptClient(raw).re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=keys["dest_id"],
    )
    direct = kms_reencrypt.kms_re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=keys["dest_id"],
        client=raw,
    )

    assert keys["dest_arn"] == wrapped.key_id == direct.key_id


def test_module_function_accepts_a_facade(
    local_kms: Any, keys: dict[str, str], blob: bytes
) -> None:
    """kms_re_encrypt takes a ReEncryptClient as client= too."""
    result = kms_reencrypt.kms_re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=keys["dest_id"],
        client=local_kms.client(),
    )

    assert keys["dest_arn"] == result.key_id


def test_client_builder_with_botocore_session(local_kms: Any) -> None:
    """client() takes a botocore session, Region, endpoint and Config."""
    from botocore.config import Config

    session = botocore.session.Session()
    session.set_credentials("x", "y")

    facade = kms_reencrypt.client(
        session=session,
        region_name="eu-west-1",
        endpoint_url=local_kms.endpoint_url,
        config=Config(connect_timeout=3),
    )

    assert "eu-west-1" == facade.region_name
    assert local_kms.endpoint_url == facade.endpoint_url
    assert 3 == facade.kms_client.meta.config.connect_timeout
    assert "kms-reencrypt/" in facade.kms_client.meta.config.user_agent_extra


def test_client_builder_leaves_parameter_checks_to_the_facade(
    local_kms: Any, keys: dict[str, str], blob: bytes
) -> None:
    """botocore's own parameter validation is off in clients that
    client() builds (test_validation_properties proves that what the
    facade sends always passes it), and a Config can turn it back on."""
    from botocore.config import Config

    session = botocore.session.Session()
    session.set_credentials("x", "y")
    options: dict[str, Any] = {
        "session": session,
        "region_name": local_kms.region,
        "endpoint_url": local_kms.endpoint_url,
    }

    facade = kms_reencrypt.client(**options)
    checked = kms_reencrypt.client(
        **options, config=Config(parameter_validation=True)
    )

    # botocore decides at client creation (meta.config does not show it):
    # an empty KeyId is refused in the client, or reaches KMS.
    with pytest.raises(ParamValidationError):
        checked.kms_client.describe_key(KeyId="")
    with pytest.raises(ClientError) as caught:
        facade.kms_client.describe_key(KeyId="")
    assert "ValidationException" == caught.value.response["Error"]["Code"]
    with pytest.raises(ParameterTypeError):
        facade.re_encrypt(CiphertextBlob=blob, DestinationKeyId=123)  # type: ignore[arg-type]
    result = facade.re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=keys["dest_alias"],
    )
    assert keys["dest_arn"] == result.key_id


def test_client_builder_refuses_profile_with_session() -> None:
    """A profile and a session are two answers to one question."""
    with pytest.raises(ConfigurationError) as caught:
        kms_reencrypt.client(
            profile_name="dev", session=botocore.session.Session()
        )

    assert "profile_name" == caught.value.option


def test_client_builder_unknown_profile_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """An unknown profile is reported as such, typed."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "c"))

    with pytest.raises(ConfigurationError) as caught:
        kms_reencrypt.client(profile_name="missing", region_name="eu-west-1")

    assert "profile_name" == caught.value.option


def test_wrapping_a_non_kms_client_is_refused() -> None:
    """Only clients of the kms service can be wrapped."""
    s3 = botocore.session.Session().create_client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
    )

    with pytest.raises(ConfigurationError):
        ReEncryptClient(s3)


def test_results_pickle(
    local_kms: Any, keys: dict[str, str], blob: bytes
) -> None:
    """Results cross process boundaries unchanged."""
    result = local_kms.client().re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext=CONTEXT,
        DestinationKeyId=keys["dest_id"],
    )

    assert result == pickle.loads(pickle.dumps(result))


def test_module_function_validates_before_building_a_client(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """With no client and no AWS configuration, a bad request still names
    its parameter, not the missing Region."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))

    with pytest.raises(kms_reencrypt.ParameterTypeError) as caught:
        kms_reencrypt.kms_re_encrypt(
            CiphertextBlob="base64 text",  # type: ignore[arg-type]
            DestinationKeyId="alias/x",
        )

    assert "CiphertextBlob" == caught.value.parameter
