"""One cap on KMS calls per second for a whole Dask cluster.

The cap lives in one ``TokenBucket``, a Dask actor on one worker: the
engine's own ``RateGovernor`` run as a reservation clock on that
worker's monotonic clock, so the slots of every worker come from one
timeline and their sum cannot pass the cap. Each partition task leases
a batch of consecutive slots at a time and spends them, paced, from its
engine threads; a throttle seen anywhere is sent to the bucket, which
lowers the rate for everybody exactly as a single-machine run lowers it.

A lease is the task's fair share of ``LEASE_SECONDS`` of the cap: the
cap divided by the tasks that leased in the last ``ACTIVE_SECONDS``.
The tasks take turns, each slice lasting ``LEASE_SECONDS`` divided by
the number of tasks, so that a task never has to keep up with the
whole cluster's rate for long: a task slower than its slice uses its
slots late, by at most about ``LEASE_SECONDS``. The bucket answers about
``1 / LEASE_SECONDS`` leases a second per active task.

Who keeps it alive. The process that builds the collection submits the
bucket and holds its future inside a ``BucketRef``; the graph carries
the ``BucketRef``, which pickles as a name, a key and an address, never
the future or a client. The bucket lives as long as the collection that
holds it: keep a reference to the collection while it computes.

When a lease fails (the bucket's worker died, or the collection was
dropped while its computation ran), the task asks the scheduler whether
the bucket still exists: a slow answer must not split the cluster into
two buckets. If it is gone, the task submits the next generation of the
bucket under a key every worker derives alike, so that all of them get
the same new bucket, ahead of the partitions waiting in the queue (it
still waits for a free thread). Until it runs, each task holds to a
fixed share of the cap, the cap divided by the cluster's threads, so
that the sum stays under it. The new bucket starts from the full cap;
throttles lower it again.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
import weakref
from typing import Any, Final

from .._exceptions import ConfigurationError
from .._ratelimit import RateGovernor
from .._rotate import SLOWEST_RATE

__all__ = [
    "BucketRef",
    "ClusterRateLimiter",
    "TokenBucket",
    "check_rate",
    "start_bucket",
]

log = logging.getLogger(__name__)

#: Seconds of the cap handed to one task by one lease, at most.
LEASE_SECONDS: Final = 0.1
#: A task that leased within this many seconds counts as active.
ACTIVE_SECONDS: Final = 1.0
#: Slots in one lease at most.
MAX_LEASE: Final = 512
#: Seconds to wait for the bucket's answer to a lease (it takes
#: milliseconds).
LEASE_TIMEOUT: Final = 2.0
#: A leased slot more than this many seconds in the past is dropped, not
#: used: a task that fell behind (its CPU taken by other work) would
#: otherwise send all its overdue slots at once, a burst over the cap.
MAX_LATENESS: Final = 0.05
#: Scheduler priority of a bucket: ahead of any partition in the queue.
BUCKET_PRIORITY: Final = 1 << 30


def _no_sleep(seconds: float) -> None:
    """The bucket hands out waits; the tasks sleep them."""


class TokenBucket:
    """The cluster's reservation clock, run as a Dask actor.

    Args:
        rate: The cap in calls per second; None for none until KMS
            throttles.

    Raises:
        ConfigurationError: ``rate`` is not a positive, finite number or
            None.
    """

    def __init__(self, rate: float | None) -> None:
        check_rate(rate)
        self._governor = RateGovernor(rate, sleep=_no_sleep)
        self._granted = 0
        self._active: dict[str, float] = {}
        self._pruned = 0.0
        self._lowest = rate
        self._leases = 0
        self._throttles = 0

    def lease(self, wanted: int, task: str = "") -> tuple[int, float, float]:
        """Reserve consecutive slots for one task.

        Args:
            wanted: The slots the task could use; it gets fewer when that
                is more than its share of ``LEASE_SECONDS`` of the rate.
            task: Identifies the task, to count the active ones.

        Returns:
            ``(granted, wait, interval)``: the task uses its last slot
            ``wait`` seconds after it receives the answer, and the others
            ``interval`` seconds apart before it; at most ``MAX_LEASE``
            slots.

        Raises:
            ConfigurationError: ``wanted`` is not an int or ``task`` not
                a str.
        """
        if type(wanted) is not int:
            raise ConfigurationError(
                f"wanted must be an int, got a {type(wanted).__name__}.",
                option="wanted",
            )
        if not isinstance(task, str):
            raise ConfigurationError(
                f"task must be a str, got a {type(task).__name__}.",
                option="task",
            )
        rate = self._governor.rate
        granted = min(max(1, wanted), MAX_LEASE)
        if rate is not None:
            share = rate * LEASE_SECONDS / self._count_active(task)
            granted = max(1, min(granted, int(share)))
        wait = 0.0
        for _ in range(granted):
            wait = self._governor.acquire()
        rate = self._governor.rate
        self._granted += granted
        self._leases += 1

        return granted, wait, 0.0 if rate is None else 1.0 / rate

    def _count_active(self, task: str) -> int:
        now = time.monotonic()
        self._active[task] = now
        if now - self._pruned >= ACTIVE_SECONDS:
            self._pruned = now
            self._active = {
                name: seen
                for name, seen in self._active.items()
                if now - seen < ACTIVE_SECONDS
            }

        return len(self._active)

    def throttled(self) -> None:
        """Lower the rate of the whole cluster after a throttle."""
        self._throttles += 1
        self._governor.throttled()
        rate = self._governor.rate
        if rate is not None and (self._lowest is None or rate < self._lowest):
            self._lowest = rate

    def address(self) -> str:
        """Return the address of the worker this bucket lives on.

        Returns:
            The worker's address, such as ``tcp://10.0.0.5:40123``.

        Raises:
            ConfigurationError: The bucket is not running as an actor on
                a Dask worker.
        """
        from distributed import get_worker

        try:
            address: str = get_worker().address
        except ValueError:
            raise ConfigurationError(
                "this TokenBucket runs on no Dask worker; only the actor "
                "start_bucket() submits has an address.",
                option="bucket",
            ) from None
        return address

    def stats(self) -> dict[str, Any]:
        """Return the rate in force and the counts so far.

        Returns:
            ``rate`` (None while uncapped), ``lowest_rate`` it went down
            to after throttles, ``granted`` slots, ``leases`` and
            ``throttles``.
        """
        return {
            "rate": self._governor.rate,
            "lowest_rate": self._lowest,
            "granted": self._granted,
            "leases": self._leases,
            "throttles": self._throttles,
        }


def check_rate(rate: object) -> None:
    """Refuse a rate that is not a positive, finite number or None (an int
    too large for a float included: it has no interval)."""
    try:
        usable = rate is None or (
            not isinstance(rate, bool)
            and isinstance(rate, int | float)
            and SLOWEST_RATE <= float(rate) < math.inf
        )
    except OverflowError:
        usable = False
    if not usable:
        raise ConfigurationError(
            "rate must be a finite number of calls per second of at least "
            f"{SLOWEST_RATE:.3g} (one call a day), or None.",
            option="rate",
        )


class BucketRef:
    """Where a rotation's bucket is; picklable as plain data.

    In the process that started the bucket it also holds the bucket's
    future, which keeps the actor alive; the future never travels.

    Args:
        name: The rotation's bucket name, unique per collection.
        rate: The cap in calls per second, or None.
        key: The first bucket's key; None without a Dask cluster.
        address: The first bucket's worker; None without one.
        future: The first bucket's future (not pickled).
    """

    __slots__ = ("_future", "address", "key", "name", "rate")

    def __init__(
        self,
        name: str,
        rate: float | None,
        key: str | None = None,
        address: str | None = None,
        future: Any = None,
    ) -> None:
        self.name = name
        self.rate = rate
        self.key = key
        self.address = address
        self._future = future

    def __reduce__(self) -> tuple[Any, ...]:
        return (BucketRef, (self.name, self.rate, self.key, self.address))

    def __repr__(self) -> str:
        return f"BucketRef({self.name!r}, rate={self.rate!r})"

    def __dask_tokenize__(self) -> tuple[str, str]:
        return ("kms-reencrypt-bucket", self.name)

    def key_of(self, generation: int) -> str:
        """The key of the bucket of a generation, alike on every worker.

        Args:
            generation: 0 for the first bucket, one more per re-creation.

        Returns:
            The key.
        """
        return f"{self.name}-g{generation}"


def start_bucket(rate: float | None) -> BucketRef:
    """Start the bucket of a new rotation on the default Dask client.

    Without a distributed client (the local schedulers), the returned
    reference has no bucket, and the partitions of each process share
    an in-process governor instead.

    Args:
        rate: The cap in calls per second, or None.

    Returns:
        The reference to put in the graph.
    """
    name = f"kms-reencrypt-rate-{uuid.uuid4().hex}"
    try:
        from distributed import get_client

        client: Any = get_client()
    except (ImportError, ValueError):
        return BucketRef(name, rate)

    ref = BucketRef(name, rate)
    key = ref.key_of(0)
    future = client.submit(
        TokenBucket, rate, key=key, actor=True, priority=BUCKET_PRIORITY
    )
    bucket: Any = future.result()
    address = bucket.address().result()
    log.debug("rate bucket %s on %s", key, address)

    return BucketRef(name, rate, key, address, future)


class _Recovery:
    """What the tasks of one worker process know of a rotation's bucket
    once its first one was lost: the generation in force and, while a
    task uses it, the future that keeps it alive."""

    def __init__(self) -> None:
        self.generation = 0
        self.future: Any = None
        self.users = 0


_RECOVERIES: dict[str, _Recovery] = {}
_RECOVERIES_LOCK = threading.Lock()
# The governors of rotations run without a Dask cluster, per process,
# while a task uses them.
_LOCAL: weakref.WeakValueDictionary[str, RateGovernor] = (
    weakref.WeakValueDictionary()
)


class ClusterRateLimiter:
    """The engine's ``RateLimiter`` in one partition task: leases slots
    from the cluster's bucket and paces the task's threads through them.

    Args:
        ref: The rotation's bucket.
        expected: Calls the task expects to make (its items); leases are
            no larger, so that a task ending holds few unused slots.
    """

    def __init__(self, ref: BucketRef, *, expected: int) -> None:
        self._ref = ref
        self._expected = max(1, expected)
        self._id = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._tokens = 0
        self._last_slot = 0.0
        self._interval = 0.0
        self._actor: Any = None
        self._recovery: _Recovery | None = None
        self._fallback: RateGovernor | None = None
        # The engine's threads are not Dask's: they cannot look the
        # worker and its client up, so the task's thread does it here.
        self._worker, self._dask = _worker_and_client()
        self._local: RateGovernor | None = None
        if ref.key is None or self._worker is None:
            with _RECOVERIES_LOCK:
                local = _LOCAL.get(ref.name)
                if local is None:
                    local = _LOCAL[ref.name] = RateGovernor(ref.rate)
                self._local = local

    def acquire(self) -> float:
        """Wait for this caller's slot of the cluster's cap.

        Returns:
            The seconds spent waiting.
        """
        if self._local is not None:
            return self._local.acquire()
        with self._lock:
            if self._tokens and self._interval > 0:
                self._drop_overdue(time.monotonic() - MAX_LATENESS)
            if not self._tokens:
                self._lease()
            fallback = None if self._tokens else self._fallback
            if fallback is None:
                self._tokens -= 1
                slot = self._last_slot - self._tokens * self._interval
            self._expected = max(1, self._expected - 1)
        if fallback is not None:
            return fallback.acquire()
        wait = slot - time.monotonic()
        if wait > 0:
            time.sleep(wait)
            return wait

        return 0.0

    def _drop_overdue(self, oldest: float) -> None:
        # The lock is held. Slots run from the first unused one to
        # _last_slot, _interval apart; those before ``oldest`` go unused
        # (the bucket counted them, so the cluster stays under its cap).
        first = self._last_slot - (self._tokens - 1) * self._interval
        if first < oldest:
            late = int((oldest - first) / self._interval) + 1
            self._tokens -= min(self._tokens, late)

    def throttled(self) -> None:
        """Send a throttle to the bucket, which slows the whole cluster."""
        if self._local is not None:
            self._local.throttled()
            return
        with self._lock:
            actor, fallback = self._actor, self._fallback
        if fallback is not None:
            fallback.throttled()
        if actor is not None:
            try:
                actor.throttled()
            except Exception:  # the lease that follows finds out
                log.debug("could not tell the bucket of a throttle")

    def close(self) -> None:
        """Release this task's hold on a re-created bucket."""
        with _RECOVERIES_LOCK:
            recovery = self._recovery
            self._recovery = None
            if recovery is not None:
                recovery.users -= 1
                if recovery.users <= 0:
                    recovery.future = None
                    if recovery.generation == 0:
                        _RECOVERIES.pop(self._ref.name, None)

    def _lease(self) -> None:
        # The lock is held; on return, either tokens or a fallback.
        actor = self._bucket()
        if actor is None:
            return
        try:
            wanted = min(self._expected, MAX_LEASE)
            granted, wait, interval = actor.lease(wanted, self._id).result(
                timeout=LEASE_TIMEOUT
            )
        except Exception as error:
            self._lost(error)
            return
        self._tokens = granted
        self._last_slot = time.monotonic() + wait
        self._interval = interval
        self._fallback = None

    def _bucket(self) -> Any:
        if self._actor is not None:
            return self._actor
        recovery = self._joined()
        if recovery.generation == 0:
            assert self._ref.address is not None
            assert self._ref.key is not None
            return self._handle(self._ref.address, self._ref.key)
        with _RECOVERIES_LOCK:
            future = recovery.future
            if future is None:
                future = recovery.future = self._submit(recovery.generation)
        if future.status == "finished":
            where = self._dask.who_has([future]).get(future.key)
            if where:
                return self._handle(where[0], future.key)
        elif future.status in ("error", "cancelled", "lost"):
            self._next_generation(recovery, recovery.generation)
        self._use_fallback()

        return None

    def _handle(self, address: str, key: str) -> Any:
        from distributed import Actor

        actor_class: Any = Actor
        self._actor = actor_class(TokenBucket, address, key, self._worker)

        return self._actor

    def _joined(self) -> _Recovery:
        with _RECOVERIES_LOCK:
            if self._recovery is None:
                recovery = _RECOVERIES.get(self._ref.name)
                if recovery is None:
                    recovery = _RECOVERIES[self._ref.name] = _Recovery()
                recovery.users += 1
                self._recovery = recovery

            return self._recovery

    def _submit(self, generation: int) -> Any:
        key = self._ref.key_of(generation)
        log.warning(
            "the rate bucket of %s was lost; starting %s",
            self._ref.name,
            key,
        )

        return self._dask.submit(
            TokenBucket,
            self._ref.rate,
            key=key,
            actor=True,
            priority=BUCKET_PRIORITY,
        )

    def _lost(self, error: BaseException) -> None:
        key = str(self._actor.key)
        try:
            # Whether the scheduler still holds the bucket, on a worker
            # it still knows.
            holders = self._dask.sync(
                self._dask.scheduler.who_has, keys=[key]
            ).get(key)
        except Exception:
            holders = None
        self._use_fallback()
        if holders:
            # Slow, not gone: the next lease asks it again.
            log.debug(
                "the rate bucket did not answer (%s)", type(error).__name__
            )
            return
        recovery = self._joined()
        generation = int(key.rsplit("-g", 1)[1])
        self._actor = None
        self._next_generation(recovery, generation)

    @staticmethod
    def _next_generation(recovery: _Recovery, failed: int) -> None:
        with _RECOVERIES_LOCK:
            if recovery.generation <= failed:
                recovery.generation = failed + 1
                recovery.future = None

    def _use_fallback(self) -> None:
        if self._fallback is not None:
            return
        rate = self._ref.rate
        if rate is not None:
            try:
                threads = sum(self._dask.nthreads().values())
            except Exception:
                threads = 0
            # With no answer, one call a second is under any cap.
            rate = rate / threads if threads else min(rate, 1.0)
        self._fallback = RateGovernor(rate)


def _worker_and_client() -> tuple[Any, Any]:
    """The Dask worker running this task and its client, or Nones."""
    try:
        from distributed import get_client, get_worker

        return get_worker(), get_client()
    except (ImportError, ValueError):
        return None, None
