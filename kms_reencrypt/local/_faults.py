"""Fault injection for the local KMS: latency, throttling, server errors
and connection resets, and the counters that show what was injected."""

from __future__ import annotations

import math
import numbers
import random
import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType

import attrs

from .._exceptions import ConfigurationError

__all__ = ["FaultDecision", "FaultInjector", "Faults", "LocalKmsStats"]

#: The longest latency a fault may add: one day.
MAX_LATENCY = 86_400.0


def _finite(name: str, value: object) -> float:
    """A real number other than a bool, as a finite float, or refuse."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigurationError(
            f"{name} must be a number, got {type(value).__name__}.",
            option=name,
        )
    try:
        number = float(value)
    except (OverflowError, ValueError):
        number = math.inf
    if not math.isfinite(number):
        # No repr of the value: an int of over 4300 digits has none.
        raise ConfigurationError(
            f"{name} must be a finite number, got {number!r}.",
            option=name,
        )
    return number


def _latency(value: object) -> float:
    latency = _finite("latency", value)
    if not 0.0 <= latency <= MAX_LATENCY:
        raise ConfigurationError(
            f"latency must be within 0 and {MAX_LATENCY:.0f} seconds, got "
            f"{latency!r}.",
            option="latency",
        )
    return latency


def _rate(value: object) -> float | None:
    if value is None:
        return None
    rate = _finite("max_rps", value)
    if not rate > 0:
        raise ConfigurationError(
            f"max_rps must be positive or None, got {rate!r}.",
            option="max_rps",
        )
    return rate


def _fraction(name: str, value: object) -> float:
    fraction = _finite(name, value)
    if not 0.0 <= fraction <= 1.0:
        raise ConfigurationError(
            f"{name} must be within 0 and 1, got {fraction!r}.",
            option=name,
        )
    return fraction


# attrs converters get the value only: one named function per field.
def _throttle(value: object) -> float:
    return _fraction("throttle_fraction", value)


def _server_error(value: object) -> float:
    return _fraction("server_error_fraction", value)


def _reset(value: object) -> float:
    return _fraction("reset_fraction", value)


def _response_reset(value: object) -> float:
    return _fraction("response_reset_fraction", value)


def _seed(value: object) -> int | None:
    if value is None or (
        isinstance(value, int) and not isinstance(value, bool)
    ):
        return value
    raise ConfigurationError(
        f"seed must be an int or None, got {type(value).__name__}.",
        option="seed",
    )


@attrs.frozen(kw_only=True)
class Faults:
    """What the local KMS does wrong on purpose, for resilience tests.

    Faults apply to the cryptographic operations only (ReEncrypt,
    Encrypt, Decrypt, GenerateDataKey*), never to key management, so that
    set-up code is not disturbed.

    Args:
        latency: Seconds added to each request.
        max_rps: Requests per second above which requests are answered
            ``ThrottlingException`` (a token bucket per server, burst of
            one second's worth); None for no limit.
        throttle_fraction: Fraction of requests answered
            ``ThrottlingException``.
        server_error_fraction: Fraction of requests answered
            ``KMSInternalException`` or ``DependencyTimeoutException``
            (HTTP 500).
        reset_fraction: Fraction of requests whose connection is closed
            without an answer, once the request was read and before it is
            carried out.
        response_reset_fraction: Fraction of requests carried out whose
            answer is cut off: the status line, the headers and half of
            the body go out, then the connection is reset. The client
            does not learn what KMS did.
        seed: Seed of the random choices; None for an unpredictable one.

    Raises:
        ConfigurationError: A value that is not a number (a bool is
            not one), a latency below 0 or above one day, a rate not
            above 0, a fraction outside 0 to 1, a value that is not
            finite, or a seed that is not an int or None. It is a
            ``ValueError``.
    """

    latency: float = attrs.field(default=0.0, converter=_latency)
    max_rps: float | None = attrs.field(default=None, converter=_rate)
    throttle_fraction: float = attrs.field(default=0.0, converter=_throttle)
    server_error_fraction: float = attrs.field(
        default=0.0, converter=_server_error
    )
    reset_fraction: float = attrs.field(default=0.0, converter=_reset)
    response_reset_fraction: float = attrs.field(
        default=0.0, converter=_response_reset
    )
    seed: int | None = attrs.field(default=None, converter=_seed)


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(
            f"{name} must be a count (an int of 0 or more), got "
            f"{type(value).__name__}.",
            option=name,
        )
    return value


def _frozen_counts(value: object) -> Mapping[str, int]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            "requests must map operation names to counts, got "
            f"{type(value).__name__}.",
            option="requests",
        )
    counts: dict[str, int] = {}
    for name, count in value.items():
        if not isinstance(name, str):
            raise ConfigurationError(
                "requests must map operation names (str) to counts.",
                option="requests",
            )
        counts[name] = _count("requests", count)
    return MappingProxyType(counts)


def _counter(
    instance: object, attribute: attrs.Attribute[int], value: int
) -> None:
    _count(attribute.name, value)


@attrs.frozen(kw_only=True)
class LocalKmsStats:
    """A snapshot of what a local KMS has answered since it was created.

    Attributes:
        requests: Requests received per operation name.
        throttled: Requests answered ``ThrottlingException`` by a fault.
        server_errors: Requests answered with an injected 5xx error.
        resets: Connections reset by a fault before an answer.
        response_resets: Connections reset by a fault in the middle of
            an answer.

    Raises:
        ConfigurationError: ``requests`` is not a mapping of operation
            names to counts, or a counter is not an int of 0 or more.
    """

    requests: Mapping[str, int] = attrs.field(converter=_frozen_counts)
    throttled: int = attrs.field(default=0, validator=_counter)
    server_errors: int = attrs.field(default=0, validator=_counter)
    resets: int = attrs.field(default=0, validator=_counter)
    response_resets: int = attrs.field(default=0, validator=_counter)

    @property
    def total_requests(self) -> int:
        """All requests received, over every operation."""
        return sum(self.requests.values())


@attrs.frozen
class FaultDecision:
    """What to do with one request: at most one of the error kinds.

    Attributes:
        delay: Seconds to sleep before answering.
        reset: Close the connection without an answer.
        error_code: An error code to answer with, or None.
        cut_response: Carry the request out, then reset the connection
            half-way through the answer.
    """

    delay: float = 0.0
    reset: bool = False
    error_code: str | None = None
    cut_response: bool = False


class FaultInjector:
    """Decides, thread-safely, which faults hit each request, and counts.

    Args:
        faults: The initial faults.
        clock: A monotonic clock, injectable for tests.
    """

    def __init__(
        self,
        faults: Faults,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._requests: dict[str, int] = {}
        self._throttled = 0
        self._server_errors = 0
        self._resets = 0
        self._response_resets = 0
        self._install(faults)

    def _install(self, faults: Faults) -> None:
        self._faults = faults
        self._random = random.Random(faults.seed)  # noqa: S311 - not crypto
        self._tokens = max(faults.max_rps or 0.0, 1.0)
        self._refilled = self._clock()

    @property
    def faults(self) -> Faults:
        """The faults in force."""
        with self._lock:
            return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        if not isinstance(faults, Faults):
            raise TypeError(
                f"faults must be Faults, got {type(faults).__name__}."
            )
        with self._lock:
            self._install(faults)

    def count(self, operation: str) -> None:
        """Count one request of an operation."""
        with self._lock:
            self._requests[operation] = self._requests.get(operation, 0) + 1

    def decide(self) -> FaultDecision:
        """Draw the faults for one cryptographic request.

        Returns:
            The delay, and whether to reset or which error to answer.
        """
        with self._lock:
            faults = self._faults
            draw = self._random.random()
            if draw < faults.reset_fraction:
                self._resets += 1
                return FaultDecision(faults.latency, reset=True)
            draw -= faults.reset_fraction
            if draw < faults.response_reset_fraction:
                self._response_resets += 1
                return FaultDecision(faults.latency, cut_response=True)
            draw -= faults.response_reset_fraction
            if draw < faults.throttle_fraction or not self._take_token():
                self._throttled += 1
                return FaultDecision(
                    faults.latency, error_code="ThrottlingException"
                )
            draw -= faults.throttle_fraction
            if draw < faults.server_error_fraction:
                self._server_errors += 1
                code = self._random.choice(
                    ("KMSInternalException", "DependencyTimeoutException")
                )
                return FaultDecision(faults.latency, error_code=code)

            return FaultDecision(faults.latency)

    def _take_token(self) -> bool:
        # Token bucket refilled at max_rps tokens per second, holding at
        # most one second's worth (and at least one token); the lock is held by the caller.
        rate = self._faults.max_rps
        if rate is None:
            return True
        now = self._clock()
        elapsed = max(0.0, now - self._refilled)
        self._refilled = now
        self._tokens = min(max(rate, 1.0), self._tokens + elapsed * rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True

        return False

    def snapshot(self) -> LocalKmsStats:
        """Return the counters as a frozen snapshot."""
        with self._lock:
            return LocalKmsStats(
                requests=self._requests,
                throttled=self._throttled,
                server_errors=self._server_errors,
                resets=self._resets,
                response_resets=self._response_resets,
            )
