"""Bulk rotation through the engine, against the local KMS over HTTP."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
from botocore.config import Config

import kms_reencrypt
from kms_reencrypt import (
    ClientSettings,
    ConfigurationError,
    RotationConfig,
    RotationItem,
    RotationStatus,
    RotationStoppedError,
    rotate,
    rotate_iter,
)
from kms_reencrypt._journal import Journal
from kms_reencrypt._ratelimit import (
    BURST_SECONDS,
    SYNC_SECONDS,
    RateGovernor,
)
from kms_reencrypt._rotate import _SeenIds
from kms_reencrypt.local import Faults

NO_RETRIES = Config(retries={"total_max_attempts": 1})


@pytest.fixture
def keys(local_kms: Any) -> dict[str, str]:
    return {
        "source": local_kms.create_key()["KeyId"],
        "destination": local_kms.create_key()["KeyId"],
    }


def _items(
    local_kms: Any, source: str, count: int, *, prefix: str = "item"
) -> list[RotationItem]:
    kms = local_kms.kms_client()
    items = []
    for n in range(count):
        context = {"tenant": f"t{n % 7}", "n": str(n)}
        blob = kms.encrypt(
            KeyId=source,
            Plaintext=f"secret {n}".encode(),
            EncryptionContext=context,
        )["CiphertextBlob"]
        items.append(
            RotationItem(
                id=f"{prefix}-{n}",
                ciphertext_blob=blob,
                encryption_context=context,
            )
        )
    return items


@pytest.fixture
def settings(local_kms: Any) -> ClientSettings:
    return ClientSettings.for_local_kms(local_kms)


_DECRYPTERS: dict[int, Any] = {}


def _decrypt(local_kms: Any, outcome: Any) -> bytes:
    # Tests verify with Decrypt; the library itself never calls it.
    kms = _DECRYPTERS.get(id(local_kms))
    if kms is None:
        kms = _DECRYPTERS[id(local_kms)] = local_kms.kms_client()
    kwargs: dict[str, Any] = {"CiphertextBlob": outcome.ciphertext_blob}
    if outcome.encryption_context is not None:
        kwargs["EncryptionContext"] = dict(outcome.encryption_context)
    plaintext: bytes = kms.decrypt(**kwargs)["Plaintext"]
    return plaintext


def test_a_few_hundred_items_round_trip_and_decrypt_under_the_new_key(
    local_kms: Any, keys: dict[str, str], settings: ClientSettings
) -> None:
    """Every item is re-encrypted once, under the destination, with its
    own context carried forward, and decrypts to the same plaintext."""
    items = _items(local_kms, keys["source"], 300)
    outcomes = {}

    report = rotate(
        items,
        destination_key_id=keys["destination"],
        client=settings,
        writer=lambda o: outcomes.__setitem__(o.id, o),
    )

    assert (300, 0, 300) == (report.ok, report.failed, len(outcomes))
    for n, item in enumerate(items):
        outcome = outcomes[item.id]
        assert outcome.key_id.endswith(keys["destination"])
        assert dict(item.encryption_context or {}) == dict(
            outcome.encryption_context or {}
        )
        assert f"secret {n}".encode() == _decrypt(local_kms, outcome)


def test_a_destination_context_overrides_and_none_removes_it(
    local_kms: Any, keys: dict[str, str], settings: ClientSettings
) -> None:
    """Every new ciphertext is bound to the given context, or to none."""
    items = _items(local_kms, keys["source"], 5)

    overridden = list(
        rotate_iter(
            items,
            destination_key_id=keys["destination"],
            client=settings,
            destination_encryption_context={"purpose": "rotated"},
        )
    )
    bare = list(
        rotate_iter(
            items,
            destination_key_id=keys["destination"],
            client=settings,
            destination_encryption_context=None,
        )
    )

    for outcome in overridden:
        assert {"purpose": "rotated"} == dict(outcome.encryption_context)
        assert outcome.id
        assert _decrypt(local_kms, outcome)
    for outcome in bare:
        assert outcome.encryption_context is None
        assert _decrypt(local_kms, outcome)


def test_items_failing_on_their_own_are_recorded_and_the_run_goes_on(
    local_kms: Any, keys: dict[str, str], settings: ClientSettings
) -> None:
    """Garbage ciphertext, a wrong context, a refused request and a
    duplicate id fail alone; every other item is rotated."""
    good = _items(local_kms, keys["source"], 40)
    wrong_context = RotationItem(
        id="wrong-context",
        ciphertext_blob=good[0].ciphertext_blob,
        encryption_context={"tenant": "someone else"},
    )
    items: list[Any] = [
        *good[:20],
        {"id": "garbage", "ciphertext_blob": b"\x01\x02\x02" + bytes(80)},
        wrong_context,
        {"id": "empty", "ciphertext_blob": b""},
        {"id": good[3].id, "ciphertext_blob": good[3].ciphertext_blob},
        {"ciphertext_blob": b"no id"},
        *good[20:],
    ]

    report = rotate(
        items, destination_key_id=keys["destination"], client=settings
    )

    assert 40 == report.ok
    assert 5 == report.failed
    assert {
        "InvalidCiphertextException": 2,
        "ParameterLengthError": 1,
        "ConflictingParametersError": 1,
        "MissingParameterError": 1,
    } == dict(report.failures_by_code)
    assert report.stopped_reason is None


@pytest.mark.parametrize("state", ["unknown", "Disabled", "PendingDeletion"])
def test_an_unusable_destination_stops_the_run_with_one_reason(
    local_kms: Any, keys: dict[str, str], settings: ClientSettings, state: str
) -> None:
    """A destination every item would fail on stops the run early."""
    items = _items(local_kms, keys["source"], 10) * 8
    items = [
        RotationItem(id=f"x{n}", ciphertext_blob=item.ciphertext_blob)
        for n, item in enumerate(items)
    ]
    destination = keys["destination"]
    if state == "unknown":
        destination = "alias/does-not-exist"
    else:
        local_kms.set_key_state(destination, state)

    with pytest.raises(RotationStoppedError) as caught:
        rotate(items, destination_key_id=destination, client=settings)

    report = caught.value.report
    assert 3 == caught.value.exit_code
    assert 0 == report.ok
    assert report.stopped_reason == caught.value.reason
    assert "in a row" in report.stopped_reason
    assert report.total == report.failed + report.not_attempted


def test_max_failures_stops_once_exceeded(
    local_kms: Any, keys: dict[str, str], settings: ClientSettings
) -> None:
    """More failures than max_failures stops the run."""
    garbage = [
        {"id": f"g{n}", "ciphertext_blob": b"\x01\x02" + bytes(60)}
        for n in range(50)
    ]

    with pytest.raises(RotationStoppedError) as caught:
        rotate(
            garbage,
            destination_key_id=keys["destination"],
            client=settings,
            max_failures=3,
            workers=1,
        )

    assert "max_failures=3" in caught.value.reason
    assert caught.value.report.failed < 50


def test_a_failing_writer_leaves_the_item_undone_for_the_next_run(
    local_kms: Any,
    keys: dict[str, str],
    settings: ClientSettings,
    tmp_path: Any,
) -> None:
    """A writer error fails the item (WriteBackError), the journal does
    not mark it done, and the next run rotates it again."""
    items = _items(local_kms, keys["source"], 30)
    journal = tmp_path / "run.journal"
    written: dict[str, bytes] = {}

    def flaky(outcome: Any) -> None:
        if outcome.id.endswith("7"):
            raise OSError("database unavailable")
        written[outcome.id] = outcome.ciphertext_blob

    first = rotate(
        items,
        destination_key_id=keys["destination"],
        client=settings,
        writer=flaky,
        journal=journal,
    )
    second = list(
        rotate_iter(
            items,
            destination_key_id=keys["destination"],
            client=settings,
            writer=lambda o: written.__setitem__(o.id, o.ciphertext_blob),
            journal=journal,
        )
    )

    assert {"WriteBackError": 3} == dict(first.failures_by_code)
    assert {"item-7", "item-17", "item-27"} == {
        o.id for o in second if o.status is RotationStatus.OK
    }
    assert 27 == sum(o.status is RotationStatus.SKIPPED for o in second)
    assert 30 == len(written)


def test_interrupted_run_resumes_with_every_item_written_exactly_once(
    local_kms: Any,
    keys: dict[str, str],
    settings: ClientSettings,
    tmp_path: Any,
) -> None:
    """Ctrl-C inside the writer at item N; the next run finishes the rest
    and no item is written back twice once the journal committed it."""
    items = _items(local_kms, keys["source"], 120)
    journal = tmp_path / "run.journal"
    writes: list[str] = []

    def interrupt_at_50(outcome: Any) -> None:
        if len(writes) == 50:
            raise KeyboardInterrupt
        writes.append(outcome.id)

    with pytest.raises(KeyboardInterrupt):
        rotate(
            items,
            destination_key_id=keys["destination"],
            client=settings,
            writer=interrupt_at_50,
            journal=journal,
        )
    report = rotate(
        items,
        destination_key_id=keys["destination"],
        client=settings,
        writer=lambda o: writes.append(o.id),
        journal=journal,
    )

    assert 50 == report.skipped
    assert 70 == report.ok
    assert sorted(i.id for i in items) == sorted(writes)


def test_a_journal_refuses_another_destination(
    keys: dict[str, str], tmp_path: Any
) -> None:
    """A journal is bound to the destination it was made for."""
    path = tmp_path / "run.journal"
    Journal(path, destination_key_id=keys["destination"]).close()

    with pytest.raises(ConfigurationError, match="was made for"):
        Journal(path, destination_key_id=keys["source"])


def test_throttling_and_server_errors_are_retried_to_completion(
    local_kms: Any, keys: dict[str, str], settings: ClientSettings
) -> None:
    """Injected throttles, 500s and resets are retried by the engine
    until every item is ok."""
    items = _items(local_kms, keys["source"], 150)
    local_kms.faults = Faults(
        throttle_fraction=0.1,
        server_error_fraction=0.05,
        reset_fraction=0.02,
        seed=7,
    )

    report = rotate(
        items,
        destination_key_id=keys["destination"],
        client=settings,
        config=RotationConfig(backoff_base=0.005, backoff_cap=0.05),
    )

    assert (150, 0) == (report.ok, report.failed)
    assert report.throttles > 0
    assert report.retries >= report.throttles
    assert report.calls == 150 + report.retries


def test_a_server_rate_limit_is_survived_with_all_items_ok(
    local_kms: Any, keys: dict[str, str], settings: ClientSettings
) -> None:
    """Against max_rps the run slows down and still finishes."""
    items = _items(local_kms, keys["source"], 200)
    local_kms.faults = Faults(max_rps=100)

    report = rotate(
        items,
        destination_key_id=keys["destination"],
        client=settings,
        config=RotationConfig(backoff_base=0.02, backoff_cap=1.0),
    )

    assert (200, 0) == (report.ok, report.failed)


def test_the_rate_cap_keeps_the_server_from_throttling(
    local_kms: Any, keys: dict[str, str], settings: ClientSettings
) -> None:
    """With rate= under the server's limit, KMS throttles nothing."""
    items = _items(local_kms, keys["source"], 120)
    local_kms.faults = Faults(max_rps=120)

    report = rotate(
        items, destination_key_id=keys["destination"], client=settings, rate=80
    )

    assert 120 == report.ok
    assert 0 == local_kms.stats.throttled
    assert 0 == report.throttles


