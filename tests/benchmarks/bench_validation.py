"""Benchmark: what request validation costs.

Run ``python tests/benchmarks/bench_validation.py``; it prints JSON:

* ``validation_us``: ``build_request`` alone for a typical symmetric
  request (SourceKeyId ARN, a context, a destination alias), microseconds
  per call, best of several repeats. Target: at most 15.
* ``facade_cpu_ratio``: process CPU time per ReEncrypt through
  ``ReEncryptClient`` divided by the same request through the raw
  botocore client, both over keep-alive HTTP to a canned server on
  127.0.0.1 (run in a subprocess so that its CPU time is not counted).
  Facade and raw batches are interleaved; the figure is the median of
  the per-round ratios (``facade_cpu_ratio_total`` divides the totals,
  and is more sensitive to a stray slow batch). Target: at most 1.02.

Not collected by pytest: the file name does not start with ``test_``.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
import timeit
from typing import Any

from kms_reencrypt import ReEncryptClient
from kms_reencrypt._session import isolated_kms_client
from kms_reencrypt._validation import build_request

KEY_ARN = (
    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-"
    "1234567890ab"
)
REQUEST: dict[str, Any] = {
    "CiphertextBlob": b"\x01\x02\x02\x00" + os.urandom(180),
    "SourceKeyId": KEY_ARN,
    "SourceEncryptionContext": {"purpose": "bench", "tenant": "t-42"},
    "DestinationKeyId": "alias/new-key",
}

# The canned server: answers every POST with one valid ReEncrypt
# response, HTTP/1.1 keep-alive, a thread per connection.
SERVER = r"""
import base64, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARN = sys.argv[1]
BODY = json.dumps({
    "CiphertextBlob": base64.b64encode(b"\x01\x02\x02\x00" + bytes(180)).decode(),
    "KeyId": ARN,
    "SourceKeyId": ARN,
    "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
}).encode()

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-RequestId", "bench")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def validation_us(number: int = 50_000, repeat: int = 7) -> float:
    """Return microseconds per ``build_request`` call, best of repeats."""

    def call() -> None:
        build_request(**REQUEST, region_name="us-east-1")

    times = timeit.repeat(call, number=number, repeat=repeat)

    return min(times) / number * 1e6


def facade_ratio(rounds: int = 40, calls: int = 200) -> dict[str, float]:
    """Return CPU per call through the facade and raw, and their ratio."""
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, KEY_ARN],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        endpoint = f"http://127.0.0.1:{port}"
        raw: Any = isolated_kms_client(
            endpoint_url=endpoint, region_name="us-east-1"
        )
        # The same botocore client (and connection) under both, so that
        # only the facade's own work differs.
        facade = ReEncryptClient(raw)

        def run_raw() -> float:
            gc.collect()
            start = time.process_time()
            for _ in range(calls):
                raw.re_encrypt(**REQUEST)
            return time.process_time() - start

        def run_facade() -> float:
            gc.collect()
            start = time.process_time()
            for _ in range(calls):
                facade.re_encrypt(**REQUEST)
            return time.process_time() - start

        run_raw()
        run_facade()
        raw_times, facade_times, ratios = [], [], []
        for index in range(rounds):
            # Alternate which goes first, so drift hits both alike.
            if index % 2:
                f, r = run_facade(), run_raw()
            else:
                r, f = run_raw(), run_facade()
            raw_times.append(r)
            facade_times.append(f)
            ratios.append(f / r)
    finally:
        server.terminate()
        server.wait()

    return {
        "raw_cpu_us_per_call": statistics.median(raw_times) / calls * 1e6,
        "facade_cpu_us_per_call": (
            statistics.median(facade_times) / calls * 1e6
        ),
        "facade_cpu_ratio": statistics.median(ratios),
        "facade_cpu_ratio_total": sum(facade_times) / sum(raw_times),
    }


def main() -> None:
    """Run both measurements and print them as JSON."""
    figures: dict[str, Any] = {"validation_us": validation_us()}
    figures.update(facade_ratio())
    figures["targets"] = {"validation_us": 15.0, "facade_cpu_ratio": 1.02}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
