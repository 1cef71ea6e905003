"""The local KMS itself: operations, wire format, faults, lifecycle,
isolation from the user's AWS setup, and the ``local serve`` command."""

from __future__ import annotations

import base64
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

import kms_reencrypt
from kms_reencrypt import ReEncryptResult
from kms_reencrypt.local import Faults, LocalKms
from kms_reencrypt.local._errors import http_status
from kms_reencrypt.local._faults import FaultInjector

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
CONTEXT = {"app": "tests"}


@pytest.fixture(scope="module")
def shared() -> Iterator[LocalKms]:
    """One local KMS for the tests that do not change faults or state."""
    with LocalKms() as kms:
        yield kms


def error_of(info: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = info.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def post(kms: LocalKms, target: str, body: bytes) -> tuple[int, Any, Any]:
    request = urllib.request.Request(
        kms.endpoint_url + "/",
        data=body,
        headers={
            "X-Amz-Target": target,
            "Content-Type": "application/x-amz-json-1.1",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


# -- operations --


def test_symmetric_round_trip_through_botocore(shared: LocalKms) -> None:
    kms = shared.kms_client()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]

    blob = kms.encrypt(
        KeyId=key_id, Plaintext=b"secret", EncryptionContext=CONTEXT
    )["CiphertextBlob"]
    plain = kms.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT)

    assert b"secret" == plain["Plaintext"]
    assert shared.describe_key(key_id)["Arn"] == plain["KeyId"]


def test_ciphertext_looks_like_a_kms_blob_not_an_sdk_message(
    shared: LocalKms,
) -> None:
    key_id = shared.create_key()["KeyId"]
    kms = shared.kms_client()

    blobs = [
        kms.encrypt(KeyId=key_id, Plaintext=bytes([n]) * 32)["CiphertextBlob"]
        for n in range(8)
    ]

    for blob in blobs:
        assert base64.b64encode(blob).startswith(b"AQICAH")
        assert key_id.encode() == blob[5:41]
        assert blob[:2] not in (b"\x01\x80", b"\x02\x04", b"\x02\x05")


def test_multi_region_key_ids_are_mrk_and_32_hex(shared: LocalKms) -> None:
    metadata = shared.create_key(multi_region=True)

    assert metadata["KeyId"].startswith("mrk-")
    assert 36 == len(metadata["KeyId"])
    assert metadata["MultiRegion"] is True
    assert (
        "PRIMARY"
        == (metadata["MultiRegionConfiguration"]["MultiRegionKeyType"])
    )


def test_create_key_convenience_returns_key_metadata_and_alias(
    shared: LocalKms,
) -> None:
    metadata = shared.create_key(alias="alias/convenience")

    described = shared.kms_client().describe_key(KeyId="alias/convenience")

    assert metadata == described["KeyMetadata"]
    assert "CUSTOMER" == metadata["KeyManager"]
    assert 64 == len(metadata["CurrentKeyMaterialId"])


def test_rsa_encrypt_is_real_oaep_of_the_key_size(shared: LocalKms) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    kms = shared.kms_client()
    key_id = shared.create_key("RSA_3072")["KeyId"]
    der = kms.get_public_key(KeyId=key_id)["PublicKey"]

    blob = kms.encrypt(
        KeyId=key_id,
        Plaintext=b"x" * 318,
        EncryptionAlgorithm="RSAES_OAEP_SHA_256",
    )["CiphertextBlob"]

    assert 384 == len(blob)
    public = serialization.load_der_public_key(der)
    assert 3072 == public.key_size  # type: ignore[union-attr]
    sha1 = hashes.SHA1()
    offline = public.encrypt(  # type: ignore[union-attr]
        b"offline",
        padding.OAEP(mgf=padding.MGF1(sha1), algorithm=sha1, label=None),
    )
    plain = kms.decrypt(
        CiphertextBlob=offline,
        KeyId=key_id,
        EncryptionAlgorithm="RSAES_OAEP_SHA_1",
    )
    assert b"offline" == plain["Plaintext"]


def test_generate_data_key_and_without_plaintext(shared: LocalKms) -> None:
    kms = shared.kms_client()
    key_id = shared.create_key()["KeyId"]

    pair = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    bare = kms.generate_data_key_without_plaintext(
        KeyId=key_id, NumberOfBytes=16, EncryptionContext=CONTEXT
    )

    assert 32 == len(pair["Plaintext"])
    opened = kms.decrypt(CiphertextBlob=pair["CiphertextBlob"])
    assert pair["Plaintext"] == opened["Plaintext"]
    opened = kms.decrypt(
        CiphertextBlob=bare["CiphertextBlob"], EncryptionContext=CONTEXT
    )
    assert 16 == len(opened["Plaintext"])
    assert "Plaintext" not in bare


def test_key_lifecycle_disable_schedule_cancel(shared: LocalKms) -> None:
    kms = shared.kms_client()
    key_id = shared.create_key()["KeyId"]

    kms.disable_key(KeyId=key_id)
    disabled = shared.describe_key(key_id)
    kms.enable_key(KeyId=key_id)
    scheduled = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    pending = shared.describe_key(key_id)
    kms.cancel_key_deletion(KeyId=key_id)
    cancelled = shared.describe_key(key_id)

    assert ("Disabled", False) == (disabled["KeyState"], disabled["Enabled"])
    assert "PendingDeletion" == scheduled["KeyState"]
    assert "PendingDeletion" == pending["KeyState"]
    assert "DeletionDate" in pending
    assert "Disabled" == cancelled["KeyState"]
    with pytest.raises(ClientError) as info:
        kms.cancel_key_deletion(KeyId=key_id)
    assert "KMSInvalidStateException" == error_of(info)[0]


def test_list_keys_and_aliases_paginate(shared: LocalKms) -> None:
    kms = shared.kms_client()
    key_id = shared.create_key(alias="alias/listed")["KeyId"]
    kms.create_alias(AliasName="alias/listed-too", TargetKeyId=key_id)

    keys = [
        key["KeyId"]
        for page in kms.get_paginator("list_keys").paginate(
            PaginationConfig={"PageSize": 2}
        )
        for key in page["Keys"]
    ]
    aliases = kms.list_aliases(KeyId=key_id)["Aliases"]
    kms.delete_alias(AliasName="alias/listed-too")

    assert key_id in keys
    assert len(keys) == len(set(keys))
    assert ["alias/listed", "alias/listed-too"] == [
        a["AliasName"] for a in aliases
    ]
    assert ["alias/listed"] == [
        a["AliasName"] for a in kms.list_aliases(KeyId=key_id)["Aliases"]
    ]


def test_create_alias_refuses_duplicates_and_aws_names(
    shared: LocalKms,
) -> None:
    kms = shared.kms_client()
    key_id = shared.create_key(alias="alias/taken")["KeyId"]

    with pytest.raises(ClientError) as taken:
        kms.create_alias(AliasName="alias/taken", TargetKeyId=key_id)
    with pytest.raises(ClientError) as reserved:
        kms.create_alias(AliasName="alias/aws/mine", TargetKeyId=key_id)

    assert "AlreadyExistsException" == error_of(taken)[0]
    assert "InvalidAliasNameException" == error_of(reserved)[0]


def test_create_key_refuses_what_it_does_not_implement(
    shared: LocalKms,
) -> None:
    kms = shared.kms_client()

    with pytest.raises(ClientError) as unsupported:
        kms.create_key(KeySpec="ML_DSA_44", KeyUsage="SIGN_VERIFY")
    with pytest.raises(ClientError) as mismatch:
        kms.create_key(KeySpec="HMAC_256", KeyUsage="ENCRYPT_DECRYPT")
    with pytest.raises(ClientError) as bogus:
        kms.create_key(KeySpec="AES_BOGUS")

    assert "UnsupportedOperationException" == error_of(unsupported)[0]
    assert "ValidationException" == error_of(mismatch)[0]
    assert error_of(bogus)[0] == "ValidationException"
    assert (
        "1 validation error detected: Value 'AES_BOGUS' at 'keySpec'"
        in (bogus.value.response["Error"]["Message"])
    )


def test_set_key_state_reaches_every_state(shared: LocalKms) -> None:
    key_id = shared.create_key()["KeyId"]

    shared.set_key_state(key_id, "Unavailable")

    assert "Unavailable" == shared.describe_key(key_id)["KeyState"]
    with pytest.raises(ValueError, match="state must be one of"):
        shared.set_key_state(key_id, "Gone")


def test_re_encrypt_client_facade_works_on_it(shared: LocalKms) -> None:
    source = shared.create_key()["KeyId"]
    destination = shared.create_key(alias="alias/facade-dest")["Arn"]
    blob = shared.kms_client().encrypt(KeyId=source, Plaintext=b"p")[
        "CiphertextBlob"
    ]

    result = shared.client().re_encrypt(
        CiphertextBlob=blob,
        SourceKeyId=source,
        DestinationKeyId="alias/facade-dest",
    )

    assert isinstance(result, ReEncryptResult)
    assert destination == result.key_id


# -- the wire: statuses, headers, malformed requests --


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("NotFoundException", 400),
        ("DisabledException", 409),
        ("KMSInvalidStateException", 409),
        ("ValidationException", 400),
        ("ThrottlingException", 400),
        ("DryRunOperationException", 412),
        ("KMSInternalException", 500),
        ("KeyUnavailableException", 500),
        ("DependencyTimeoutException", 500),
    ],
)
def test_http_status_per_error_code(code: str, status: int) -> None:
    assert status == http_status(code)