def test_the_governor_hands_out_slots_at_the_rate() -> None:
    """200 slots at 100 per second span two seconds of the clock."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    governor = RateGovernor(100, clock=lambda: now[0], sleep=sleep)
    for _ in range(200):
        governor.acquire()

    assert 1.95 <= now[0] <= 2.0


def test_the_governor_slows_on_throttles_and_recovers() -> None:
    """A throttle lowers the rate; throttle-free time raises it back."""
    now = [0.0]
    governor = RateGovernor(100, clock=lambda: now[0], sleep=lambda s: None)

    governor.throttled()
    lowered = governor.rate
    now[0] += 30.0
    governor.acquire()

    assert lowered is not None
    assert lowered < 100
    assert 100 == governor.rate


def _second_process(
    governor: RateGovernor, clock: Any, sleep: Any
) -> RateGovernor:
    """The governor as a worker process gets it: the same shared state
    behind a front of its own (here in this process, on the fake
    clock)."""
    other = RateGovernor.__new__(RateGovernor)
    other.__setstate__(governor.__getstate__())
    other._clock = clock
    other._sleep = sleep
    return other


@pytest.mark.parametrize("rate", [100.0, 4000.0])
def test_two_processes_share_the_cap(rate: float) -> None:
    """Two process fronts on one shared state, taking turns: together
    they get ``rate`` slots a second, at 100 a second one slot at a time
    and at 4,000 in leases of 20."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    first = RateGovernor(rate, shared=True, clock=lambda: now[0], sleep=sleep)
    second = _second_process(first, lambda: now[0], sleep)
    for n in range(int(2 * rate)):
        (first if n % 2 else second).acquire()

    assert 1.95 <= now[0] <= 2.0


