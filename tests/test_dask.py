"""Rotation of Dask collections on a LocalCluster of worker processes,
against the local KMS over HTTP.

New ciphertexts are checked to be under the destination key by reading
the key id from the local KMS's ciphertext header, never by Decrypt.
Runs in about 100 s on two cores, most of it the 50,000-item run with a
worker killed.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

import cloudpickle
import dask.bag as db
import dask.dataframe as dd
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from distributed import Client, LocalCluster

from kms_reencrypt import (
    ClientSettings,
    ConfigurationError,
    RotationStoppedError,
    rotate,
)
from kms_reencrypt._cli import main
from kms_reencrypt.dask import (
    PartitionJournal,
    TokenBucket,
    _ratecap,
    rotate_bag,
    rotate_dataframe,
)
from kms_reencrypt.local import Faults
from kms_reencrypt.local._keys import blob_key_id

# The workers' own credentials: dummies, set in their environment only.
WORKER_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAWORKEROWNCREDS00",
    "AWS_SECRET_ACCESS_KEY": "worker-secret-not-in-any-graph",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
BINARY = pd.ArrowDtype(pa.binary())


@pytest.fixture(scope="module")
def cluster() -> Iterator[Client]:
    """Three worker processes with one thread each, for the module."""
    with (
        LocalCluster(
            n_workers=3,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # Its HTTP server on loopback, on a free port.
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            env=WORKER_ENV,
        ) as local,
        Client(local) as client,
    ):
        yield client


@pytest.fixture
def keys(local_kms: Any) -> dict[str, str]:
    return {
        "source": local_kms.create_key()["KeyId"],
        "destination": local_kms.create_key()["KeyId"],
    }


@pytest.fixture
def settings(local_kms: Any) -> ClientSettings:
    return ClientSettings.for_local_kms(local_kms)


@pytest.fixture
def buckets(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every rate bucket started by the test, in order."""
    started: list[Any] = []
    original = _ratecap.start_bucket

    def recording(rate: float | None) -> Any:
        ref = original(rate)
        started.append(ref)
        return ref

    monkeypatch.setattr(
        "kms_reencrypt.dask._collections.start_bucket", recording
    )
    return started


def _blobs(local_kms: Any, source: str, count: int) -> list[bytes]:
    """``count`` distinct ciphertexts, each under context {"n": str(i)}."""
    kms = local_kms.kms_client()
    return [
        kms.encrypt(
            KeyId=source,
            Plaintext=b"data key %d" % n,
            EncryptionContext={"n": str(n)},
        )["CiphertextBlob"]
        for n in range(count)
    ]


def _frame(
    blobs: list[bytes], rows: int, partitions: int, prefix: str = "row"
) -> dd.DataFrame:
    """Rows cycling over the ciphertexts, with their context column."""
    data = pd.DataFrame(
        {
            "id": [f"{prefix}-{n}" for n in range(rows)],
            "blob": pd.array(
                [blobs[n % len(blobs)] for n in range(rows)], dtype=BINARY
            ),
            "n": [str(n % len(blobs)) for n in range(rows)],
        }
    )
    return dd.from_pandas(data, npartitions=partitions, sort=False)


def _requests(local_kms: Any) -> int:
    count: int = local_kms.stats.requests.get("ReEncrypt", 0)
    return count


def _settle(local_kms: Any) -> None:
    """Wait until the local KMS has had no ReEncrypt for half a second."""
    last, quiet_since = -1, time.monotonic()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = _requests(local_kms)
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= 0.5:
            return
        time.sleep(0.05)


def _journaled(journal_dir: Path) -> dict[str, bytes]:
    """id -> new ciphertext of every finished item in the journals."""
    done: dict[str, bytes] = {}
    for part in sorted(journal_dir.glob("part-*")):
        number = int(part.name.split("-")[1])
        segments = list(part.glob("*.jsonl"))
        if not segments:
            continue
        header = json.loads(segments[0].read_bytes().split(b"\n")[0])
        journal = PartitionJournal(
            journal_dir,
            partition=number,
            destination_key_id=header["destination"],
            fingerprint=header["fingerprint"],
        )
        for item_id in journal.done_ids():
            found = journal.done(item_id)
            assert found is not None
            done[item_id] = found[0]
        journal.close()
    return done