def test_errors_carry_status_request_id_and_json_type(
    shared: LocalKms,
) -> None:
    status, headers, body = post(
        shared,
        "TrentService.DescribeKey",
        json.dumps({"KeyId": "alias/does-not-exist"}).encode(),
    )

    assert 400 == status
    assert "NotFoundException" == body["__type"]
    assert "message" in body
    assert headers["x-amzn-RequestId"]


def test_key_state_errors_answer_409_through_botocore(
    shared: LocalKms,
) -> None:
    key_id = shared.create_key()["KeyId"]
    kms = shared.kms_client()
    kms.disable_key(KeyId=key_id)

    with pytest.raises(ClientError) as disabled:
        kms.encrypt(KeyId=key_id, Plaintext=b"p")
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    with pytest.raises(ClientError) as pending:
        kms.encrypt(KeyId=key_id, Plaintext=b"p")

    assert ("DisabledException", 409) == error_of(disabled)
    assert ("KMSInvalidStateException", 409) == error_of(pending)


def test_dry_run_answers_412_through_botocore(shared: LocalKms) -> None:
    key_id = shared.create_key()["KeyId"]
    kms = shared.kms_client()

    with pytest.raises(ClientError) as info:
        kms.encrypt(KeyId=key_id, Plaintext=b"p", DryRun=True)

    assert ("DryRunOperationException", 412) == error_of(info)


