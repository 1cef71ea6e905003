"""Requests refused by validation never reach the network."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kms_reencrypt import ReEncryptClient, RequestValidationError
from kms_reencrypt._session import isolated_kms_client

BLOB = b"\x01\x02\x02\x00" + bytes(80)
KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"


class _Counter(BaseHTTPRequestHandler):
    count = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        with _Counter.lock:
            _Counter.count += 1
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b'{"CiphertextBlob": "AQICAA==", "KeyId": "k"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def counting_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Counter.count = 0
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


INVALID: list[dict[str, Any]] = [
    {"DestinationKeyId": "aws/s3"},
    {"DestinationKeyId": "alias/aws/s3"},
    {"DestinationKeyId": f"arn:aws:kms:eu-west-1:111122223333:key/{KEY}"},
    {"CiphertextBlob": base64.b64encode(BLOB)},
    {"CiphertextBlob": b"\x02\x05\x78" + bytes(40)},
    {"CiphertextBlob": b"x" * 6145},
    {"CiphertextBlob": None},
    {"GrantTokens": ["t"] * 11},
    {"SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_256"},
    {"DestinationEncryptionAlgorithm": "SM2PKE"},
    {"DryRunModifiers": ["IGNORE_CIPHERTEXT"]},
    {
        "DestinationEncryptionAlgorithm": "RSAES_OAEP_SHA_1",
        "DestinationEncryptionContext": {"a": "b"},
    },
]


def test_refused_requests_send_nothing(counting_endpoint: str) -> None:
    """The counting server sees only the one valid request."""
    facade = ReEncryptClient(
        isolated_kms_client(
            endpoint_url=counting_endpoint, region_name="us-east-1"
        )
    )

    for overrides in INVALID:
        request = {"CiphertextBlob": BLOB, "DestinationKeyId": KEY}
        request.update(overrides)
        with pytest.raises(RequestValidationError):
            facade.re_encrypt(**request)
    refused = _Counter.count
    facade.re_encrypt(CiphertextBlob=BLOB, DestinationKeyId=KEY)

    assert refused == 0
    assert _Counter.count == 1