def test_a_dataframe_column_is_rotated_with_the_engines_outcomes(
    cluster: Client,
    local_kms: Any,
    keys: dict[str, str],
    settings: ClientSettings,
) -> None:
    """Good rows are ok under the destination; bad rows fail with the
    same codes as rotate() gives; original columns stay as they were."""
    blobs = _blobs(local_kms, keys["source"], 20)
    good = _frame(blobs, 300, 4).compute()
    bad = pd.DataFrame(
        {
            "id": ["garbage", "wrong-context", "no-blob", "row-3"],
            "blob": pd.array(
                [b"\x01\x02\x02" + bytes(80), blobs[1], None, blobs[3]],
                dtype=BINARY,
            ),
            "n": ["0", "7", "2", "3"],
        }
    )
    frame = dd.from_pandas(
        pd.concat([good, bad], ignore_index=True), npartitions=1
    ).repartition(npartitions=4)

    rotated = rotate_dataframe(
        frame,
        destination_key_id=keys["destination"],
        id_column="id",
        ciphertext_column="blob",
        context_columns={"n": "n"},
        client=settings,
    )
    result = rotated.compute()
    engine = rotate(
        [
            {
                "id": row.id,
                "ciphertext_blob": row.blob,
                "encryption_context": {"n": row.n},
            }
            for row in bad.itertuples()
            if row.blob is not None and row.blob is not pd.NA
        ],
        destination_key_id=keys["destination"],
        client=settings,
    )

    assert list(rotated.dtypes.items()) == list(result.dtypes.items())
    assert 304 == len(result)
    ok = result[result["rotation_status"] == "ok"]
    assert 301 == len(ok)
    assert {keys["destination"]} == {
        blob_key_id(blob) for blob in ok["rotation_ciphertext"]
    }
    assert all(k.endswith(keys["destination"]) for k in ok["rotation_key_id"])
    failed = result[result["rotation_status"] == "failed"].set_index("id")
    assert {
        "garbage": "InvalidCiphertextException",
        "wrong-context": "InvalidCiphertextException",
        "no-blob": "MissingParameterError",
    } == failed["rotation_error"].to_dict()
    assert dict(engine.failures_by_code) == {"InvalidCiphertextException": 2}
    assert failed["rotation_ciphertext"].isna().all()
    assert "no ciphertext" in failed.loc["no-blob", "rotation_error_message"]
    # row-3 appears twice, in different partitions: each is rotated.
    assert 2 == (result["id"] == "row-3").sum()
    pd.testing.assert_frame_equal(
        frame.compute().reset_index(drop=True),
        result[["id", "blob", "n"]].reset_index(drop=True),
    )


def test_a_bag_of_records_gets_the_added_fields(
    cluster: Client,
    local_kms: Any,
    keys: dict[str, str],
    settings: ClientSettings,
) -> None:
    """Each record comes back in order with its own keys and the five
    rotation fields, base64 in and base64 out."""
    import base64

    blobs = _blobs(local_kms, keys["source"], 10)
    records = [
        {
            "id": f"rec-{n}",
            "ciphertext": base64.b64encode(blobs[n % 10]).decode(),
            "encryption_context": {"n": str(n % 10)},
            "owner": f"team-{n % 3}",
        }
        for n in range(150)
    ]
    records.append({"id": "not-base64", "ciphertext": "%%%"})
    bag = db.from_sequence(records, npartitions=3)

    rotated = rotate_bag(
        bag,
        destination_key_id=keys["destination"],
        ciphertext_field="ciphertext",
        base64=True,
        client=settings,
    ).compute()

    assert [r["id"] for r in records] == [r["id"] for r in rotated]
    for record, out in zip(records, rotated, strict=True):
        assert record.get("owner") == out.get("owner")
    statuses = Counter(r["rotation_status"] for r in rotated)
    assert {"ok": 150, "failed": 1} == dict(statuses)
    assert "CiphertextEncodingError" == rotated[-1]["rotation_error"]
    for record in rotated[:-1]:
        blob = base64.b64decode(record["rotation_ciphertext"])
        assert keys["destination"] == blob_key_id(blob)