def test_a_throttle_reaches_the_other_process_within_a_sync() -> None:
    """Uncapped, a front goes to the shared state only every
    SYNC_SECONDS; a throttle in another process lowers the rate from
    what both measured, and the first front follows at its next look."""
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    first = RateGovernor(None, shared=True, clock=lambda: now[0])
    first._sleep = sleep
    second = _second_process(first, lambda: now[0], sleep)
    for _ in range(2000):  # a second at 1,000 calls a second each
        now[0] += 0.001
        first.acquire()
        second.acquire()
    assert [] == sleeps

    second.throttled()
    lowered = first.rate
    first.acquire()  # within its uncapped spell: still free
    assert [] == sleeps
    now[0] += SYNC_SECONDS
    start = now[0]
    for _ in range(500):  # under DECREASE_INTERVAL: no raise yet
        first.acquire()
        now[0] += sum(sleeps)
        sleeps.clear()

    assert lowered is not None
    assert 1200 <= lowered <= 1700  # 0.8 of the 2,000 a second measured
    # The slots came at the lowered rate, less the burst allowance.
    assert now[0] - start == pytest.approx(
        499 / lowered - BURST_SECONDS, abs=0.002
    )


def test_only_reencrypt_is_ever_called(
    local_kms: Any, keys: dict[str, str]
) -> None:
    """The engine calls ReEncrypt and nothing else: never Decrypt or
    Encrypt."""
    items = _items(local_kms, keys["source"], 20)
    kms = local_kms.kms_client(config=NO_RETRIES)
    called: list[str] = []
    kms.meta.events.register(
        "before-call.kms", lambda model, **kw: called.append(model.name)
    )

    rotate(items, destination_key_id=keys["destination"], client=kms)
    rotate(
        items,
        destination_key_id=keys["destination"],
        client=kms,
        dry_run=True,
        server_dry_run=5,
    )

    assert {"ReEncrypt"} == set(called)
    assert "Decrypt" not in called
    assert "Encrypt" not in called


