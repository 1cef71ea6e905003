"""Start-up costs against plain botocore, as ratios measured in one run.

* ``import kms_reencrypt`` versus ``import botocore.session`` (target at
  most 1.2), each in a fresh interpreter;
* creating a facade client with ``kms_reencrypt.client()`` versus a raw
  botocore KMS client from a new session (target at most 1.05).

Runs are interleaved so that drift in the machine's speed hits both sides
alike; the figures are medians (see ``client_ratio`` for the client
figure). Prints one JSON object.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

IMPORT_RUNS = 25
CLIENT_RUNS = 100
CLIENT_PROCESSES = 3
ENV = {
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "y",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "PATH": "/usr/bin:/bin",
}


def _wall(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV)
    return time.perf_counter() - started


def import_ratio() -> dict[str, float]:
    ours, theirs = [], []
    for _ in range(IMPORT_RUNS):
        theirs.append(_wall("import botocore.session"))
        ours.append(_wall("import kms_reencrypt"))
    return {
        "import_kms_reencrypt_s": statistics.median(ours),
        "import_botocore_session_s": statistics.median(theirs),
        "import_ratio": statistics.median(ours) / statistics.median(theirs),
    }


CLIENT_CODE = """
import gc, json, sys, time
import botocore.session
import kms_reencrypt

def raw():
    botocore.session.Session().create_client("kms", region_name="eu-west-1")

def facade():
    kms_reencrypt.client(region_name="eu-west-1")

def timed(create):
    gc.collect()
    gc.disable()
    started = time.perf_counter()
    create()
    elapsed = time.perf_counter() - started
    gc.enable()
    return elapsed

for _ in range(5):  # warm botocore's loaders and caches
    raw()
    facade()
ours, theirs = [], []
for n in range({runs}):
    # ABBA order: whatever the first of a pair pays, both sides pay.
    pair = (raw, facade) if n % 2 == 0 else (facade, raw)
    times = dict((create, timed(create)) for create in pair)
    ours.append(times[facade])
    theirs.append(times[raw])
json.dump([ours, theirs], sys.stdout)
"""


def _client_pairs() -> tuple[list[float], list[float]]:
    out = subprocess.run(
        [sys.executable, "-c", CLIENT_CODE.format(runs=CLIENT_RUNS)],
        check=True,
        env=ENV,
        capture_output=True,
        text=True,
    ).stdout
    ours, theirs = json.loads(out)
    return ours, theirs


def client_ratio() -> dict[str, float | list[float]]:
    """Client creation, facade over raw botocore.

    About 45 ms of either is botocore loading the KMS model and building
    the client; the facade adds a Config merge and its own small object.
    A difference of a few percent in 45 ms is within the noise of a
    shared machine, so the measurement follows ``timeit``'s habits:
    garbage collection is run before and kept out of each timing (a
    collection landing in one side's timing would decide the ratio), the
    two sides alternate in ABBA order, and the figure is the median of
    the per-pair ratios over several fresh interpreters.
    """
    ratios, ours_all, theirs_all = [], [], []
    for _ in range(CLIENT_PROCESSES):
        ours, theirs = _client_pairs()
        ours_all += ours
        theirs_all += theirs
        ratios.append(
            statistics.median(o / t for o, t in zip(ours, theirs, strict=True))
        )
    return {
        "client_facade_s": statistics.median(ours_all),
        "client_botocore_s": statistics.median(theirs_all),
        "client_ratio": statistics.median(ratios),
        "client_ratio_per_process": ratios,
    }


def main() -> None:
    figures: dict[str, object] = {
        "benchmark": "startup",
        **import_ratio(),
        **client_ratio(),
        "targets": {"import_ratio": 1.2, "client_ratio": 1.05},
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