@pytest.mark.parametrize(
    "fields",
    [
        {"ciphertext_field": "rotation_ciphertext"},
        {"id_field": "rotation_status"},
        {"context_fields": {"tenant": "rotation_error"}},
        {"ciphertext_field": "old_key_id", "prefix": "old_"},
    ],
)
def test_a_bag_field_the_rotation_reads_cannot_be_an_added_one(
    local_kms: Any,
    keys: dict[str, str],
    settings: ClientSettings,
    fields: dict[str, Any],
) -> None:
    """The added fields replace a record's own of those names: a field
    the rotation reads (its ciphertext, say) would be lost from the
    result, so the call refuses the prefix, before anything is sent."""
    bag = db.from_sequence([{"id": "a", "rotation_ciphertext": b"x"}])
    before = local_kms.stats.total_requests

    with pytest.raises(ConfigurationError, match="choose another prefix"):
        rotate_bag(
            bag,
            destination_key_id=keys["destination"],
            client=settings,
            **fields,
        )

    assert before == local_kms.stats.total_requests


def test_a_dry_run_sends_nothing_and_fails_bad_rows(
    cluster: Client,
    local_kms: Any,
    keys: dict[str, str],
    settings: ClientSettings,
) -> None:
    """A dry run checks every row offline: dry-run or failed, and not
    one request reaches KMS."""
    blobs = _blobs(local_kms, keys["source"], 5)
    data = _frame(blobs, 40, 2).compute()
    data.loc[7, "blob"] = b""
    before = _requests(local_kms)

    result = rotate_dataframe(
        dd.from_pandas(data, npartitions=2),
        destination_key_id=keys["destination"],
        id_column="id",
        ciphertext_column="blob",
        context_columns={"n": "n"},
        client=settings,
        dry_run=True,
    ).compute()

    assert before == _requests(local_kms)
    assert {"dry-run": 39, "failed": 1} == dict(
        Counter(result["rotation_status"])
    )
    assert "ParameterLengthError" == result.loc[7, "rotation_error"]


