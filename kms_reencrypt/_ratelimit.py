"""The request-rate governor of a rotation: one cap shared by every
thread and every worker process, lowered when KMS throttles and raised
again while it does not.

It is a reservation clock rather than a bucket of tokens: each call
reserves the next free slot, ``1 / rate`` seconds after the previous
one, and sleeps until that slot comes. No background thread, and the
same code serves threads (a ``threading`` lock over a list) and
processes (a ``multiprocessing`` lock over shared doubles).

Threads of one process take one lock round trip per call. Worker
processes would pay much more for that: a cross-process lock wanted by
every thread of every process at a thousand calls a second cost the
two-process benchmark a fifth of its throughput. So each process has a
front of its own (``_Front``) that goes to the shared state only now
and then: while the run is uncapped it counts its calls locally and
looks at the shared rate again after ``SYNC_SECONDS``; under a cap it
reserves ``LEASE_SECONDS`` worth of consecutive slots at once and hands
them to its threads. A throttle reaches the shared state at once, and
the other processes follow it within ``SYNC_SECONDS`` or one lease.

Adaptation is increase-slowly, decrease-quickly: a throttle multiplies
the rate by ``DECREASE_FACTOR``, and lowers it further to the rate KMS
accepted (calls minus throttles) over the last measured window when that
is lower, so that a run far above the quota lands near it at once. This
happens at most once per ``DECREASE_INTERVAL``, so that a burst of
throttles from one crowded moment counts once. Every second without a
throttle adds ``INCREASE_FRACTION`` of the rate back, never above the
caller's cap. Without a cap the governor is idle until the first
throttle, which starts it from the rate measured over the last window.

Lowering the rate must pay off. A quota throttles a smaller share of the
calls once the rate comes down; throttles that keep the same share at a
lower rate (another workload on the account, a throttled dependency) do
not come from this run's rate, and lowering further would only take the
run down to ``MIN_RATE``. So when the share of throttled calls since a
decrease is not below ``HELPED_RATIO`` of the share that caused it, the
governor undoes that decrease and takes the share as background: it
lowers the rate again only for a share above ``BACKGROUND_MARGIN`` times
it. The retries with backoff still absorb the background throttles.
A decrease awaiting that judgement holds the rate for at least two
intervals; if no decision comes by then it helped. Every decision after
the first of a run waits for ``MIN_CALLS_TO_JUDGE`` calls and
``MIN_THROTTLES_TO_JUDGE`` throttles since the previous one, so that a
run slowed down by its own client (a starved CPU) is not judged on a
handful of calls and driven down to the floor.
"""

from __future__ import annotations

import math
import multiprocessing
import threading
import time
from collections.abc import Callable, MutableSequence
from typing import Any

__all__ = ["RateGovernor"]

#: A throttle multiplies the rate by this.
DECREASE_FACTOR = 0.8
#: Throttles closer together than this count as one.
DECREASE_INTERVAL = 0.5
#: Each throttle-free second adds this fraction of the rate.
INCREASE_FRACTION = 0.25
#: The adapted rate never goes below this many calls per second.
MIN_RATE = 2.0
#: Slots missed by at most this many seconds may still be used, so that
#: a thread scheduled late does not cost the run a call.
BURST_SECONDS = 0.02
#: The window over which the achieved rate is measured.
MEASURE_SECONDS = 0.5
#: A decrease helped when the share of throttled calls after it fell
#: below this fraction of the share before it.
HELPED_RATIO = 0.8
#: A share of throttled calls up to this multiple of the background share
#: (the share that lowering the rate did not reduce) lowers nothing.
BACKGROUND_MARGIN = 1.5
#: Calls and throttles since the last decision needed before a throttle
#: lowers the rate again (or undoes a decrease): fewer tell nothing
#: about the share of throttled calls. The first throttle of a run acts
#: at once.
MIN_CALLS_TO_JUDGE = 20
#: See ``MIN_CALLS_TO_JUDGE``.
MIN_THROTTLES_TO_JUDGE = 5
#: A larger share of throttled calls is never taken as background: the
#: run is sending at least twice what KMS accepts.
MAX_BACKGROUND_SHARE = 0.5

#: How long a process may go on uncapped without looking at the shared
#: rate again (only with worker processes).
SYNC_SECONDS = 0.01
#: How many seconds of consecutive slots a worker process reserves at
#: once under a cap; at least one slot, at most ``MAX_LEASE``.
LEASE_SECONDS = 0.005
#: See ``LEASE_SECONDS``.
MAX_LEASE = 64

