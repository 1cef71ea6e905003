"""Benchmark of kms_reencrypt.dask on a LocalCluster; prints one JSON
object.

    /work/venv/bin/python tests/benchmarks/bench_dask.py

Every figure comes from one run against ``tests/benchmarks/fake_kms.py``
(its own process, 127.0.0.1, 10 ms of injected latency):

* throughput: ``rotate_dataframe`` on a LocalCluster of one and of two
  worker processes (one Dask thread each, 16 engine threads per
  partition task) against the single-process engine (``rotate``, 16
  threads) on the same items. Cluster start-up is left out; building
  the graph, the rate bucket and the per-worker clients is counted. The
  three set-ups run in interleaved rounds and the best round of each
  counts. The CPU the worker processes spent per item tells what one
  core adds.
* the cluster-wide cap: ``rate=R`` on two workers against a server that
  throttles above R. The calls the server admitted per second, counted
  by the server over the steady part of the run (its first and last
  second left out), against R; and the share of calls throttled.

Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import pandas as pd
import pyarrow as pa
from distributed import Client, LocalCluster
from fake_kms import measure_cap  # this directory, first on sys.path

import kms_reencrypt
from kms_reencrypt.dask import rotate_dataframe

HERE = Path(__file__).parent
DESTINATION = "1234abcd-12ab-34cd-56ef-1234567890ab"
BLOB = b"\x01\x02\x02\x00" + bytes(150)
LATENCY = 0.01
REGION = "us-east-1"
WORKERS = 16
ITEMS = 8000
PARTITIONS = 8
CAP = 400.0
ROUNDS = 3
CAP_SECONDS = 12


def start_server(max_rps: float | None = None) -> tuple[Any, int]:
    command = [
        sys.executable,
        str(HERE / "fake_kms.py"),
        "--latency",
        str(LATENCY),
    ]
    if max_rps:
        command += ["--max-rps", str(max_rps)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    return server, int(server.stdout.readline())


def settings(port: int) -> kms_reencrypt.ClientSettings:
    return kms_reencrypt.ClientSettings(
        region_name=REGION, endpoint_url=f"http://127.0.0.1:{port}", local=True
    )


def items(count: int) -> Iterator[dict[str, Any]]:
    for n in range(count):
        yield {"id": f"item-{n}", "ciphertext_blob": BLOB}


def frame(count: int, partitions: int) -> dd.DataFrame:
    data = pd.DataFrame(
        {
            "id": [f"item-{n}" for n in range(count)],
            "blob": pd.array([BLOB] * count, dtype=pd.ArrowDtype(pa.binary())),
        }
    )
    return dd.from_pandas(data, npartitions=partitions, sort=False)


def engine_rate(port: int, count: int) -> float:
    started = time.perf_counter()
    report = kms_reencrypt.rotate(
        items(count),
        destination_key_id=DESTINATION,
        client=settings(port),
        workers=WORKERS,
    )
    elapsed = time.perf_counter() - started
    assert report.ok == count, report
    return count / elapsed


def dask_run(
    port: int, count: int, partitions: int, rate: float | None = None
) -> float:
    """Rotate on the current cluster; return items per second."""
    data = frame(count, partitions)
    started = time.perf_counter()
    rotated = rotate_dataframe(
        data,
        destination_key_id=DESTINATION,
        id_column="id",
        ciphertext_column="blob",
        client=settings(port),
        workers=WORKERS,
        rate=rate,
    )
    result = rotated.compute()
    elapsed = time.perf_counter() - started
    statuses = set(result["rotation_status"])
    assert statuses == {"ok"}, statuses
    return count / elapsed


def cluster(workers: int) -> tuple[Any, Client]:
    local = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        # Its HTTP server on loopback, on a free port.
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )
    return local, Client(local)


def throughput(port: int) -> dict[str, Any]:
    # Rounds interleave the three set-ups and the best of each counts,
    # so that other load on the machine weighs on all of them alike.
    clusters = {workers: cluster(workers) for workers in (1, 2)}
    best: dict[str, float] = {}
    cpu: dict[int, float] = {}
    try:
        engine_rate(port, 500)  # warm connections and imports
        for _, client in clusters.values():
            with client.as_current():
                dask_run(port, 400, 2)  # imports and clients on workers
        for _ in range(ROUNDS):
            rate = engine_rate(port, ITEMS)
            best["engine"] = max(best.get("engine", 0.0), rate)
            for workers, (_, client) in clusters.items():
                with client.as_current():
                    before = sum(client.run(time.process_time).values())
                    rate = dask_run(port, ITEMS, PARTITIONS)
                    spent = sum(client.run(time.process_time).values())
                name = f"dask_{workers}"
                if rate > best.get(name, 0.0):
                    best[name] = rate
                    cpu[workers] = spent - before
    finally:
        for local, client in clusters.values():
            client.close()
            local.close()

    figures: dict[str, Any] = {
        "rounds": ROUNDS,
        "engine_1_process_per_s": round(best["engine"]),
    }
    for workers in (1, 2):
        rate = best[f"dask_{workers}"]
        figures[f"dask_{workers}_workers_per_s"] = round(rate)
        figures[f"dask_{workers}_workers_cpu_ms_per_item"] = round(
            1000 * cpu[workers] / ITEMS, 3
        )
        figures[f"ratio_dask_{workers}_workers_vs_engine"] = round(
            rate / best["engine"], 3
        )
    return figures


def cap_accuracy() -> dict[str, Any]:
    server, port = start_server(max_rps=CAP)
    local, client = cluster(2)
    try:
        with client.as_current():
            dask_run(port, 200, 2, rate=CAP)  # warm up at the cap
            time.sleep(1.0)
            figures = measure_cap(
                port,
                CAP,
                lambda: dask_run(port, int(CAP * CAP_SECONDS), 8, rate=CAP),
            )
    finally:
        client.close()
        local.close()
        server.kill()
    return {"workers": 2, **figures}


def main() -> None:
    started = time.perf_counter()
    results: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "latency_s": LATENCY,
        "items": ITEMS,
        "partitions": PARTITIONS,
        "engine_threads": WORKERS,
    }
    server, port = start_server()
    try:
        results["throughput"] = throughput(port)
    finally:
        server.kill()
    results["rate_cap"] = cap_accuracy()
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