def test_the_graph_carries_no_client_and_no_credentials(
    cluster: Client,
    local_kms: Any,
    keys: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With canary credentials in this process, the pickled graph holds
    neither them nor a client or future; the workers rotate with their
    own credentials and clients built from the settings."""
    canary = {
        "AWS_ACCESS_KEY_ID": "AKIACANARYCANARY0000",
        "AWS_SECRET_ACCESS_KEY": "canary-secret-key-value",
        "AWS_SESSION_TOKEN": "canary-session-token-value",
    }
    for name, value in canary.items():
        monkeypatch.setenv(name, value)
    blobs = _blobs(local_kms, keys["source"], 5)
    # Not the local KMS's dummy credentials: the standard chain, so each
    # worker uses the credentials of its own environment.
    settings = ClientSettings(
        region_name=local_kms.region, endpoint_url=local_kms.endpoint_url
    )
    with pytest.raises(ConfigurationError, match="ClientSettings"):
        rotate_dataframe(
            _frame(blobs, 10, 2),
            destination_key_id=keys["destination"],
            id_column="id",
            ciphertext_column="blob",
            client=local_kms.client(),  # type: ignore[arg-type]
        )

    rotated = rotate_dataframe(
        _frame(blobs, 50, 2),
        destination_key_id=keys["destination"],
        id_column="id",
        ciphertext_column="blob",
        context_columns={"n": "n"},
        client=settings,
        grant_tokens=None,
    )
    graph = dict(rotated.__dask_graph__())
    pickled = cloudpickle.dumps(graph) + pickle.dumps(graph)

    for value in canary.values():
        assert value.encode() not in pickled
    for marker in (b"botocore.client", b"ReEncryptClient", b"Future"):
        assert marker not in pickled
    result = rotated.compute()
    assert {"ok"} == set(result["rotation_status"])


def test_a_rerun_after_a_cancel_resumes_from_the_journals(
    cluster: Client,
    local_kms: Any,
    keys: dict[str, str],
    settings: ClientSettings,
    tmp_path: Path,
) -> None:
    """Cancel a job part-way; the cancelled tasks stop, and a rerun with
    the same journals rotates only what no attempt finished: every row
    once, with the journaled ciphertext for those done before."""
    blobs = _blobs(local_kms, keys["source"], 20)
    # Three partitions of 1,000, one per worker, at about 100 calls a
    # second each: a task that ignored the cancel would send at least
    # 700 more calls; one that stops sends a few dozen.
    frame = _frame(blobs, 3000, 3)
    journal_dir = tmp_path / "journal"
    local_kms.faults = Faults(latency=0.02)

    def job() -> dd.DataFrame:
        return rotate_dataframe(
            frame,
            destination_key_id=keys["destination"],
            id_column="id",
            ciphertext_column="blob",
            context_columns={"n": "n"},
            client=settings,
            journal_dir=journal_dir,
            workers=2,
        )

    rotated = job()  # holds the rate bucket while it computes
    future = cluster.compute(rotated)
    deadline = time.monotonic() + 60
    while _requests(local_kms) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    at_cancel = _requests(local_kms)
    future.cancel()
    _settle(local_kms)
    first_calls = _requests(local_kms)
    before = _journaled(journal_dir)
    local_kms.faults = Faults()

    result = job().compute()

    assert 0 < len(before) < 3000
    assert first_calls < 3000
    # The running tasks stopped soon after the cancel (they check about
    # four times a second) instead of finishing their partitions.
    assert first_calls - at_cancel < 500, (at_cancel, first_calls)
    assert sorted(frame["id"].compute()) == sorted(result["id"])
    assert {"ok"} == set(result["rotation_status"])
    by_id = dict(zip(result["id"], result["rotation_ciphertext"], strict=True))
    assert all(by_id[item_id] == blob for item_id, blob in before.items())
    # Items done before the rerun are not sent again; those in flight
    # when the cancel landed (uncommitted) may be.
    assert _requests(local_kms) - first_calls <= 3000 - len(before)
    assert _requests(local_kms) <= 3000 + 200


def test_the_rate_cap_holds_for_the_sum_of_all_workers(
    cluster: Client,
    local_kms: Any,
    keys: dict[str, str],
    settings: ClientSettings,
) -> None:
    """Three workers rotating at once never pass the cap together, as
    counted at the local KMS over every window of a second or more."""
    blobs = _blobs(local_kms, keys["source"], 10)
    cap = 200.0
    samples: list[tuple[float, int]] = []
    running = threading.Event()
    running.set()

    def sample() -> None:
        while running.is_set():
            samples.append((time.monotonic(), _requests(local_kms)))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = rotate_dataframe(
            _frame(blobs, 900, 6),
            destination_key_id=keys["destination"],
            id_column="id",
            ciphertext_column="blob",
            context_columns={"n": "n"},
            client=settings,
            rate=cap,
        ).compute()
    finally:
        running.clear()
        sampler.join()

    assert {"ok"} == set(result["rotation_status"])
    worst = _max_rate(samples, window=1.0)
    # Tolerance: the bucket's 20 ms burst and sampling of a busy process.
    assert worst <= cap * 1.15, worst


def _max_rate(samples: list[tuple[float, int]], *, window: float) -> float:
    """The highest count per second over any span of at least
    ``window`` seconds between two samples."""
    worst = 0.0
    start = 0
    for end in range(len(samples)):
        while (
            start + 1 < end
            and samples[end][0] - samples[start + 1][0] >= window
        ):
            start += 1
        span = samples[end][0] - samples[start][0]
        if span >= window:
            rate = (samples[end][1] - samples[start][1]) / span
            worst = max(worst, rate)
    return worst


def test_a_throttled_worker_slows_the_whole_cluster(
    cluster: Client,
    local_kms: Any,
    keys: dict[str, str],
    settings: ClientSettings,
    buckets: list[Any],
) -> None:
    """Against a KMS throttling above 120 calls a second, throttles from
    the workers lower the one bucket's rate, and every row ends ok."""
    blobs = _blobs(local_kms, keys["source"], 10)
    local_kms.faults = Faults(max_rps=120)

    result = rotate_dataframe(
        _frame(blobs, 600, 6),
        destination_key_id=keys["destination"],
        id_column="id",
        ciphertext_column="blob",
        context_columns={"n": "n"},
        client=settings,
        rate=400,
    ).compute()

    stats = buckets[0]._future.result().stats().result()
    assert {"ok"} == set(result["rotation_status"])
    assert stats["throttles"] > 0
    assert stats["lowest_rate"] < 400
    assert stats["granted"] >= 600


def test_the_bucket_hands_out_disjoint_slots_at_the_rate() -> None:
    """Leases from several tasks interleave on one timeline: at 100 per
    second, two tasks get half of 0.1 s of the cap each per lease, and
    40 slots leased in turns end 0.4 s from the first."""
    bucket = TokenBucket(100.0)
    granted_total = 0
    last_wait = 0.0
    for turn in range(8):
        granted, wait, interval = bucket.lease(100, f"task-{turn % 2}")
        assert granted == (10 if turn == 0 else 5)
        assert interval == pytest.approx(0.01)
        assert wait >= last_wait
        last_wait = wait
        granted_total += granted

    assert 45 == granted_total
    assert 0.4 <= last_wait <= 0.45
    assert {
        "rate": 100.0,
        "lowest_rate": 100.0,
        "granted": 45,
        "leases": 8,
        "throttles": 0,
    } == bucket.stats()


def test_a_partition_journal_skips_torn_lines_and_refuses_other_runs(
    tmp_path: Path,
) -> None:
    """A torn last line is ignored; a journal made for another
    destination or other input is refused."""
    from kms_reencrypt import RotationOutcome, RotationStatus

    journal = PartitionJournal(
        tmp_path, partition=3, destination_key_id="alias/new", fingerprint="f1"
    )
    for n in range(3):
        journal.record(
            RotationOutcome(
                id=f"i{n}",
                status=RotationStatus.OK,
                ciphertext_blob=b"new-%d" % n,
                key_id="arn:key",
            )
        )
    journal.record(
        RotationOutcome(id="bad", status=RotationStatus.FAILED, key_id="k")
    )
    journal.close()
    segment = next((tmp_path / "part-000003").glob("*.jsonl"))
    with segment.open("ab") as stream:
        stream.write(b'{"id": "torn", "ciphertext": "AAA')

    again = PartitionJournal(
        tmp_path, partition=3, destination_key_id="alias/new", fingerprint="f1"
    )

    assert ["i0", "i1", "i2"] == sorted(again.done_ids())
    assert (b"new-1", "arn:key") == again.done("i1")
    for destination, fingerprint in (
        ("alias/other", "f1"),
        ("alias/new", "f2"),
    ):
        with pytest.raises(ConfigurationError, match="journal"):
            PartitionJournal(
                tmp_path,
                partition=3,
                destination_key_id=destination,
                fingerprint=fingerprint,
            )


def test_an_unusable_destination_stops_the_job_with_the_engines_error(
    cluster: Client,
    local_kms: Any,
    keys: dict[str, str],
    settings: ClientSettings,
) -> None:
    """A disabled destination stops a partition as it stops rotate():
    RotationStoppedError with its reason reaches the caller."""
    blobs = _blobs(local_kms, keys["source"], 5)
    local_kms.set_key_state(keys["destination"], "Disabled")

    with pytest.raises(RotationStoppedError, match="in a row"):
        rotate_dataframe(
            _frame(blobs, 100, 2),
            destination_key_id=keys["destination"],
            id_column="id",
            ciphertext_column="blob",
            context_columns={"n": "n"},
            client=settings,
        ).compute()


def test_importing_the_package_and_the_command_imports_no_dask() -> None:
    """Dask is needed only by kms_reencrypt.dask and rotate-parquet's
    run."""
    code = (
        "import sys, kms_reencrypt, kms_reencrypt._cli as c; "
        "c.build_parser(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('dask', 'distributed', 'pandas', 'pyarrow')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert "[]" == out.strip()


def _write_dataset(
    local_kms: Any, source: str, path: Path, rows: int, *, bad: bool = False
) -> None:
    blobs = _blobs(local_kms, source, 10)
    ids = [f"row-{n}" for n in range(rows)]
    cipher = [blobs[n % 10] for n in range(rows)]
    contexts = [json.dumps({"n": str(n % 10)}) for n in range(rows)]
    if bad:
        cipher[-1] = b"\x01\x02\x02" + bytes(80)
    table = pa.table(
        {
            "id": ids,
            "blob": pa.array(cipher, pa.binary()),
            "context": contexts,
        }
    )
    path.mkdir()
    half = rows // 2
    pq.write_table(table.slice(0, half), path / "a.parquet")
    pq.write_table(table.slice(half), path / "b.parquet")


def test_rotate_parquet_on_a_scheduler_writes_and_resumes(
    cluster: Client,
    local_kms: Any,
    keys: dict[str, str],
    tmp_path: Path,
) -> None:
    """The command rotates a Parquet dataset on the cluster given by its
    scheduler address; run again, it rewrites the output from the
    journal without calling KMS."""
    source, output = tmp_path / "in", tmp_path / "out"
    _write_dataset(local_kms, keys["source"], source, 400, bad=True)
    report = tmp_path / "report.json"
    command = [
        "rotate-parquet",
        "--to",
        keys["destination"],
        "--input",
        str(source),
        "--output",
        str(output),
        "--column",
        "blob",
        "--id-column",
        "id",
        "--context-column",
        "context",
        "--dask-scheduler",
        cluster.scheduler.address,
        "--endpoint-url",
        local_kms.endpoint_url,
        "--region",
        local_kms.region,
        "--report",
        str(report),
    ]

    first = main(command)
    calls = _requests(local_kms)
    second = main(command)

    assert (1, 1) == (first, second)
    # The rerun sends only the row that failed.
    assert 1 == _requests(local_kms) - calls
    table = pq.read_table(output).to_pandas()
    assert sorted(f"row-{n}" for n in range(400)) == sorted(table["id"])
    ok = table[table["rotation_status"] == "ok"]
    assert 399 == len(ok)
    assert {keys["destination"]} == {
        blob_key_id(blob) for blob in ok["rotation_ciphertext"]
    }
    summary = json.loads(report.read_text())
    assert (399, 1) == (summary["ok"], summary["failed"])
    assert [{"id": "row-399", "code": "InvalidCiphertextException"}] == (
        summary["failed_items"]
    )
    assert (tmp_path / "out.journal").is_dir()


def test_rotate_parquet_refuses_a_foreign_output_and_local_with_a_cluster(
    local_kms: Any, keys: dict[str, str], tmp_path: Path
) -> None:
    """Exit status 2 before anything runs: a non-empty output no journal
    claims, and --local with a remote scheduler."""
    source = tmp_path / "in"
    _write_dataset(local_kms, keys["source"], source, 4)
    foreign = tmp_path / "out"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not ours")
    base = [
        "rotate-parquet",
        "--to",
        keys["destination"],
        "--input",
        str(source),
        "--column",
        "blob",
        "--id-column",
        "id",
    ]

    assert 2 == main([*base, "--output", str(foreign)])
    assert 2 == main(
        [
            *base,
            "--output",
            str(tmp_path / "other"),
            "--local",
            "--dask-scheduler",
            "tcp://127.0.0.1:1",
        ]
    )
    assert ["keep.txt"] == os.listdir(foreign)


def _wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


@pytest.mark.slow
def test_50000_items_with_a_worker_killed_are_each_rotated_once(
    cluster: Client,
    local_kms: Any,
    keys: dict[str, str],
    settings: ClientSettings,
    buckets: list[Any],
    tmp_path: Path,
) -> None:
    """SIGKILL the worker that holds the rate bucket in the middle of a
    50,000-item job over 10 partitions: Dask retries its partition, the
    retry takes the journaled items back instead of rotating them again,
    a new bucket replaces the lost one, and every id comes out exactly
    once, ok, under the destination key."""
    blobs = _blobs(local_kms, keys["source"], 100)
    total = 50_000
    frame = _frame(blobs, total, 10)
    journal_dir = tmp_path / "journal"
    pids = cluster.run(os.getpid)

    rotated = rotate_dataframe(
        frame,
        destination_key_id=keys["destination"],
        id_column="id",
        ciphertext_column="blob",
        context_columns={"n": "n"},
        client=settings,
        journal_dir=journal_dir,
        rate=100_000,
    )
    victim = buckets[0].address
    future = cluster.compute(rotated)
    _wait_for(lambda: _requests(local_kms) >= 12_000, 120)
    os.kill(pids[victim], signal.SIGKILL)
    result = future.result()

    assert total == len(result)
    assert Counter(f"row-{n}" for n in range(total)) == Counter(result["id"])
    assert {"ok"} == set(result["rotation_status"])
    assert {keys["destination"]} == {
        blob_key_id(blob) for blob in result["rotation_ciphertext"]
    }
    journaled = _journaled(journal_dir)
    by_id = dict(zip(result["id"], result["rotation_ciphertext"], strict=True))
    assert all(by_id[i] == blob for i, blob in journaled.items())
    # The killed task's retry re-sent at most its uncommitted tail.
    assert total <= _requests(local_kms) <= total + 500
    # The workers started the bucket's next generation, and it ran.
    story = cluster.story(buckets[0].key_of(1))
    assert any(event[3] == "memory" for event in story)
