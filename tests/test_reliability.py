"""Rotations of 10,000 items under faults, against the local KMS over
HTTP: every item rotated exactly once, none lost, none duplicated, and an
output that parses at every moment. See docs/reliability.md.

Each scenario runs ``kms-reencrypt rotate`` with a journal against a
local KMS on 127.0.0.1 while a watcher thread reads the output file as it
grows and checks every complete line. At the end the output must hold
each input id exactly once, ok, under the destination key (the key id
and key material named in every blob's header, and a sample re-encrypted
back over HTTP, which KMS authenticates), and the journal must agree
with it.

With ``KMS_REENCRYPT_RELIABILITY_COUNTS=FILE`` set, each scenario appends
its counts (items, injected faults, retries, kills, resumes) to FILE as
one JSON line; docs/reliability.md shows them.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import io
import json
import os
import random
import resource
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kms_reencrypt import _jsonl
from kms_reencrypt._cli import main
from kms_reencrypt._ratelimit import RateGovernor
from kms_reencrypt.local import Faults, LocalKms
from kms_reencrypt.local._keys import BLOB_MAGIC, blob_key_id

ITEMS = 10_000
#: Items re-encrypted back over HTTP per scenario to prove each sampled
#: ciphertext authentic under the destination key and its context.
SAMPLE = 300
#: Error codes the injected faults produce; an item may still fail with
#: one after its ten attempts (about 2e-6 per item in scenario 1), and the
#: next run rotates it.
FAULT_CODES = frozenset(
    {
        "ThrottlingException",
        "KMSInternalException",
        "DependencyTimeoutException",
        "KmsConnectionError",
    }
)


# -- the rate governor, on a fake clock --


def _simulate_governor(
    throttled: Callable[[random.Random, float], bool],
    *,
    cap: float | None = 400,
    call: float = 0.0001,
    slow: tuple[float, float] = (0.0, 0.0),
    shared: bool = False,
) -> tuple[float | None, int]:
    # 30 s of calls on a fake clock; a call takes ``call`` seconds, or
    # 50 ms while the client is slow (a starved CPU).
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    governor = RateGovernor(
        cap, shared=shared, clock=lambda: now[0], sleep=sleep
    )
    draws = random.Random(5)
    accepted = 0
    while now[0] < 30.0:
        governor.acquire()
        now[0] += 0.05 if slow[0] <= now[0] < slow[1] else call
        if throttled(draws, now[0]):
            governor.throttled()
        else:
            accepted += 1
    return governor.rate, accepted


@pytest.mark.parametrize("shared", [False, True], ids=["threads", "shared"])
def test_the_governor_keeps_its_rate_under_throttles_it_does_not_cause(
    shared: bool,
) -> None:
    """20 % of calls throttled whatever the rate: lowering the rate does
    not lower that share, so the governor keeps the cap instead of
    sinking to its floor of 2 calls a second."""
    rate, accepted = _simulate_governor(
        lambda draws, _: draws.random() < 0.2, shared=shared
    )

    assert rate is not None
    assert rate >= 300
    assert accepted > 30 * 200


@pytest.mark.parametrize("shared", [False, True], ids=["threads", "shared"])
def test_the_governor_recovers_after_the_client_was_slow(
    shared: bool,
) -> None:
    """The same 20 %, no cap, a client that manages 800 calls a second
    but crawls at 20 for three seconds: the governor must not read the
    slump as KMS's limit and stay down there."""
    rate, accepted = _simulate_governor(
        lambda draws, _: draws.random() < 0.2,
        cap=None,
        call=1 / 800,
        slow=(10.0, 13.0),
        shared=shared,
    )

    assert rate is None or rate >= 600
    assert accepted > 27 * 500


