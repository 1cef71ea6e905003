"""Fault injection for the local KMS: latency, throttling, server errors
and connection resets, and the counters that show what was injected."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType

import attrs

__all__ = ["FaultDecision", "FaultInjector", "Faults", "LocalKmsStats"]


def _fraction(
    instance: object, attribute: attrs.Attribute[float], value: float
) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"{attribute.name} must be within 0 and 1, got {value!r}."
        )


def _non_negative(
    instance: object, attribute: attrs.Attribute[float], value: float
) -> None:
    if value < 0:
        raise ValueError(
            f"{attribute.name} must not be negative, got {value!r}."
        )


def _positive_rate(
    instance: object,
    attribute: attrs.Attribute[float | None],
    value: float | None,
) -> None:
    if value is not None and not value > 0:
        raise ValueError(
            f"{attribute.name} must be positive or None, got {value!r}."
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
        ValueError: A latency below 0, a rate not above 0, or a fraction
            outside 0 to 1.
    """

    latency: float = attrs.field(default=0.0, validator=_non_negative)
    max_rps: float | None = attrs.field(default=None, validator=_positive_rate)
    throttle_fraction: float = attrs.field(default=0.0, validator=_fraction)
    server_error_fraction: float = attrs.field(
        default=0.0, validator=_fraction
    )
    reset_fraction: float = attrs.field(default=0.0, validator=_fraction)
    response_reset_fraction: float = attrs.field(
        default=0.0, validator=_fraction
    )
    seed: int | None = None


def _frozen_counts(value: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(value))


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
    """

    requests: Mapping[str, int] = attrs.field(converter=_frozen_counts)
    throttled: int = 0
    server_errors: int = 0
    resets: int = 0
    response_resets: int = 0

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
