"""Start-up costs against plain botocore, as ratios measured in one run.

* ``import kms_reencrypt`` versus ``import botocore.session`` (target at
  most 1.2), each in a fresh interpreter;
* creating a facade client with ``kms_reencrypt.client()`` versus a raw
  botocore KMS client from a new session (target at most 1.05).

Runs are interleaved so that drift in the machine's speed hits both sides
alike; the figures are medians. Prints one JSON object.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

IMPORT_RUNS = 25
CLIENT_RUNS = 60
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
import json, sys, time
import botocore.session
import kms_reencrypt
ours, theirs = [], []
for _ in range({runs}):
    t = time.perf_counter()
    botocore.session.Session().create_client("kms", region_name="eu-west-1")
    theirs.append(time.perf_counter() - t)
    t = time.perf_counter()
    kms_reencrypt.client(region_name="eu-west-1")
    ours.append(time.perf_counter() - t)
json.dump([ours, theirs], sys.stdout)
"""


def client_ratio() -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CLIENT_CODE.format(runs=CLIENT_RUNS)],
        check=True,
        env=ENV,
        capture_output=True,
        text=True,
    ).stdout
    ours, theirs = json.loads(out)
    # The first few clients warm botocore's loaders; drop them.
    ours, theirs = ours[5:], theirs[5:]
    return {
        "client_facade_s": statistics.median(ours),
        "client_botocore_s": statistics.median(theirs),
        "client_ratio": statistics.median(ours) / statistics.median(theirs),
    }


def main() -> None:
    figures = {"benchmark": "startup", **import_ratio(), **client_ratio()}
    figures["targets"] = {"import_ratio": 1.2, "client_ratio": 1.05}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