@pytest.mark.parametrize(
    ("target", "body", "code"),
    [
        ("TrentService.Encrypt", b"{not json", "SerializationException"),
        ("TrentService.Encrypt", b"[]", "SerializationException"),
        ("TrentService.Sign", b"{}", "UnknownOperationException"),
        ("Other.Encrypt", b"{}", "UnknownOperationException"),
        (
            "TrentService.Encrypt",
            b'{"KeyId": "k", "Plaintext": "cA==", '
            b'"EncryptionContext": {"a": "\\ud800x"}}',
            "SerializationException",
        ),
    ],
)
def test_malformed_requests_get_json_errors(
    shared: LocalKms, target: str, body: bytes, code: str
) -> None:
    status, _, answer = post(shared, target, body)

    assert (400, code) == (status, answer["__type"])


def test_logs_never_carry_plaintext_or_ciphertext(
    shared: LocalKms, caplog: pytest.LogCaptureFixture
) -> None:
    key_id = shared.create_key()["KeyId"]
    kms = shared.kms_client()
    marker = b"plaintext-marker-0123456789"

    with caplog.at_level(logging.DEBUG, logger="kms_reencrypt"):
        blob = kms.encrypt(KeyId=key_id, Plaintext=marker)["CiphertextBlob"]
        kms.decrypt(CiphertextBlob=blob)

    assert "Encrypt -> 200" in caplog.text
    for secret in (marker, base64.b64encode(marker), base64.b64encode(blob)):
        assert secret.decode() not in caplog.text


# -- faults --


def test_faults_validate_their_values() -> None:
    with pytest.raises(ValueError, match="throttle_fraction"):
        Faults(throttle_fraction=1.5)
    with pytest.raises(ValueError, match="max_rps"):
        Faults(max_rps=0)
    with pytest.raises(ValueError, match="latency"):
        Faults(latency=-1)


def test_token_bucket_throttles_above_max_rps() -> None:
    now = [0.0]
    injector = FaultInjector(Faults(max_rps=2), clock=lambda: now[0])

    burst = [injector.decide().error_code for _ in range(3)]
    now[0] += 0.5
    refilled = injector.decide().error_code

    assert [None, None, "ThrottlingException"] == burst
    assert refilled is None
    assert 1 == injector.snapshot().throttled


def test_latency_is_added_to_crypto_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kms_reencrypt.local import _server

    slept: list[float] = []
    monkeypatch.setattr(_server.time, "sleep", slept.append)
    with LocalKms(faults=Faults(latency=0.25)) as local:
        key_id = local.create_key()["KeyId"]
        local.kms_client().encrypt(KeyId=key_id, Plaintext=b"p")

    assert [0.25] == slept