# Layout of the shared state.
_RATE, _CEILING, _NEXT, _LAST_DECREASE, _LAST_RAISE = 0, 1, 2, 3, 4
_WINDOW_START, _WINDOW_COUNT, _MEASURED = 5, 6, 7
_WINDOW_THROTTLES, _ACCEPTED = 8, 9
_SINCE_CALLS, _SINCE_THROTTLES = 10, 11
_TRIGGER_SHARE, _TRIGGER_RATE, _LOWERED, _BACKGROUND = 12, 13, 14, 15


class RateGovernor:
    """A shared, adaptive cap on calls per second.

    Args:
        rate: The cap in calls per second; None for no cap until KMS
            throttles.
        shared: Keep the state in shared memory so that worker processes
            (which receive this object when they start) obey the same
            cap.
        clock: Returns monotonic seconds; injectable for tests.
        sleep: Sleeps for seconds; injectable for tests.
    """

    def __init__(
        self,
        rate: float | None = None,
        *,
        shared: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and not rate > 0:
            raise ValueError(f"rate must be positive or None, got {rate!r}.")
        ceiling = math.inf if rate is None else float(rate)
        initial = [ceiling, ceiling, 0.0, -math.inf, 0.0, 0.0, 0.0, 0.0]
        initial += [0.0] * 8
        self._lock: Any
        self._state: MutableSequence[float]
        if shared:
            self._lock = multiprocessing.get_context("spawn").Lock()
            self._state = multiprocessing.get_context("spawn").RawArray(
                "d", initial
            )
        else:
            self._lock = threading.Lock()
            self._state = initial
        self._clock = clock
        self._sleep = sleep
        self._front = _Front() if shared else None

    def __getstate__(self) -> dict[str, Any]:
        # Only the shared form crosses a process boundary; the clock and
        # sleep of the child are the real ones.
        return {"lock": self._lock, "state": self._state}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._lock = state["lock"]
        self._state = state["state"]
        self._clock = time.monotonic
        self._sleep = time.sleep
        self._front = _Front()

    @property
    def rate(self) -> float | None:
        """The rate in force now; None while uncapped."""
        with self._lock:
            rate = self._state[_RATE]

        return None if math.isinf(rate) else rate

    def acquire(self) -> float:
        """Wait for this caller's slot.

        Returns:
            The seconds spent waiting.
        """
        front = self._front
        if front is None:
            with self._lock:
                now = self._clock()
                slot = self._reserve(now, calls=1, front=None)
        else:
            with front.lock:
                now = self._clock()
                front.calls += 1
                if now < front.uncapped_until:
                    return 0.0
                if front.left and front.next >= now - BURST_SECONDS:
                    slot = front.next
                    front.next += front.step
                    front.left -= 1
                else:
                    with self._lock:
                        slot = self._reserve(now, calls=0, front=front)
        if slot is None:
            return 0.0
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
            return wait

        return 0.0

    def _reserve(
        self, now: float, *, calls: int, front: _Front | None
    ) -> float | None:
        # The caller holds the shared lock (and the front's lock). Counts
        # the calls, raises the rate if due, and reserves a slot: the
        # time to wait for, or None while uncapped. A front reserves a
        # lease of slots and takes the first.
        state = self._state
        if front is not None:
            calls, front.calls = front.calls, 0
            front.left = 0
        self._count(state, now, calls)
        self._raise(state, now)
        rate = state[_RATE]
        if math.isinf(rate):
            if front is not None:
                front.uncapped_until = now + SYNC_SECONDS
            return None
        step = 1.0 / rate
        slots = 1
        if front is not None:
            slots = max(1, min(MAX_LEASE, int(rate * LEASE_SECONDS)))
        slot = max(state[_NEXT], now - BURST_SECONDS)
        state[_NEXT] = slot + slots * step
        if front is not None:
            front.uncapped_until = -math.inf
            front.next, front.left, front.step = slot + step, slots - 1, step
        return slot

    def throttled(self) -> None:
        """Tell the governor that KMS answered ``ThrottlingException``."""
        front = self._front
        if front is None:
            with self._lock:
                self._throttled(self._clock())
            return
        with front.lock:
            # This process drops its lease and its uncapped spell, so
            # that the next call takes the rate this throttle sets.
            front.left = 0
            front.uncapped_until = -math.inf
            now = self._clock()
            with self._lock:
                self._count(self._state, now, front.calls)
                front.calls = 0
                self._throttled(now)

    def _throttled(self, now: float) -> None:
        # The caller holds the shared lock.
        state = self._state
        state[_WINDOW_THROTTLES] += 1.0
        state[_SINCE_THROTTLES] += 1.0
        if now - state[_LAST_DECREASE] < DECREASE_INTERVAL:
            return
        calls, throttles = state[_SINCE_CALLS], state[_SINCE_THROTTLES]
        first = math.isinf(state[_LAST_DECREASE])
        if not first and (
            calls < MIN_CALLS_TO_JUDGE or throttles < MIN_THROTTLES_TO_JUDGE
        ):
            return  # too little seen since the last decision
        state[_LAST_DECREASE] = now
        state[_SINCE_CALLS] = state[_SINCE_THROTTLES] = 0.0
        share = min(1.0, throttles / max(calls, 1.0))
        if _background(state, share):
            return
        rate = state[_RATE]
        if math.isinf(rate):
            rate = state[_MEASURED] or _measured(state, now)
            rate = rate if rate > 0 else 100.0
        lowered = rate * DECREASE_FACTOR
        if state[_ACCEPTED] > 0:
            lowered = min(lowered, state[_ACCEPTED])
        # Remembered to judge, at the next decision, whether this
        # decrease lowered the share of throttled calls. Not judged:
        # the first decrease of a run, which acts on one throttle, and
        # a decrease made before the first window measured the
        # accepted rate (only x0.8 then, which a run far above a
        # quota does not feel).
        judged = not first and state[_ACCEPTED] > 0
        state[_TRIGGER_SHARE] = share if judged else 0.0
        state[_TRIGGER_RATE] = state[_RATE]
        state[_RATE] = state[_LOWERED] = max(MIN_RATE, lowered)
        state[_LAST_RAISE] = now

    @staticmethod
    def _count(state: MutableSequence[float], now: float, calls: int) -> None:
        elapsed = now - state[_WINDOW_START]
        if elapsed >= MEASURE_SECONDS:
            count, throttles = state[_WINDOW_COUNT], state[_WINDOW_THROTTLES]
            state[_MEASURED] = count / elapsed
            state[_ACCEPTED] = max(0.0, count - throttles) / elapsed
            state[_WINDOW_START] = now
            state[_WINDOW_COUNT] = state[_WINDOW_THROTTLES] = 0.0
        state[_WINDOW_COUNT] += calls
        state[_SINCE_CALLS] += calls

    @staticmethod
    def _raise(state: MutableSequence[float], now: float) -> None:
        rate, ceiling = state[_RATE], state[_CEILING]
        if rate >= ceiling:
            return
        if state[_TRIGGER_SHARE] > 0:
            if (
                state[_SINCE_CALLS] < MIN_CALLS_TO_JUDGE
                or now - state[_LAST_DECREASE] < 2 * DECREASE_INTERVAL
            ):
                return  # a decrease awaits its judgement
            state[_TRIGGER_SHARE] = 0.0  # no decision came: it helped
        elapsed = now - state[_LAST_RAISE]
        if elapsed < DECREASE_INTERVAL:
            return
        raised = rate * (1.0 + INCREASE_FRACTION * elapsed)
        # Far above anything measured: the cap no longer matters.
        if math.isinf(ceiling) and raised > 4 * max(state[_MEASURED], 1.0):
            raised = math.inf
        state[_RATE] = min(ceiling, raised)
        state[_LAST_RAISE] = now


class _Front:
    """One process's front to a shared governor; see the module's
    docstring. Its lock is taken before the shared one, never after."""

    __slots__ = ("calls", "left", "lock", "next", "step", "uncapped_until")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: Calls made since the shared state last counted them.
        self.calls = 0
        #: Until then, the run is taken to be uncapped.
        self.uncapped_until = -math.inf
        #: The lease: the next slot, how many are left, their spacing.
        self.next = 0.0
        self.left = 0
        self.step = 0.0


def _background(state: MutableSequence[float], share: float) -> bool:
    # Whether the throttles since the last decision, ``share`` of the
    # calls, come from something else than this run's rate; the caller
    # holds the lock. Undoes the last decrease when it did not lower the
    # share of throttled calls.
    trigger, state[_TRIGGER_SHARE] = state[_TRIGGER_SHARE], 0.0
    if share <= state[_BACKGROUND] * BACKGROUND_MARGIN:
        return True
    # Judged only when the rate stayed where the decrease put it, so
    # that the share was measured at the lower rate.
    if (
        trigger > 0
        and state[_RATE] == state[_LOWERED]
        and share >= trigger * HELPED_RATIO
        and share <= MAX_BACKGROUND_SHARE
    ):
        state[_BACKGROUND] = share
        state[_RATE] = state[_TRIGGER_RATE]
        return True

    return False


def _measured(state: MutableSequence[float], now: float) -> float:
    elapsed = now - state[_WINDOW_START]
    return state[_WINDOW_COUNT] / elapsed if elapsed > 0 else 0.0
