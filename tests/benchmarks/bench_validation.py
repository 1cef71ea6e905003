"""Benchmark: what request validation costs.

Run ``python tests/benchmarks/bench_validation.py``; it prints JSON:

* ``validation_us``: ``build_request`` alone for a typical symmetric
  request (SourceKeyId ARN, a context, a destination alias), microseconds
  per call, best of several repeats. Target: at most 15.
* ``facade_cpu_ratio``: CPU time per ReEncrypt through a client from
  ``kms_reencrypt.client()`` divided by the same request through a
  client from ``botocore.session.Session().create_client("kms")``, both
  over keep-alive HTTP to the local KMS on 127.0.0.1 (``kms-reencrypt
  local serve``, in a subprocess so that its CPU time is not counted),
  re-encrypting a real ciphertext of it. Target: at most 1.02.
* ``wrapped_cpu_ratio``: the same with ``ReEncryptClient`` wrapping the
  raw client itself, so botocore's parameter validation runs too.

Calls alternate one by one between the two clients and each is timed
with the thread's CPU clock; ``facade_ratio`` says why.

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

import botocore.session

import kms_reencrypt
from kms_reencrypt import ReEncryptClient
from kms_reencrypt._validation import build_request

KEY_ARN = (
    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-"
    "1234567890ab"
)
CONTEXT = {"purpose": "bench", "tenant": "t-42"}
# For build_request alone; the HTTP comparison re-encrypts a real
# ciphertext of the local KMS (``local_kms_request``).
REQUEST: dict[str, Any] = {
    "CiphertextBlob": b"\x01\x02\x02\x00" + os.urandom(180),
    "SourceKeyId": KEY_ARN,
    "SourceEncryptionContext": CONTEXT,
    "DestinationKeyId": "alias/new-key",
}
CREDENTIALS = ("AKIABENCHEXAMPLE0000", "bench-secret")


def start_local_kms() -> tuple[subprocess.Popen[str], str]:
    """``kms-reencrypt local serve`` in its own process, so that its CPU
    is not counted; return the process and its endpoint URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "kms_reencrypt", "local", "serve"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    return server, server.stdout.readline().strip()


def local_kms_request(endpoint: str) -> dict[str, Any]:
    """A typical request the local KMS serves: a symmetric ciphertext
    with its context, the source key's ARN and a destination alias."""
    kms = _raw_client(endpoint)
    source = kms.create_key()["KeyMetadata"]["Arn"]
    destination = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/new-key", TargetKeyId=destination)
    blob = kms.encrypt(
        KeyId=source, Plaintext=os.urandom(32), EncryptionContext=CONTEXT
    )["CiphertextBlob"]
    return {
        "CiphertextBlob": blob,
        "SourceKeyId": source,
        "SourceEncryptionContext": CONTEXT,
        "DestinationKeyId": "alias/new-key",
    }


def validation_us(number: int = 50_000, repeat: int = 7) -> float:
    """Return microseconds per ``build_request`` call, best of repeats."""

    def call() -> None:
        build_request(**REQUEST, region_name="us-east-1")

    times = timeit.repeat(call, number=number, repeat=repeat)

    return min(times) / number * 1e6


def _raw_client(endpoint: str) -> Any:
    """A botocore KMS client built the plain botocore way, with dummy
    credentials (the local KMS checks no signatures)."""
    session = botocore.session.Session()
    session.set_credentials(*CREDENTIALS)
    return session.create_client(
        "kms", region_name="us-east-1", endpoint_url=endpoint
    )


def _per_call_cpu(
    first: Any, second: Any, calls: int, request: dict[str, Any]
) -> tuple[list[int], list[int]]:
    """CPU nanoseconds of each call, the two callers alternating call by
    call (and which goes first alternating too), so that drift, other
    processes and cache state hit both alike."""
    clock = time.thread_time_ns
    a, b = [], []
    for index in range(calls):
        if index % 2:
            start = clock()
            second(**request)
            b.append(clock() - start)
            start = clock()
            first(**request)
            a.append(clock() - start)
        else:
            start = clock()
            first(**request)
            a.append(clock() - start)
            start = clock()
            second(**request)
            b.append(clock() - start)
    return a, b


def facade_ratio(calls: int = 1500, repeats: int = 3) -> dict[str, float]:
    """Return CPU per call through the facade and raw, and their ratios.

    Two comparisons, each the median over ``repeats`` runs of the ratio of
    median per-call CPU times (medians, because a garbage collection or
    an interrupt lands on single calls):

    * ``facade_cpu_ratio``: ``kms_reencrypt.client()`` against a client
      from ``botocore.session.Session().create_client("kms")``, each with
      its own connection. This is what the two libraries give a caller.
    * ``wrapped_cpu_ratio``: ``ReEncryptClient`` wrapping the very same
      botocore client as the raw calls, so botocore validates the
      parameters again after the facade has: the cost of wrapping a
      client the caller built.
    """
    server, endpoint = start_local_kms()
    try:
        request = local_kms_request(endpoint)
        raw = _raw_client(endpoint)
        session = botocore.session.Session()
        session.set_credentials(*CREDENTIALS)
        facade = kms_reencrypt.client(
            region_name="us-east-1", endpoint_url=endpoint, session=session
        )
        wrapped = ReEncryptClient(raw)
        # Warm up connections and botocore's caches.
        _per_call_cpu(raw.re_encrypt, facade.re_encrypt, 200, request)
        _per_call_cpu(raw.re_encrypt, wrapped.re_encrypt, 200, request)
        figures: dict[str, list[float]] = {
            "raw_cpu_us_per_call": [],
            "facade_cpu_us_per_call": [],
            "wrapped_cpu_us_per_call": [],
            "facade_cpu_ratio": [],
            "wrapped_cpu_ratio": [],
        }
        gc.disable()
        try:
            for _ in range(repeats):
                for name, caller in (
                    ("facade", facade.re_encrypt),
                    ("wrapped", wrapped.re_encrypt),
                ):
                    gc.collect()
                    raw_ns, ours_ns = _per_call_cpu(
                        raw.re_encrypt, caller, calls, request
                    )
                    raw_us = statistics.median(raw_ns) / 1e3
                    ours_us = statistics.median(ours_ns) / 1e3
                    figures["raw_cpu_us_per_call"].append(raw_us)
                    figures[f"{name}_cpu_us_per_call"].append(ours_us)
                    figures[f"{name}_cpu_ratio"].append(ours_us / raw_us)
        finally:
            gc.enable()
    finally:
        server.terminate()
        server.wait()

    return {name: statistics.median(v) for name, v in figures.items()}


def main() -> None:
    """Run both measurements and print them as JSON."""
    figures: dict[str, Any] = {"validation_us": validation_us()}
    figures.update(facade_ratio())
    # The wrapped ratio has no target of its own: it is the price of
    # botocore checking the parameters a second time, which a caller
    # avoids with kms_reencrypt.client() or a client built with
    # Config(parameter_validation=False).
    figures["targets"] = {"validation_us": 15.0, "facade_cpu_ratio": 1.02}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