@pytest.mark.parametrize("shared", [False, True], ids=["threads", "shared"])
@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_the_governor_still_comes_down_to_a_quota(
    noise: float, shared: bool
) -> None:
    """A quota of 100 calls a second (a token bucket), alone or with 5 %
    of calls throttled at random on top: the governor lowers the cap of
    400 to about the quota, and stays near it."""
    bucket = {"tokens": 10.0, "last": 0.0}

    def quota(draws: random.Random, now: float) -> bool:
        refill = (now - bucket["last"]) * 100
        bucket["tokens"] = min(10.0, bucket["tokens"] + refill)
        bucket["last"] = now
        if draws.random() < noise:
            return True
        if bucket["tokens"] >= 1:
            bucket["tokens"] -= 1
            return False
        return True

    rate, accepted = _simulate_governor(quota, shared=shared)

    assert rate is not None
    assert rate < 200
    assert 30 * 80 <= accepted <= 30 * 110


# -- the harness --


class _Watcher(threading.Thread):
    """Reads the output file while it grows; every complete line must be
    a JSON object with an id, and no id may have two ok lines.

    It reads only what was appended since the last look, from the file
    it opened (a repair renames a new file over the path: the watcher
    notices the new inode and reads that one from the start).
    """

    def __init__(self, path: Path) -> None:
        super().__init__(name="output-watcher", daemon=True)
        self.path = path
        self.violations: list[str] = []
        self.polls = 0
        self.growth_polls = 0
        self.lines_checked = 0
        self.versions = 0
        self._identity: tuple[int, int] | None = None
        self._offset = 0
        self._pending = b""
        self._ok_ids: set[str] = set()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.poll()
            self._halt.wait(0.01)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.poll()

    def poll(self) -> None:
        self.polls += 1
        try:
            with self.path.open("rb") as stream:
                status = os.fstat(stream.fileno())
                if not stat.S_ISREG(status.st_mode):
                    return
                identity = (status.st_dev, status.st_ino)
                if identity != self._identity or status.st_size < (
                    self._offset
                ):
                    self._identity, self._offset = identity, 0
                    self._pending, self._ok_ids = b"", set()
                    self.versions += 1
                stream.seek(self._offset)
                chunk = stream.read()
        except (FileNotFoundError, IsADirectoryError):
            return
        self._offset += len(chunk)
        self.growth_polls += bool(chunk)
        lines = (self._pending + chunk).split(b"\n")
        self._pending = lines.pop()  # not terminated yet: not a line
        for raw in lines:
            self._check(raw)

    def _check(self, raw: bytes) -> None:
        self.lines_checked += 1
        try:
            record = json.loads(raw)
        except ValueError:
            self.violations.append(f"not JSON: {raw[:80]!r}")
            return
        if not isinstance(record, dict) or not isinstance(
            record.get("id"), str
        ):
            self.violations.append(f"not a record: {raw[:80]!r}")
            return
        if record.get("status") == "ok":
            if record["id"] in self._ok_ids:
                self.violations.append(f"two ok lines for {record['id']}")
            self._ok_ids.add(record["id"])

    @property
    def complete_ok_lines(self) -> int:
        return len(self._ok_ids)


