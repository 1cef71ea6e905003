"""Type-checked uses of kms_reencrypt.local and kms_reencrypt.testing
(mypy --strict, never executed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, assert_type

from botocore.client import BaseClient
from botocore.config import Config

import kms_reencrypt
from kms_reencrypt import ClientSettings, ReEncryptClient, RotationReport
from kms_reencrypt.local import Faults, KmsError, LocalKms, LocalKmsStats


def local_kms() -> RotationReport:
    with LocalKms(region="eu-west-1", faults=Faults(latency=0.001)) as kms:
        assert_type(kms, LocalKms)
        key: dict[str, Any] = kms.create_key(alias="alias/new")
        print(key["Arn"])
        rsa = kms.create_key("RSA_2048", "ENCRYPT_DECRYPT", description="x")
        assert_type(kms.describe_key(rsa["Arn"]), dict[str, Any])
        kms.set_key_state(rsa["KeyId"], "Disabled")

        assert_type(kms.running, bool)
        assert_type(kms.endpoint_url, str)
        assert_type(kms.region, str)
        assert_type(kms.account_id, str)
        assert_type(kms.kms_client(), BaseClient)
        assert_type(kms.kms_client(Config(read_timeout=5)), BaseClient)
        assert_type(kms.client(), ReEncryptClient)

        settings = ClientSettings.for_local_kms(kms)
        assert_type(settings, ClientSettings)
        return kms_reencrypt.rotate(
            [],
            destination_key_id="alias/new",
            client=settings,
            processes=2,
        )


def faults_and_stats() -> int:
    kms = LocalKms(port=0).start()
    assert_type(kms, LocalKms)
    try:
        kms.faults = Faults(
            max_rps=100.0,
            throttle_fraction=0.1,
            server_error_fraction=0.01,
            reset_fraction=0.01,
            response_reset_fraction=0.01,
            seed=7,
        )
        assert_type(kms.faults, Faults)
        assert_type(kms.faults.max_rps, float | None)
        stats = kms.stats
        assert_type(stats, LocalKmsStats)
        assert_type(stats.requests, Mapping[str, int])
        return stats.total_requests + stats.throttled + stats.resets
    finally:
        kms.stop()


def local_errors(kms: LocalKms) -> int | None:
    try:
        kms.set_key_state("alias/missing", "Enabled")
    except KmsError as error:
        assert_type(error.code, str)
        assert_type(error.message, str)
        return error.status
    return None


# kms_reencrypt.testing: pytest types its fixtures as
# FixtureFunctionDefinition, whatever they yield, so what a caller can
# check is a test that asks for them by name, as this one would (it has
# no test_ prefix: pytest does not collect this directory's files, but a
# test_ name would mislead).


def uses_the_fixtures(
    local_kms: LocalKms, kms_reencrypt_client: ReEncryptClient
) -> None:
    key_id = local_kms.create_key()["KeyId"]
    assert isinstance(key_id, str)
    assert_type(kms_reencrypt_client.endpoint_url, str | None)