def test_max_rps_throttles_through_the_server() -> None:
    with LocalKms(faults=Faults(max_rps=0.001)) as local:
        key_id = local.create_key()["KeyId"]
        kms = local.kms_client(config=NO_RETRIES)
        kms.encrypt(KeyId=key_id, Plaintext=b"p")

        with pytest.raises(ClientError) as info:
            kms.encrypt(KeyId=key_id, Plaintext=b"p")

        assert ("ThrottlingException", 400) == error_of(info)
        assert 1 == local.stats.throttled


def test_throttle_fraction_is_retried_by_botocore() -> None:
    with LocalKms(faults=Faults(throttle_fraction=1.0)) as local:
        kms = local.kms_client(
            config=Config(
                retries={"mode": "standard", "total_max_attempts": 3}
            )
        )
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]

        with pytest.raises(ClientError) as info:
            kms.encrypt(KeyId=key_id, Plaintext=b"p")
        stats = local.stats

    assert "ThrottlingException" == error_of(info)[0]
    assert 3 == stats.throttled
    assert 3 == stats.requests["Encrypt"]
    assert 1 == stats.requests["CreateKey"]


def test_server_errors_are_500_and_set_up_is_not_disturbed() -> None:
    faults = Faults(server_error_fraction=1.0, seed=7)
    with LocalKms(faults=faults) as local:
        kms = local.kms_client(config=NO_RETRIES)
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]

        with pytest.raises(ClientError) as info:
            kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")

        code, status = error_of(info)
        assert code in ("KMSInternalException", "DependencyTimeoutException")
        assert 500 == status
        assert 1 == local.stats.server_errors


def test_resets_close_the_connection_without_an_answer() -> None:
    with LocalKms(faults=Faults(reset_fraction=1.0)) as local:
        key_id = local.create_key()["KeyId"]
        kms = local.kms_client(config=NO_RETRIES)

        with pytest.raises(BotoCoreError):
            kms.encrypt(KeyId=key_id, Plaintext=b"p")

        assert 1 == local.stats.resets


def test_faults_can_be_changed_while_running_and_retries_recover() -> None:
    with LocalKms() as local:
        key_id = local.create_key()["KeyId"]
        kms = local.kms_client(
            config=Config(
                retries={"mode": "standard", "total_max_attempts": 8}
            )
        )
        local.faults = Faults(
            reset_fraction=0.3, server_error_fraction=0.3, seed=3
        )

        for _ in range(10):
            kms.encrypt(KeyId=key_id, Plaintext=b"p")

        stats = local.stats
        local.faults = Faults()

    assert stats.resets + stats.server_errors > 0
    assert 10 + stats.resets + stats.server_errors == stats.requests["Encrypt"]
    assert Faults() == local.faults


def test_faults_none_is_no_faults_when_assigned_too() -> None:
    """``LocalKms(faults=None)`` means none; so does assigning None."""
    with LocalKms(faults=Faults(throttle_fraction=1.0)) as local:
        key_id = local.create_key()["KeyId"]
        local.faults = None
        local.kms_client().encrypt(KeyId=key_id, Plaintext=b"p")

    assert Faults() == local.faults
    assert 0 == local.stats.throttled


def test_client_takes_the_facade_options(shared: LocalKms) -> None:
    """``client()`` passes the ``ReEncryptClient`` options on: with the
    pre-flight, a missing destination key is refused before ReEncrypt
    is sent."""
    source = shared.create_key()["Arn"]
    blob = shared.kms_client().encrypt(KeyId=source, Plaintext=b"p")[
        "CiphertextBlob"
    ]
    missing = source.rsplit("/", 1)[0] + "/" + str(uuid.uuid4())
    client = shared.client(preflight=True, preflight_ttl=5.0)
    before = shared.stats.requests.get("ReEncrypt", 0)

    with pytest.raises(kms_reencrypt.KmsReEncryptError):
        client.re_encrypt(CiphertextBlob=blob, DestinationKeyId=missing)

    assert client.preflight
    assert before == shared.stats.requests.get("ReEncrypt", 0)


# -- lifecycle and threads --


def test_stop_and_start_keep_the_port_and_the_keys() -> None:
    local = LocalKms()
    local.start()
    try:
        url = local.endpoint_url
        kms = local.kms_client(config=NO_RETRIES)
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"kept")["CiphertextBlob"]

        local.stop()
        with pytest.raises(BotoCoreError):
            kms.decrypt(CiphertextBlob=blob)
        local.start()

        assert url == local.endpoint_url
        assert b"kept" == kms.decrypt(CiphertextBlob=blob)["Plaintext"]
    finally:
        local.stop()