class _Rotation:
    """One scenario: a local KMS with two keys, an input of ``ITEMS``
    ciphertexts, and ``kms-reencrypt rotate`` runs on it."""

    def __init__(self, kms: LocalKms, directory: Path, name: str) -> None:
        self.kms = kms
        self.name = name
        self.source = kms.create_key()["KeyId"]
        destination = kms.describe_key(kms.create_key()["KeyId"])
        self.destination = destination["KeyId"]
        self.destination_arn = destination["Arn"]
        self.input = directory / "in.jsonl"
        self.output = directory / "out.jsonl"
        self.journal = directory / "out.jsonl.journal"
        self.directory = directory
        self.ids = [f"row-{n}" for n in range(ITEMS)]
        self.runs = 0
        self.reports: list[dict[str, Any]] = []
        self.served: Any = None
        self.started = time.monotonic()
        self._write_input()
        self.watcher = _Watcher(self.output)
        self.watcher.start()

    def _write_input(self) -> None:
        # Sealed in-process by the local KMS's own source key, the code
        # its Encrypt runs: 10,000 ciphertexts in a tenth of a second
        # instead of 10,000 HTTP calls.
        key = self.kms._store.key_by_id(self.source)
        assert key is not None
        with self.input.open("w") as stream:
            for n, item_id in enumerate(self.ids):
                context = {"n": str(n)}
                blob = key.seal(b"plaintext %d" % n, context)
                record = {
                    "id": item_id,
                    "ciphertext": base64.b64encode(blob).decode(),
                    "encryption_context": context,
                }
                stream.write(json.dumps(record) + "\n")

    @property
    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AWS_") and k != "KMS_REENCRYPT_LOG"
        }
        env.update(
            {
                "AWS_ACCESS_KEY_ID": "AKIAEXAMPLERELIABLE",
                "AWS_SECRET_ACCESS_KEY": "not-a-secret",
                "AWS_DEFAULT_REGION": self.kms.region,
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        return env

    def arguments(self) -> list[str]:
        self.runs += 1
        return [
            "rotate",
            "--to",
            self.destination,
            "--input",
            str(self.input),
            "--output",
            str(self.output),
            "--journal",
            str(self.journal),
            "--endpoint-url",
            self.kms.endpoint_url,
            "--report",
            str(self.directory / f"report-{self.runs}.json"),
        ]

    def command(self) -> list[str]:
        return [sys.executable, "-m", "kms_reencrypt", *self.arguments()]

    def spawn(self, **kwargs: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            **kwargs,
        )

    def run(self, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        finished = subprocess.run(
            self.command(),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            **kwargs,
        )
        self.collect_report()
        return finished

    def collect_report(self) -> dict[str, Any] | None:
        path = self.directory / f"report-{self.runs}.json"
        if not path.exists():
            return None
        report: dict[str, Any] = json.loads(path.read_text())
        self.reports.append(report)
        return report

    def run_until_done(self, first_status: int) -> int:
        """Resume after a run that left items failed by injected faults
        (their ten attempts all hit one); returns the resumes made."""
        status, resumes = first_status, 0
        while status != 0:
            codes = set(self.reports[-1]["failures_by_code"])
            assert status in (1, 3), status
            assert codes <= FAULT_CODES, codes
            assert resumes < 3
            resumes += 1
            status = self.run().returncode
        return resumes

    def wait_for_lines(self, count: int, process: Any = None) -> None:
        # Not a timing assertion: waits for progress, gives up only if
        # the rotation ended first.
        while self.watcher.complete_ok_lines < count:
            if process is not None and process.poll() is not None:
                return
            time.sleep(0.01)

    def totals(self) -> dict[str, int]:
        names = ("ok", "failed", "skipped", "calls", "retries", "throttles")
        return {n: sum(r[n] for r in self.reports) for n in names}

    # -- the checks --

    def check_journal(self) -> int:
        """The journal is intact, holds only input ids, each ok row with
        its own ok output line; every ok line already in the output file
        is ok in the journal (lines are written after the commit).
        Returns the items the journal marks done."""
        with contextlib.closing(sqlite3.connect(self.journal)) as db:
            assert [("ok",)] == db.execute("PRAGMA integrity_check").fetchall()
            run = dict(db.execute("SELECT name, value FROM run"))
            rows = db.execute(
                "SELECT id, status, output FROM items"
            ).fetchall()
        assert self.destination == run["destination"]
        known = set(self.ids)
        done = set()
        for item_id, status, output in rows:
            assert item_id in known
            if status == "ok":
                record = json.loads(output)
                assert (item_id, "ok") == (record["id"], record["status"])
                done.add(item_id)
        in_file = {
            record["id"]
            for record in self._complete_records()
            if record.get("status") == "ok"
        }
        assert in_file <= done, sorted(in_file - done)[:5]
        return len(done)

    def _complete_records(self) -> Iterator[dict[str, Any]]:
        if not self.output.is_file():
            return
        data = self.output.read_bytes()
        for raw in data.split(b"\n")[:-1]:
            yield json.loads(raw)

    def check_final(self) -> dict[str, Any]:
        """Every input id exactly once, ok, under the destination key."""
        self.watcher.stop()
        self.served = self.kms.stats  # before the checks' own calls
        assert [] == self.watcher.violations
        assert self.watcher.growth_polls >= 2
        data = self.output.read_bytes()
        assert data.endswith(b"\n")
        records = [json.loads(raw) for raw in data.splitlines()]
        ids = [record["id"] for record in records]
        assert Counter(self.ids) == Counter(ids)
        assert set(self.ids) == set(ids)
        assert len(self.ids) == len(ids)
        assert {"ok"} == {record["status"] for record in records}

        key = self.kms._store.key_by_id(self.destination)
        assert key is not None
        material = BLOB_MAGIC + self.destination.encode() + key.material_id
        for record in records:
            blob = base64.b64decode(record["ciphertext"])
            assert self.destination == blob_key_id(blob)
            assert blob.startswith(material)
            assert self.destination_arn == record["key_id"]
            assert {"n": record["id"][4:]} == record["encryption_context"]
        self._reencrypt_back(random.Random(len(data)).sample(records, SAMPLE))
        assert ITEMS == self.check_journal()
        requests = self.kms.stats.requests
        assert "Decrypt" not in requests
        assert "Encrypt" not in requests
        leftovers = {p.name for p in self.directory.iterdir()} - {
            "in.jsonl",
            "out.jsonl",
            "out.jsonl.journal",
        }
        assert {p for p in leftovers if not p.startswith("report-")} == set()
        return {
            "watcher_polls_with_new_lines": self.watcher.growth_polls,
            "watcher_lines_checked": self.watcher.lines_checked,
            "output_files_seen": self.watcher.versions,
        }

    def _reencrypt_back(self, records: list[dict[str, Any]]) -> None:
        # ReEncrypt authenticates each ciphertext under the key its header
        # names and under its context; SourceKeyId says which key that is.
        self.kms.faults = Faults()
        client: Any = self.kms.kms_client()
        for record in records:
            answer = client.re_encrypt(
                CiphertextBlob=base64.b64decode(record["ciphertext"]),
                SourceEncryptionContext=record["encryption_context"],
                DestinationKeyId=self.source,
                DestinationEncryptionContext=record["encryption_context"],
            )
            assert self.destination_arn == answer["SourceKeyId"]

    def record(self, **counts: Any) -> dict[str, Any]:
        stats = self.served or self.kms.stats
        entry = {
            "scenario": self.name,
            "items": ITEMS,
            "runs": self.runs,
            "resumes": self.runs - 1,
            **counts,
            "kms_reencrypt_requests": stats.requests.get("ReEncrypt", 0),
            "kms_throttled": stats.throttled,
            "kms_server_errors": stats.server_errors,
            "kms_resets": stats.resets,
            "kms_response_resets": stats.response_resets,
            **{f"report_{k}": v for k, v in self.totals().items()},
            "seconds": round(time.monotonic() - self.started, 1),
        }
        target = os.environ.get("KMS_REENCRYPT_RELIABILITY_COUNTS")
        if target:
            with open(target, "a", encoding="utf-8") as stream:
                stream.write(json.dumps(entry) + "\n")
        return entry


@pytest.fixture
def rotation(
    local_kms: LocalKms, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[_Rotation]:
    scenario = _Rotation(local_kms, tmp_path, request.node.name)
    try:
        yield scenario
    finally:
        scenario.watcher.stop()


# -- the scenarios --


@pytest.mark.slow
def test_throttles_server_errors_and_resets(rotation: _Rotation) -> None:
    """20 % of calls throttled, 5 % answered with a retryable 500, 2 %
    reset after the request was read and 2 % reset half-way through the
    answer (KMS re-encrypted, the client never heard): every item once."""
    rotation.kms.faults = Faults(
        throttle_fraction=0.2,
        server_error_fraction=0.05,
        reset_fraction=0.02,
        response_reset_fraction=0.02,
    )

    rotation.run_until_done(rotation.run().returncode)

    stats = rotation.kms.stats
    totals = rotation.totals()
    assert stats.throttled > 0
    assert stats.server_errors > 0
    assert stats.resets > 0
    assert stats.response_resets > 0
    # Every call the engine made reached the server, and every injected
    # fault was retried: one call per item plus one per retry.
    assert stats.requests["ReEncrypt"] == totals["calls"]
    assert (
        totals["calls"]
        == totals["ok"] + totals["failed"] + (totals["retries"])
    )
    assert totals["throttles"] == stats.throttled
    checks = rotation.check_final()
    rotation.record(**checks)


@pytest.mark.slow
def test_local_kms_stopped_and_restarted_mid_run(rotation: _Rotation) -> None:
    """The local KMS goes away for half a second once a third of the
    items are done (connections closed, then refused) and comes back on
    the same port with the same keys; the run itself finishes."""
    endpoint = rotation.kms.endpoint_url
    process = rotation.spawn()
    rotation.wait_for_lines(ITEMS // 3, process)
    before = rotation.kms.stats.requests["ReEncrypt"]
    rotation.kms.stop()
    time.sleep(0.5)  # a pause, not a measurement
    rotation.kms.start()
    _, stderr = process.communicate()
    rotation.collect_report()
    after = rotation.kms.stats.requests["ReEncrypt"] - before

    resumes = rotation.run_until_done(process.returncode)

    assert 0 < before
    assert 0 < after
    assert endpoint == rotation.kms.endpoint_url
    assert 0 == resumes, stderr
    # Nothing but the outage was injected: its failed calls were retried.
    assert rotation.totals()["retries"] > 0
    checks = rotation.check_final()
    served = rotation.served.requests["ReEncrypt"]
    rotation.record(
        outage_seconds=0.5,
        calls_refused_or_cut=rotation.totals()["calls"] - served,
        **checks,
    )


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(rotation: _Rotation) -> None:
    """The rotating process is killed with SIGKILL five times and started
    again each time; the journal is intact after every kill and the last
    run finishes. Kills 1, 3 and 5 come 0.3 to 2.5 s after the start
    (start-up, repair or mid-write, as it falls); kills 2 and 4 come 0 to
    1 s after that run has rotated an item, so that at least two always
    land mid-rotation, however slow the start-up."""
    seed = random.randrange(2**32)
    draws = random.Random(seed)
    delays, done, torn = [], [], 0
    for kill in range(5):
        before = rotation.check_journal() if rotation.journal.exists() else 0
        process = rotation.spawn()
        mid_run = kill % 2 == 1
        if mid_run:
            # The watcher counts the ok lines of the current output; the
            # old lines are all in the journal, so one more is progress.
            rotation.wait_for_lines(before + 1, process)
            delay = round(draws.uniform(0.0, 1.0), 2)
        else:
            delay = round(draws.uniform(0.3, 2.5), 2)
        delays.append(delay)
        try:
            process.wait(delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
        process.communicate()
        assert process.returncode == -signal.SIGKILL, (seed, delays)
        if rotation.output.is_file():
            data = rotation.output.read_bytes()
            torn += bool(data) and not data.endswith(b"\n")
        done.append(
            rotation.check_journal() if rotation.journal.exists() else 0
        )
        if mid_run:
            assert done[-1] > before, (seed, delays, done)

    last = rotation.run()

    assert 0 == last.returncode, (seed, last.stderr)
    checks = rotation.check_final()
    served = rotation.served.requests["ReEncrypt"]
    rotation.record(
        kills=5,
        kill_delays=delays,
        kill_seed=seed,
        done_after_each_kill=done,
        torn_tails_after_kill=torn,
        # No fault was injected: every call re-encrypted its item, so the
        # calls beyond one per item are those whose result a kill lost.
        calls_lost_to_kills=served - ITEMS,
        **checks,
    )


class _FullDisk(io.FileIO):
    """A file that takes ``room`` bytes, then fails as a full disk does:
    a short write, then ENOSPC."""

    def __init__(self, path: str, mode: str, room: list[int]) -> None:
        super().__init__(path, mode)
        self._room = room

    def write(self, data: Any) -> int:
        if self._room[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = super().write(memoryview(data)[: self._room[0]])
        assert written is not None
        self._room[0] -= written
        return written


def _check_stop(status: int, stderr: str, *fragments: str) -> None:
    assert 3 == status, stderr
    assert "Traceback" not in stderr
    assert "stopped early: " in stderr
    assert "run the same command again to finish" in stderr
    for fragment in fragments:
        assert fragment in stderr


@pytest.mark.slow
def test_disk_full_on_the_output_then_resume(
    rotation: _Rotation,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The output's disk fills up after 1.4 MB (about 4,000 lines, in
    the middle of one): the command stops with status 3 and says why; the
    journal is consistent; the same command again finishes. The command
    runs in this process, the output file object replaced by one that
    fails with ENOSPC."""
    room = [1_400_000]
    real_open = open

    def full_disk_open(file: Any, mode: str = "r", **kwargs: Any) -> Any:
        if os.fspath(file) == str(rotation.output) and mode in "wa":
            raw = _FullDisk(os.fspath(file), mode, room)
            return io.TextIOWrapper(io.BufferedWriter(raw), **kwargs)
        return real_open(file, mode, **kwargs)

    monkeypatch.setattr(_jsonl, "open", full_disk_open, raising=False)
    for name, value in rotation.env.items():
        monkeypatch.setenv(name, value)

    status = main(rotation.arguments())
    rotation.collect_report()
    stderr = capsys.readouterr().err
    monkeypatch.undo()

    _check_stop(
        status,
        stderr,
        f"the output file {rotation.output} could not be written "
        "(No space left on device)",
    )
    assert rotation.reports[-1]["stopped_reason"]
    torn = not rotation.output.read_bytes().endswith(b"\n")
    done = rotation.check_journal()
    assert 0 < done < ITEMS
    resumed = rotation.run()
    assert 0 == resumed.returncode, resumed.stderr
    assert done == rotation.reports[-1]["skipped"]
    checks = rotation.check_final()
    rotation.record(
        done_when_stopped=done, torn_tail_when_stopped=torn, **checks
    )


@pytest.mark.slow
def test_file_size_limit_mid_run_then_resume(rotation: _Rotation) -> None:
    """RLIMIT_FSIZE of 1.5 MB on the rotating process: the kernel refuses
    writes past it (EFBIG) to the journal or the output, whichever gets
    there first. The command stops with status 3 and a clear reason; the
    journal is consistent; the same command without the limit finishes."""

    def limit() -> None:
        size = 1_500_000
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    stopped = rotation.run(preexec_fn=limit)

    _check_stop(stopped.returncode, stopped.stderr, "could not be written")
    which = "journal" if "the journal" in stopped.stderr else "output"
    assert which == "journal" or "(File too large)" in stopped.stderr
    done = rotation.check_journal()
    assert 0 < done < ITEMS
    resumed = rotation.run()
    assert 0 == resumed.returncode, resumed.stderr
    assert done == rotation.reports[-1]["skipped"]
    checks = rotation.check_final()
    rotation.record(done_when_stopped=done, file_at_limit=which, **checks)


@pytest.mark.slow
def test_output_replaced_mid_run_then_resume(rotation: _Rotation) -> None:
    """A third of the way, the output file is moved away and a directory
    takes its path, so no line can reach it: the command notices, stops
    with status 3, and refuses (status 2) to start while the path is a
    directory. Once it is gone, the same command rebuilds the output
    from the journal and finishes."""
    process = rotation.spawn()
    rotation.wait_for_lines(ITEMS // 3, process)
    rotation.output.rename(rotation.directory / "moved.jsonl")
    rotation.output.mkdir()
    _, stderr = process.communicate()
    rotation.collect_report()

    _check_stop(
        process.returncode,
        stderr,
        f"the output file {rotation.output} was removed or replaced",
    )
    done = rotation.check_journal()
    blocked = rotation.run()
    assert 2 == blocked.returncode
    assert "is a directory" in blocked.stderr
    assert "Traceback" not in blocked.stderr
    rotation.output.rmdir()
    (rotation.directory / "moved.jsonl").unlink()
    resumed = rotation.run()
    assert 0 == resumed.returncode, resumed.stderr
    assert done == rotation.reports[-1]["skipped"]
    checks = rotation.check_final()
    rotation.record(done_when_stopped=done, **checks)