def test_a_caller_client_with_botocore_retries_is_not_retried_again(
    local_kms: Any, keys: dict[str, str]
) -> None:
    """botocore retries; the engine makes one attempt per item and only
    counts the throttles it sees."""
    items = _items(local_kms, keys["source"], 60)
    local_kms.faults = Faults(throttle_fraction=0.3, seed=3)
    kms = local_kms.kms_client(
        config=Config(retries={"mode": "standard", "total_max_attempts": 3})
    )

    outcomes = list(
        rotate_iter(items, destination_key_id=keys["destination"], client=kms)
    )

    assert all(o.attempts == 1 for o in outcomes)
    failed_codes = {o.error_code for o in outcomes if not o.ok}
    assert failed_codes <= {"ThrottlingException"}


def test_a_dry_run_sends_nothing_and_fails_bad_items(
    local_kms: Any, keys: dict[str, str], settings: ClientSettings
) -> None:
    """The offline dry run checks each item and calls nothing."""
    items: list[Any] = [
        *_items(local_kms, keys["source"], 5),
        {"id": "text", "ciphertext_blob": "not bytes"},
    ]
    before = local_kms.stats.requests.get("ReEncrypt", 0)

    outcomes = list(
        rotate_iter(
            items,
            destination_key_id=keys["destination"],
            client=settings,
            dry_run=True,
        )
    )

    statuses = sorted(str(o.status) for o in outcomes)
    assert ["dry-run"] * 5 + ["failed"] == statuses
    assert before == local_kms.stats.requests.get("ReEncrypt", 0)