def test_many_threads_share_one_client() -> None:
    with LocalKms() as local:
        source = local.create_key()["KeyId"]
        destination = local.create_key()["KeyId"]
        kms = local.kms_client()
        blob = kms.encrypt(KeyId=source, Plaintext=b"p")["CiphertextBlob"]
        failures: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(15):
                    kms.re_encrypt(
                        CiphertextBlob=blob, DestinationKeyId=destination
                    )
            except BaseException as error:  # pragma: no cover - reported
                failures.append(error)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert [] == failures
        assert 120 == local.stats.requests["ReEncrypt"]


def test_stop_leaves_no_server_threads_behind() -> None:
    local = LocalKms().start()
    kms = local.kms_client()
    kms.create_key()  # leaves a keep-alive connection open

    prefix = "local-kms-" + local.endpoint_url.rsplit(":", 1)[1]
    local.stop()

    names = [thread.name for thread in threading.enumerate()]
    assert [] == [name for name in names if name.startswith(prefix)]
    assert not local.running


def test_endpoint_url_needs_a_port() -> None:
    with pytest.raises(RuntimeError):
        LocalKms().endpoint_url  # noqa: B018


# -- isolation from the user's AWS configuration --


def test_clients_ignore_the_users_aws_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing-config"))
    monkeypatch.setenv(
        "AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "missing-credentials")
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")

    with LocalKms() as local:
        kms = local.kms_client(config=NO_RETRIES)
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]

        assert local.endpoint_url == kms.meta.endpoint_url
        assert "us-east-1" == kms.meta.region_name
        assert key_id in local.describe_key(key_id)["Arn"]


# -- imports and the command line --


def test_importing_the_package_does_not_import_cryptography() -> None:
    code = (
        "import sys, kms_reencrypt, kms_reencrypt.local._serve, "
        "kms_reencrypt.testing; print('cryptography' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout

    assert "False" == out.strip()


def test_fixtures_of_the_pytest_plugin(
    local_kms: LocalKms, kms_reencrypt_client: Any
) -> None:
    key_id = local_kms.create_key()["KeyId"]
    blob = local_kms.kms_client().encrypt(KeyId=key_id, Plaintext=b"p")[
        "CiphertextBlob"
    ]

    result = kms_reencrypt_client.re_encrypt(
        CiphertextBlob=blob, DestinationKeyId=key_id
    )

    assert local_kms.endpoint_url == kms_reencrypt_client.endpoint_url
    assert result.source_key_id == result.key_id


def test_local_serve_prints_its_url_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kms_reencrypt",
            "local",
            "serve",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        status, _, body = post(_AtUrl(url), "TrentService.CreateKey", b"{}")  # type: ignore[arg-type]
        assert 200 == status
        assert "Enabled" == body["KeyMetadata"]["KeyState"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)

    assert 0 == process.returncode, err


class _AtUrl:
    """Stands in for a LocalKms in ``post`` when only the URL is known."""

    def __init__(self, url: str) -> None:
        self.endpoint_url = url


def test_a_burst_of_new_connections_is_queued_not_dropped() -> None:
    """While the server is busy and accepts nothing, 64 new connections
    all complete their handshake in the listen queue. With socketserver's
    backlog of 5 the kernel dropped the SYNs beyond it, and each of those
    clients waited a second for the retransmission: a rotation on 16 or
    more workers lost a second on most runs."""
    with LocalKms() as kms:
        server = kms._server
        assert server is not None
        host, port = server.server_address[:2]
        waiting: list[socket.socket] = []
        # The accept loop takes this lock for every new connection:
        # holding it keeps everything after the first in the queue.
        with server._open_lock:
            try:
                for _ in range(64):
                    sock = socket.socket()
                    sock.setblocking(False)
                    sock.connect_ex((host, port))
                    waiting.append(sock)
                connected: set[socket.socket] = set()
                for _ in range(20):  # up to 2 s; a dropped SYN waits 1 s
                    _, ready, _ = select.select([], waiting, [], 0.1)
                    connected.update(
                        s
                        for s in ready
                        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        == 0
                    )
                    if len(connected) == len(waiting):
                        break
                    time.sleep(0.1)
            finally:
                for sock in waiting:
                    sock.close()

    assert 64 == len(connected)
