"""A minimal KMS stand-in for throughput benchmarks.

It answers every request with a canned, valid ReEncrypt response after a
fixed delay, over HTTP/1.1 keep-alive, one thread per connection, and
spends microseconds of CPU per call, so that a benchmark measures the
client and not the server. Optionally it throttles above a rate (a token
bucket holding a tenth of a second's worth) with ``ThrottlingException``.

Run it in its own process::

    python tests/benchmarks/fake_kms.py --latency 0.01 [--max-rps 300]

It prints its port on the first line of standard output. ``GET /stats``
answers the calls admitted and throttled so far, as JSON, without delay.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

_OK_BODY = json.dumps(
    {
        "CiphertextBlob": base64.b64encode(
            b"\x01\x02\x02\x00" + bytes(150)
        ).decode(),
        "KeyId": "arn:aws:kms:us-east-1:111122223333:key/"
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "SourceKeyId": "arn:aws:kms:us-east-1:111122223333:key/"
        "0000abcd-12ab-34cd-56ef-1234567890ab",
        "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }
).encode()
_THROTTLE_BODY = json.dumps(
    {
        "__type": "ThrottlingException",
        "message": "You have exceeded the rate at which you may call KMS.",
    }
).encode()


def _response(status: bytes, body: bytes) -> bytes:
    head = (
        b"HTTP/1.1 " + status + b"\r\n"
        b"Content-Type: application/x-amz-json-1.1\r\n"
        b"x-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head + body


_OK = _response(b"200 OK", _OK_BODY)
_THROTTLED = _response(b"400 Bad Request", _THROTTLE_BODY)


class Bucket:
    """Admits ``rate`` requests per second, a tenth of a second's burst."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.capacity = max(1.0, (rate or 0) * 0.1)
        self.tokens = self.capacity
        self.last = time.monotonic()
        self.lock = threading.Lock()
        self.admitted = 0
        self.throttled = 0

    def admit(self) -> bool:
        with self.lock:
            if self.rate is None:
                self.admitted += 1
                return True
            now = time.monotonic()
            self.tokens = min(
                self.capacity, self.tokens + (now - self.last) * self.rate
            )
            self.last = now
            if self.tokens >= 1:
                self.tokens -= 1
                self.admitted += 1
                return True
            self.throttled += 1
            return False


def _serve_connection(
    conn: socket.socket, latency: float, bucket: Bucket
) -> None:
    buffer = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buffer:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            while len(rest) < length:
                data = conn.recv(65536)
                if not data:
                    return
                rest += data
            buffer = rest[length:]
            if head.startswith(b"GET /stats "):
                conn.sendall(_stats(bucket))
                continue
            if latency:
                time.sleep(latency)
            conn.sendall(_OK if bucket.admit() else _THROTTLED)


def _stats(bucket: Bucket) -> bytes:
    with bucket.lock:
        counts = {"admitted": bucket.admitted, "throttled": bucket.throttled}
    return _response(b"200 OK", json.dumps(counts).encode())


def server_stats(port: int) -> dict[str, int]:
    """The calls admitted and throttled so far by the server on
    ``port``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/stats")
        counts: dict[str, int] = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    return counts


def measure_cap(
    port: int, cap: float, run: Callable[[], Any]
) -> dict[str, Any]:
    """Call ``run()`` while sampling the server's counts every 50 ms;
    return the admitted rate against ``cap``, over the steady part of the
    run (its first and last second left out, which hold the start-up of
    workers and the tail of the last items) and over the whole of it,
    and the share of calls throttled."""
    samples: list[tuple[float, int, int]] = []
    running = threading.Event()
    running.set()

    def sample() -> None:
        while running.is_set():
            counts = server_stats(port)
            samples.append(
                (time.monotonic(), counts["admitted"], counts["throttled"])
            )
            time.sleep(0.05)

    base = server_stats(port)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        run()
    finally:
        running.clear()
        sampler.join()
    active = [s for s in samples if s[1] > base["admitted"]]
    first, last = active[0], active[-1]
    steady = [s for s in active if first[0] + 1 <= s[0] <= last[0] - 1]
    admitted = (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0])
    whole = (last[1] - first[1]) / (last[0] - first[0])
    calls = last[1] + last[2] - base["admitted"] - base["throttled"]
    throttled = last[2] - base["throttled"]
    return {
        "cap_per_s": cap,
        "admitted_per_s_steady": round(admitted, 1),
        "ratio_to_cap_steady": round(admitted / cap, 3),
        "admitted_per_s_whole_run": round(whole, 1),
        "ratio_to_cap_whole_run": round(whole / cap, 3),
        "throttled_fraction": round(throttled / calls, 4) if calls else 0.0,
        "calls": calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.01)
    parser.add_argument("--max-rps", type=float)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    bucket = Bucket(args.max_rps)
    listener = socket.create_server(("127.0.0.1", args.port), backlog=512)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(
            target=_serve_connection,
            args=(conn, args.latency, bucket),
            daemon=True,
        ).start()


if __name__ == "__main__":
    sys.exit(main())