def test_processes_rotate_with_clients_they_build_themselves(
    local_kms: Any, keys: dict[str, str], settings: ClientSettings
) -> None:
    """Two worker processes, each with its own client, rotate everything."""
    items = _items(local_kms, keys["source"], 100)

    report = rotate(
        items,
        destination_key_id=keys["destination"],
        client=settings,
        processes=2,
        workers=4,
    )

    assert (100, 0) == (report.ok, report.failed)


def test_processes_get_items_before_a_chunk_fills(
    local_kms: Any, keys: dict[str, str], settings: ClientSettings
) -> None:
    """A chunk size larger than the whole input still rotates it all: a
    process running low is sent what is pending, full chunk or not."""
    items = _items(local_kms, keys["source"], 60)

    outcomes = list(
        rotate_iter(
            items,
            destination_key_id=keys["destination"],
            client=settings,
            config=RotationConfig(processes=2, workers=2, chunk_size=10_000),
        )
    )

    assert sorted(i.id for i in items) == sorted(o.id for o in outcomes)
    assert all(o.ok for o in outcomes)


def test_a_client_object_cannot_go_to_worker_processes(
    local_kms: Any, keys: dict[str, str]
) -> None:
    """processes > 1 needs ClientSettings, not a client object."""
    with pytest.raises(ConfigurationError, match="ClientSettings"):
        rotate_iter(
            [],
            destination_key_id=keys["destination"],
            client=local_kms.client(),
            processes=2,
        )


def test_an_interrupt_in_a_worker_thread_reaches_the_caller(
    local_kms: Any, keys: dict[str, str]
) -> None:
    """A KeyboardInterrupt raised on a worker thread (not an item's
    failure) is raised where the run is consumed, instead of losing the
    item and leaving the run waiting for it."""
    items = _items(local_kms, keys["source"], 30)

    class Interrupting(kms_reencrypt.ReEncryptClient):
        calls = 0

        def send(self, request: dict[str, Any]) -> Any:
            Interrupting.calls += 1
            if Interrupting.calls == 10:
                raise KeyboardInterrupt
            return super().send(request)

    client = Interrupting(local_kms.kms_client(config=NO_RETRIES))
    with pytest.raises(KeyboardInterrupt):
        rotate(
            items,
            destination_key_id=keys["destination"],
            client=client,
            workers=4,
        )


def test_outcomes_and_reports_hide_ciphertext_and_context_values(
    local_kms: Any, keys: dict[str, str], settings: ClientSettings
) -> None:
    """repr shows lengths and context keys; to_dict lists failed ids and
    codes only."""
    items = _items(local_kms, keys["source"], 3)
    items.append(
        RotationItem(
            id="bad",
            ciphertext_blob=b"\x01" * 40,
            encryption_context={"tenant": "canary-value-x"},
        )
    )
    outcomes = list(
        rotate_iter(
            items, destination_key_id=keys["destination"], client=settings
        )
    )
    rotation = rotate_iter(
        items, destination_key_id=keys["destination"], client=settings
    )
    for _ in rotation:
        pass

    text = json.dumps(rotation.report.to_dict())
    assert "canary-value-x" not in text
    assert [
        {"id": "bad", "code": "InvalidCiphertextException", "line": None}
    ] == (rotation.report.to_dict()["failed_items"])
    for outcome in outcomes:
        shown = repr(outcome) + repr(items[-1])
        assert "canary-value-x" not in shown
        assert "bytes>" in shown


def test_outcomes_survive_pickling_with_their_errors(
    local_kms: Any, keys: dict[str, str], settings: ClientSettings
) -> None:
    """Outcomes cross process boundaries intact."""
    outcome = next(
        iter(
            rotate_iter(
                [{"id": "x", "ciphertext_blob": b"\x01" * 40}],
                destination_key_id=keys["destination"],
                client=settings,
            )
        )
    )

    copy = pickle.loads(pickle.dumps(outcome))

    assert outcome.error_code == copy.error_code
    assert outcome.id == copy.id


def test_seen_ids_find_every_id_across_merges(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The compact id set answers correctly before and after merging."""
    monkeypatch.setattr(_SeenIds, "_MERGE_AT", 16)
    seen = _SeenIds()
    for n in range(100):
        seen.add(f"id-{n}")

    assert all(f"id-{n}" in seen for n in range(100))
    assert not any(f"other-{n}" in seen for n in range(100))


def test_the_public_names_are_exported() -> None:
    """rotate and its value objects are importable from the root."""
    for name in ("rotate", "rotate_iter", "RotationReport", "WriteBackError"):
        assert hasattr(kms_reencrypt, name)


class _CountingLimiter:
    """A RateLimiter that counts what the engine asks of it."""

    def __init__(self) -> None:
        self.acquired = 0
        self.throttles = 0
        self._governor = RateGovernor(None)

    def acquire(self) -> float:
        self.acquired += 1
        return self._governor.acquire()

    def throttled(self) -> None:
        self.throttles += 1
        self._governor.throttled()


def test_an_injected_rate_limiter_sees_every_attempt_and_throttle(
    local_kms: Any, keys: dict[str, str], settings: ClientSettings
) -> None:
    """rate_limiter replaces the engine's governor: one acquire per call,
    retries included, and one throttled() per ThrottlingException."""
    items = _items(local_kms, keys["source"], 60)
    local_kms.faults = Faults(throttle_fraction=0.2, seed=11)
    limiter = _CountingLimiter()

    rotation = rotate_iter(
        items,
        destination_key_id=keys["destination"],
        client=settings,
        config=RotationConfig(backoff_base=0.002, backoff_cap=0.01),
        rate_limiter=limiter,
    )
    with rotation:
        outcomes = list(rotation)

    report = rotation.report
    assert 60 == sum(o.ok for o in outcomes)
    assert report.calls == limiter.acquired
    assert report.throttles == limiter.throttles
    assert limiter.throttles > 0


def test_a_rate_limiter_refuses_a_rate_or_worker_processes(
    keys: dict[str, str], settings: ClientSettings
) -> None:
    """The injected limiter owns the cap and this process's threads."""
    for options in ({"rate": 10.0}, {"processes": 2}):
        with pytest.raises(ConfigurationError, match="rate_limiter"):
            rotate_iter(
                [],
                destination_key_id=keys["destination"],
                client=settings,
                rate_limiter=_CountingLimiter(),
                **options,
            )


@pytest.mark.parametrize(
    "reading", ["12.5", None, float("nan"), float("inf"), True, b"1"]
)
def test_a_clock_that_reads_no_number_is_refused_before_sending(
    local_kms: Any,
    keys: dict[str, str],
    settings: ClientSettings,
    tmp_path: Any,
    reading: object,
) -> None:
    """A ``clock=`` hook returning something other than a finite number
    is a ConfigurationError naming the option, raised before any call or
    journal file; it used to surface as a TypeError (or a NaN elapsed
    time) after the items were sent."""
    items = _items(local_kms, keys["source"], 3)
    before = dict(local_kms.stats.requests)
    journal = tmp_path / "run.journal"

    with pytest.raises(ConfigurationError, match="clock must") as raised:
        rotate(
            items,
            destination_key_id=keys["destination"],
            client=settings,
            journal=journal,
            clock=lambda: reading,
        )

    assert "clock" == raised.value.option
    assert before == dict(local_kms.stats.requests)
    assert not journal.exists()


@pytest.mark.parametrize("name", ["rate", "backoff_base", "backoff_cap"])
def test_a_number_beyond_the_largest_float_is_refused(
    local_kms: Any, keys: dict[str, str], settings: ClientSettings, name: str
) -> None:
    """10**400 compares below infinity, but the engine computes with
    floats: it is a ConfigurationError naming the option (``rate`` used
    to be an OverflowError from inside the run)."""
    with pytest.raises(ConfigurationError, match=name) as raised:
        RotationConfig(**{name: 10**400})
    assert name == raised.value.option

    items = _items(local_kms, keys["source"], 1)
    before = dict(local_kms.stats.requests)
    with pytest.raises(ConfigurationError, match="rate"):
        rotate(
            items,
            destination_key_id=keys["destination"],
            client=settings,
            rate=10**400,
        )
    assert before == dict(local_kms.stats.requests)


@pytest.mark.parametrize("rate", [1e-300, 5e-324, 1e-5])
def test_a_rate_cap_below_one_call_a_day_is_refused(
    local_kms: Any, keys: dict[str, str], settings: ClientSettings, rate: float
) -> None:
    """A cap of 1e-300 calls a second was taken, then every item after
    the first failed with an OverflowError code (a wait too long for a
    thread to be told); below one call a day it is now refused at the
    call, by ``rotate``, by the Dask functions' bucket and by the
    command line."""
    from kms_reencrypt.dask import TokenBucket

    items = _items(local_kms, keys["source"], 2)
    before = dict(local_kms.stats.requests)
    with pytest.raises(ConfigurationError, match="rate") as raised:
        rotate(
            items,
            destination_key_id=keys["destination"],
            client=settings,
            rate=rate,
        )
    assert "rate" == raised.value.option
    assert before == dict(local_kms.stats.requests)
    with pytest.raises(ConfigurationError, match="one call a day"):
        TokenBucket(rate)
    assert 1 / 86_400 == RotationConfig(rate=1 / 86_400).rate


def test_a_clock_that_fails_mid_run_stops_it_with_the_journal_closed(
    local_kms: Any,
    keys: dict[str, str],
    settings: ClientSettings,
    tmp_path: Any,
) -> None:
    """A clock that turns bad mid-run ends the run with a
    ConfigurationError (the items waiting for a rate slot fail with it),
    its workers stopped and its journal closed, and the next run rotates
    exactly what the first did not."""
    items = _items(local_kms, keys["source"], 40)
    journal = tmp_path / "run.journal"
    readings = iter(range(10**6))
    written: dict[str, bytes] = {}

    def write(outcome: Any) -> None:
        if outcome.status is RotationStatus.OK:
            written[outcome.id] = outcome.ciphertext_blob

    def clock() -> object:
        n = next(readings)
        return float(n) if n < 25 else "broken"

    with pytest.raises(ConfigurationError, match="clock must"):
        rotate(
            items,
            destination_key_id=keys["destination"],
            client=settings,
            journal=journal,
            workers=4,
            writer=write,
            clock=clock,  # type: ignore[arg-type]
        )
    first = set(written)
    second = rotate(
        items,
        destination_key_id=keys["destination"],
        client=settings,
        journal=journal,
        writer=write,
    )

    assert 0 < len(first) < 40
    assert 40 - len(first) == second.ok
    assert len(first) == second.skipped
    assert 40 == len(written)
