"""Bulk rotation: re-encrypt any number of ciphertexts under a new key.

The engine is shaped like a transfer manager. The caller's thread reads
the input lazily, keeps a bounded window of items in flight, hands each
item to a pool of threads (or of worker processes, each with its own
threads and client) and reports one ``RotationOutcome`` per item as it
completes: memory stays flat whatever the number of items.

Every item goes through ``ReEncryptClient.re_encrypt``, so it is checked
and its errors are translated exactly as a single call would be.

Who retries. Exactly one retry loop runs for any call, never two
stacked. The engine owns it whenever the client it calls through has
botocore's retries turned off, which is always the case for clients the
engine builds (``client=None`` or a ``ClientSettings``; they are created
with ``total_max_attempts=1``): then every attempt, retries included,
waits for a slot from the shared rate governor, throttles lower the rate
of the whole run, and backoff is exponential with full jitter. A client
object passed by the caller keeps its own configuration; if its botocore
retries are on, botocore retries and the engine makes a single attempt
per item, only watching every attempt through the client's
``needs-retry`` event to count throttles and lower the shared rate. Pass
a client with ``Config(retries={"total_max_attempts": 1})``, or a
``ClientSettings``, to let the engine own retries for it too. The engine
owns them by preference because botocore's standard mode gives up after
three attempts and spends a retry quota shared by the client, which a
throttled bulk run exhausts in seconds.

What stops a run. Failures of one item (a corrupt ciphertext, a wrong
context, a refused request, a writer error) are recorded and the run
goes on. A run stops early, raising ``RotationStoppedError`` once every
outcome already in flight has been reported, when:

* KMS rejects the credentials (``UnrecognizedClientException``,
  ``InvalidSignatureException``, ``ExpiredTokenException``,
  ``IncompleteSignature``), the endpoint stays unreachable after the
  retries, or no credentials or Region are configured: every item would
  hit it;
* an error that can be about the destination key (``NotFoundException``,
  ``DisabledException``, ``KMSInvalidStateException``,
  ``AccessDeniedException``, ``InvalidKeyUsageException``, or a
  retryable error that outlived its retries) comes back for
  ``systemic_streak`` items in a row without a success between them. A
  source key that was deleted fails only the items it encrypted, which
  are rarely that many in a row; a destination that is missing or
  disabled fails every item;
* more items failed than ``max_failures`` allows.
"""

from __future__ import annotations

import bisect
import enum
import hashlib
import heapq
import logging
import math
import multiprocessing
import queue
import random
import sys
import threading
import time
from array import array
from collections import Counter, deque
from collections.abc import (
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias

import attrs
from botocore.client import BaseClient
from botocore.config import Config

from ._client import ReEncryptClient, as_client
from ._exceptions import (
    ConfigurationError,
    ConflictingParametersError,
    KmsConnectionError,
    KmsReEncryptError,
    KmsServiceError,
    MissingParameterError,
    ParameterTypeError,
    RequestValidationError,
    RotationStoppedError,
    WriteBackError,
)
from ._keyid import parse_key_id
from ._session import create_kms_client, isolated_kms_client
from ._types import DryRunResult
from ._validation import (
    build_request,
    check_algorithm,
    check_context,
    check_grant_tokens,
    check_key_identifier,
    refuse_aws_managed_destination,
)

if TYPE_CHECKING:
    from .local import LocalKms

__all__ = [
    "DEFAULT_BACKOFF_BASE",
    "DEFAULT_BACKOFF_CAP",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_SYSTEMIC_STREAK",
    "DEFAULT_WORKERS",
    "MAX_PROCESSES",
    "MAX_WORKERS",
    "SAME_CONTEXT",
    "SLOWEST_RATE",
    "CheckedClock",
    "ClientSettings",
    "MalformedItem",
    "RateLimiter",
    "Rotation",
    "RotationConfig",
    "RotationItem",
    "RotationOutcome",
    "RotationReport",
    "RotationStatus",
    "rotate",
    "rotate_iter",
]

log = logging.getLogger(__name__)

#: Threads per process sharing one client.
DEFAULT_WORKERS: Final = 16
#: Attempts per item, the first included, when the engine retries.
DEFAULT_MAX_ATTEMPTS: Final = 10
#: Seconds of the first backoff; each retry doubles it, then jitter.
DEFAULT_BACKOFF_BASE: Final = 0.05
#: No backoff is longer than this many seconds.
DEFAULT_BACKOFF_CAP: Final = 5.0
#: Items in a row failing with one destination-scoped code stop the run.
DEFAULT_SYSTEMIC_STREAK: Final = 16
#: Items handed to a worker process at a time.
DEFAULT_CHUNK_SIZE: Final = 32
#: Items in flight per worker thread; bounds memory.
WINDOW_PER_WORKER: Final = 4
#: Threads per process at most: each holds an HTTP connection, and the
#: connection pool is allocated whole when the client first connects.
MAX_WORKERS: Final = 1024
#: Worker processes at most.
MAX_PROCESSES: Final = 256
#: The lowest rate cap, one call a day: a slower one would wait longer
#: than a thread's wait can be told to (OverflowError), and is no use.
SLOWEST_RATE: Final = 1 / 86_400
# How long a worker process waits to batch outcomes for the parent.
_OUTCOME_LINGER_SECONDS: Final = 0.005
#: A fractional ``max_failures`` is judged after this many outcomes.
MIN_OUTCOMES_FOR_FRACTION: Final = 20


class _SameContext(enum.Enum):
    SAME = "same"

    def __repr__(self) -> str:
        return "SAME_CONTEXT"


#: ``destination_encryption_context`` default: bind each new ciphertext to
#: the context of the old one.
SAME_CONTEXT: Final = _SameContext.SAME

DestinationContext: TypeAlias = Mapping[str, str] | _SameContext | None

_IMMEDIATE_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "IncompleteSignature",
    }
)
_DESTINATION_CODES = frozenset(
    {
        "NotFoundException",
        "DisabledException",
        "KMSInvalidStateException",
        "AccessDeniedException",
        "InvalidKeyUsageException",
    }
)


class RateLimiter(Protocol):
    """A cap on KMS calls per second shared by every worker of a run.

    The engine calls ``acquire`` before every attempt, retries included,
    and ``throttled`` after every ``ThrottlingException``, from several
    threads at once. The engine's own is ``_ratelimit.RateGovernor``;
    ``kms_reencrypt.dask`` passes one shared by a whole cluster through
    ``rotate_iter(rate_limiter=...)``.
    """

    def acquire(self) -> float:
        """Wait for this caller's slot.

        Returns:
            The seconds spent waiting.
        """
        ...

    def throttled(self) -> None:
        """Tell the limiter that KMS answered ``ThrottlingException``."""
        ...


class RotationStatus(enum.StrEnum):
    """What happened to one item."""

    #: Re-encrypted; ``ciphertext_blob`` holds the new ciphertext.
    OK = "ok"
    #: Not re-encrypted; ``error`` says why. The old ciphertext stands.
    FAILED = "failed"
    #: A dry run found nothing wrong; nothing was re-encrypted.
    DRY_RUN = "dry-run"
    #: Done by an earlier run, according to the journal.
    SKIPPED = "skipped"


def _byte_count(blob: object) -> str:
    if blob is None:
        return "None"
    if isinstance(blob, bytes | bytearray | memoryview):
        return f"<{len(blob)} bytes>"
    return f"<{type(blob).__name__}>"  # an item not checked yet


def _context_keys(context: object) -> str:
    # The values may be sensitive in a log; the keys say enough.
    if context is None:
        return "None"
    if isinstance(context, Mapping):
        return f"<keys {sorted(context, key=repr)}>"
    return f"<{type(context).__name__}>"


def _plain_context(context: object) -> object:
    # For pickling: a mapping becomes a dict; anything else (an item not
    # checked yet) is kept, and screened before it reaches a process.
    return dict(context) if isinstance(context, Mapping) else context


def _frozen_context(value: Any) -> Any:
    # Anything but a plain mapping is kept as given: items are not checked
    # when built, and the engine refuses a wrong context as a failed
    # outcome, like any other wrong member.
    if isinstance(value, Mapping) and not isinstance(value, MappingProxyType):
        return MappingProxyType(dict(value))
    return value


@attrs.frozen(kw_only=True)
class RotationItem:
    """One ciphertext to rotate.

    Nothing is checked here: the engine checks each item as a single
    ``re_encrypt`` would, and a refused item becomes a failed outcome.

    Attributes:
        id: The caller's identifier, unique within a run.
        ciphertext_blob: The ciphertext, raw bytes.
        encryption_context: The context it was encrypted under.
        source_key_id: The key that encrypted it, when known.
        source_encryption_algorithm: How it was encrypted (asymmetric
            sources only).
        line: The input line it came from, for items read from a file.
    """

    id: str
    ciphertext_blob: bytes = attrs.field(repr=_byte_count)
    encryption_context: Mapping[str, str] | None = attrs.field(
        default=None, converter=_frozen_context, repr=_context_keys
    )
    source_key_id: str | None = None
    source_encryption_algorithm: str | None = None
    line: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = {
            f.name: getattr(self, f.name) for f in attrs.fields(type(self))
        }
        state["encryption_context"] = _plain_context(
            state["encryption_context"]
        )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state["encryption_context"] = _frozen_context(
            state["encryption_context"]
        )
        for name, value in state.items():
            object.__setattr__(self, name, value)


@attrs.frozen(kw_only=True)
class MalformedItem:
    """An input record that could not be read as an item.

    Readers yield it in place of a ``RotationItem``; the engine reports it
    as a failed outcome and goes on.

    Attributes:
        error: Why it could not be read.
        id: The id, when one could be read.
        line: The input line number.
    """

    error: KmsReEncryptError
    id: str | None = None
    line: int | None = None


@attrs.frozen(kw_only=True)
class RotationOutcome:
    """What happened to one item.

    Attributes:
        id: The item's id (None for an input record without one).
        status: ok, failed, dry-run or skipped.
        ciphertext_blob: The new ciphertext when ok; its repr shows only
            its length.
        key_id: The key ARN of the new ciphertext's key when ok, else the
            destination as given.
        source_key_id: The key that had encrypted the item, as KMS
            reported it when ok, else as given.
        encryption_context: The context the new ciphertext is bound to
            (or would be, for a dry run or a failure); None for none. Its
            repr shows the keys only.
        error: The typed exception when failed.
        line: The input line number, for items read from a file.
        attempts: Calls made to KMS for this item.
        throttles: How many of them KMS throttled.
    """

    id: str | None
    status: RotationStatus
    ciphertext_blob: bytes | None = attrs.field(default=None, repr=_byte_count)
    key_id: str | None = None
    source_key_id: str | None = None
    encryption_context: Mapping[str, str] | None = attrs.field(
        default=None, converter=_frozen_context, repr=_context_keys
    )
    error: BaseException | None = None
    line: int | None = None
    attempts: int = 0
    throttles: int = 0

    @property
    def ok(self) -> bool:
        """True when the item was re-encrypted."""
        return self.status is RotationStatus.OK

    @property
    def error_code(self) -> str | None:
        """The KMS error code, or the exception class name, when failed."""
        return None if self.error is None else error_code(self.error)

    def __getstate__(self) -> dict[str, Any]:
        state = {
            f.name: getattr(self, f.name) for f in attrs.fields(type(self))
        }
        state["encryption_context"] = _plain_context(
            state["encryption_context"]
        )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state["encryption_context"] = _frozen_context(
            state["encryption_context"]
        )
        for name, value in state.items():
            object.__setattr__(self, name, value)


def error_code(error: BaseException) -> str:
    """Return the code that names an error in reports.

    Args:
        error: A failed outcome's error.

    Returns:
        The KMS error code for a service error, else the class name.
    """
    if isinstance(error, KmsServiceError):
        return error.code
    return type(error).__name__


def _check_max_failures(
    instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(
            "max_failures must be a count (int) or a fraction (float "
            f"between 0 and 1), got {type(value).__name__}.",
            option="max_failures",
        )
    if isinstance(value, float) and not 0.0 < value < 1.0:
        raise ConfigurationError(
            f"a fractional max_failures must be between 0 and 1, got {value}.",
            option="max_failures",
        )
    if value < 0:
        raise ConfigurationError(
            f"max_failures must not be negative, got {value}.",
            option="max_failures",
        )


def _positive(
    name: str,
    *,
    allow_none: bool = False,
    integer: bool = False,
    minimum: float = 0.0,
    maximum: float = math.inf,
) -> Any:
    kinds = int if integer else int | float
    what = "a positive int" if integer else "a positive, finite number"
    if minimum > 0:
        what += f" of at least {minimum:.3g}"
    if maximum < math.inf:
        what += f" up to {maximum}"

    def check(instance: object, attribute: Any, value: Any) -> None:
        if value is None and allow_none:
            return
        if (
            isinstance(value, bool)
            or not isinstance(value, kinds)
            or not 0 < value < math.inf
            or value < minimum
            or value > maximum
            # An int beyond the largest float (10**400) compares below
            # inf but cannot become the float the engine computes with.
            or (not integer and value > sys.float_info.max)
        ):
            raise ConfigurationError(
                f"{name} must be {what}, got {_shown(value)}.",
                option=name,
            )

    return check


def _shown(value: object) -> str:
    # An option's value in a message: short, and only for plain numbers
    # and strings (an arbitrary object's repr can be anything).
    if isinstance(value, int | float | str | None):
        text = repr(value)
        return text if len(text) <= 40 else f"{text[:37]}..."
    return f"a {type(value).__name__}"


@attrs.frozen(kw_only=True)
class RotationConfig:
    """How a rotation runs; bounded by default.

    Attributes:
        workers: Threads per process, sharing one client; at most
            ``MAX_WORKERS``.
        processes: Worker processes, at most ``MAX_PROCESSES``; 1 runs
            everything in this process.
            Each builds its own client from ``ClientSettings``.
        rate: Cap on KMS calls per second for the whole run, all threads
            and processes together; None for none until KMS throttles.
        window: Items in flight at most; defaults to
            ``WINDOW_PER_WORKER`` per thread.
        max_attempts: Attempts per item when the engine retries.
        backoff_base: Seconds of the first backoff.
        backoff_cap: The longest backoff, in seconds.
        max_failures: Stop once more items than this failed: a count, or
            a fraction of the outcomes so far (judged after
            ``MIN_OUTCOMES_FOR_FRACTION``); None never stops on count.
        systemic_streak: Items in a row failing with one
            destination-scoped code that stop the run.
        chunk_size: Items handed to a worker process at a time.

    Raises:
        ConfigurationError: A value has the wrong type or is out of
            range; it names the option.
    """

    workers: int = attrs.field(
        default=DEFAULT_WORKERS,
        validator=_positive("workers", integer=True, maximum=MAX_WORKERS),
    )
    processes: int = attrs.field(
        default=1,
        validator=_positive("processes", integer=True, maximum=MAX_PROCESSES),
    )
    rate: float | None = attrs.field(
        default=None,
        validator=_positive("rate", allow_none=True, minimum=SLOWEST_RATE),
    )
    window: int | None = attrs.field(
        default=None,
        validator=_positive("window", allow_none=True, integer=True),
    )
    max_attempts: int = attrs.field(
        default=DEFAULT_MAX_ATTEMPTS,
        validator=_positive("max_attempts", integer=True),
    )
    backoff_base: float = attrs.field(
        default=DEFAULT_BACKOFF_BASE, validator=_positive("backoff_base")
    )
    backoff_cap: float = attrs.field(
        default=DEFAULT_BACKOFF_CAP, validator=_positive("backoff_cap")
    )
    max_failures: int | float | None = attrs.field(
        default=None, validator=_check_max_failures
    )
    systemic_streak: int = attrs.field(
        default=DEFAULT_SYSTEMIC_STREAK,
        validator=_positive("systemic_streak", integer=True),
    )
    chunk_size: int = attrs.field(
        default=DEFAULT_CHUNK_SIZE,
        validator=_positive("chunk_size", integer=True),
    )

    @property
    def effective_window(self) -> int:
        """The number of items in flight at most."""
        if self.window is not None:
            return self.window
        return WINDOW_PER_WORKER * self.workers * self.processes


@attrs.frozen(kw_only=True)
class ClientSettings:
    """How to build a KMS client: picklable, so that worker processes can
    build their own. Credentials are never part of it; each process finds
    them through botocore's standard chain.

    Attributes:
        region_name: The AWS Region.
        endpoint_url: An endpoint instead of the Region's.
        profile_name: A profile of the AWS config files.
        local: Use the dummy credentials of the local KMS and read none
            of the user's AWS configuration (see ``for_local_kms``).
    """

    region_name: str | None = None
    endpoint_url: str | None = None
    profile_name: str | None = None
    local: bool = False

    @classmethod
    def for_local_kms(cls, kms: LocalKms) -> ClientSettings:
        """Settings for a ``kms_reencrypt.local.LocalKms``.

        Args:
            kms: A started local KMS.

        Returns:
            Settings with its address and Region.
        """
        return cls(
            region_name=kms.region, endpoint_url=kms.endpoint_url, local=True
        )

    def build(self, *, max_pool_connections: int) -> ReEncryptClient:
        """Build a client with botocore's retries turned off.

        Args:
            max_pool_connections: HTTP connections to keep, one per
                thread sharing the client.

        Returns:
            The facade over a new botocore client.

        Raises:
            ConfigurationError: The settings do not make a client.
        """
        # Every request is checked by build_request before it is sent,
        # so botocore's own parameter validation is off, as in client().
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max(10, max_pool_connections),
            parameter_validation=False,
        )
        if self.local:
            if self.endpoint_url is None:
                raise ConfigurationError(
                    "local=True needs the local KMS's endpoint_url.",
                    option="endpoint_url",
                )
            kms = isolated_kms_client(
                endpoint_url=self.endpoint_url,
                region_name=self.region_name or "us-east-1",
                config=config,
            )
        else:
            kms = create_kms_client(
                region_name=self.region_name,
                endpoint_url=self.endpoint_url,
                profile_name=self.profile_name,
                config=config,
            )

        return ReEncryptClient(kms)


def _readonly_counts(value: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(value))


def _seconds_repr(value: float) -> str:
    return f"{value:.3f}"


def _counts_repr(value: Mapping[str, int]) -> str:
    return repr(dict(value))


#: Failed items a report's repr lists; the rest are counted.
_REPR_FAILED_ITEMS = 5


def _failed_items_repr(
    items: tuple[tuple[str | None, str, int | None], ...],
) -> str:
    if len(items) <= _REPR_FAILED_ITEMS:
        return repr(items)
    shown = ", ".join(repr(item) for item in items[:_REPR_FAILED_ITEMS])
    return f"({shown}, <{len(items) - _REPR_FAILED_ITEMS} more>)"


@attrs.frozen(kw_only=True)
class RotationReport:
    """The summary of a rotation; holds counts and failed ids, never
    ciphertext, grant tokens or context values.

    Attributes:
        total: Items read from the input.
        ok: Items re-encrypted (and written back, with a writer).
        failed: Items that failed.
        dry_run: Items a dry run found nothing wrong with.
        skipped: Items the journal says an earlier run finished.
        not_attempted: Items read but never reported because the run
            stopped first; a new run picks them up.
        failures_by_code: Failed items per error code.
        failed_items: ``(id, error code, line)`` of every failed item.
        calls: KMS calls made, retries included.
        retries: Calls that repeated an earlier one.
        throttles: Calls KMS answered ``ThrottlingException``.
        elapsed: Seconds from start to end.
        stopped_reason: Why the run stopped early; None if it did not.
    """

    total: int = 0
    ok: int = 0
    failed: int = 0
    dry_run: int = 0
    skipped: int = 0
    not_attempted: int = 0
    failures_by_code: Mapping[str, int] = attrs.field(
        factory=dict, converter=_readonly_counts, repr=_counts_repr
    )
    failed_items: tuple[tuple[str | None, str, int | None], ...] = attrs.field(
        default=(), repr=_failed_items_repr
    )
    calls: int = 0
    retries: int = 0
    throttles: int = 0
    elapsed: float = attrs.field(default=0.0, repr=_seconds_repr)
    stopped_reason: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        # A report crosses processes (in a RotationStoppedError, or as the
        # result of a task on a cluster): the read-only view is a dict
        # while pickled.
        state = {
            f.name: getattr(self, f.name) for f in attrs.fields(type(self))
        }
        state["failures_by_code"] = dict(state["failures_by_code"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state["failures_by_code"] = _readonly_counts(state["failures_by_code"])
        for name, value in state.items():
            object.__setattr__(self, name, value)

    @property
    def calls_per_second(self) -> float:
        """KMS calls per second over the whole run."""
        return self.calls / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def items_per_second(self) -> float:
        """Items reported per second over the whole run."""
        done = self.ok + self.failed + self.dry_run
        return done / self.elapsed if self.elapsed > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-serializable data.

        Returns:
            Counts, timings and every failed item's id, error code and
            line; never ciphertext, tokens or context values.
        """
        return {
            "total": self.total,
            "ok": self.ok,
            "failed": self.failed,
            "dry_run": self.dry_run,
            "skipped": self.skipped,
            "not_attempted": self.not_attempted,
            "failures_by_code": dict(sorted(self.failures_by_code.items())),
            "failed_items": [
                {"id": item_id, "code": code, "line": line}
                for item_id, code, line in self.failed_items
            ],
            "calls": self.calls,
            "retries": self.retries,
            "throttles": self.throttles,
            "elapsed_seconds": round(self.elapsed, 3),
            "calls_per_second": round(self.calls_per_second, 1),
            "items_per_second": round(self.items_per_second, 1),
            "stopped_reason": self.stopped_reason,
        }

    def _repr_html_(self) -> str:
        # Jupyter shows this table instead of the repr.
        from ._report_html import report_html

        return report_html(self)


class _SeenIds:
    """A set of item ids in 8 bytes each: 64-bit hashes, most in a sorted
    array, the newest in a small set merged in when it fills up.

    Two different ids collide with a probability near n²/2⁶⁵ (under
    1e-7 for ten million ids); a collision reports the second item as a
    duplicate, never rotates anything twice.
    """

    _MERGE_AT = 65536

    def __init__(self) -> None:
        self._sorted: array[int] = array("Q")
        self._recent: set[int] = set()

    @staticmethod
    def _hash(item_id: str) -> int:
        digest = hashlib.blake2b(
            item_id.encode("utf-8", "surrogatepass"), digest_size=8
        ).digest()
        return int.from_bytes(digest, "little")

    def __contains__(self, item_id: str) -> bool:
        return self._has(self._hash(item_id))

    def add(self, item_id: str) -> None:
        self._add(self._hash(item_id))

    def add_new(self, item_id: str) -> bool:
        """Add an id; return False (adding nothing) if it was there."""
        value = self._hash(item_id)
        if self._has(value):
            return False
        self._add(value)
        return True

    def _has(self, value: int) -> bool:
        if value in self._recent:
            return True
        index = bisect.bisect_left(self._sorted, value)
        return index < len(self._sorted) and self._sorted[index] == value

    def _add(self, value: int) -> None:
        self._recent.add(value)
        if len(self._recent) >= self._MERGE_AT:
            # Merged lazily into a new array: no list of a million ints.
            recent = sorted(self._recent)
            self._sorted = array("Q", heapq.merge(self._sorted, recent))
            self._recent = set()


def _destination_context_repr(context: DestinationContext) -> str:
    if isinstance(context, Mapping):
        return _context_keys(context)
    return repr(context)


def _grant_tokens_repr(tokens: tuple[str, ...] | None) -> str:
    return "None" if tokens is None else f"<{len(tokens)} grant tokens>"


@attrs.frozen(kw_only=True)
class _Job:
    """What every worker needs to rotate an item; picklable."""

    destination_key_id: str
    destination_context: DestinationContext = attrs.field(
        repr=_destination_context_repr
    )
    destination_encryption_algorithm: str | None
    grant_tokens: tuple[str, ...] | None = attrs.field(repr=_grant_tokens_repr)
    dry_run: bool
    engine_retries: bool
    max_attempts: int
    backoff_base: float
    backoff_cap: float

    def __getstate__(self) -> dict[str, Any]:
        state = {
            f.name: getattr(self, f.name) for f in attrs.fields(type(self))
        }
        context = state["destination_context"]
        if isinstance(context, Mapping):
            state["destination_context"] = dict(context)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def context_for(self, item: RotationItem) -> Mapping[str, str] | None:
        """The context the new ciphertext of ``item`` is bound to."""
        if self.destination_context is SAME_CONTEXT:
            return item.encryption_context or None
        if isinstance(self.destination_context, Mapping):
            return self.destination_context or None
        return None


class _Worker:
    """Rotates one item at a time; shared by the threads of a process."""

    def __init__(
        self,
        *,
        job: _Job,
        client: ReEncryptClient,
        governor: Any,
        stop: Any,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._job = job
        self._client = client
        self._governor = governor
        self._stop = stop
        self._sleep = sleep
        self._random = random.Random()  # noqa: S311 (jitter, not secrets)

    def __call__(
        self, item: RotationItem, server_dry_run: bool
    ) -> RotationOutcome | None:
        try:
            return self._rotate(item, server_dry_run)
        except Exception as error:  # a bug must not lose the item
            log.debug("unexpected error on item %r", item.id, exc_info=True)
            return self._failed(item, error, attempts=0, throttles=0)

    def _failed(
        self,
        item: RotationItem,
        error: BaseException,
        *,
        attempts: int,
        throttles: int,
    ) -> RotationOutcome:
        return RotationOutcome(
            id=item.id,
            status=RotationStatus.FAILED,
            key_id=self._job.destination_key_id,
            source_key_id=item.source_key_id,
            encryption_context=self._job.context_for(item),
            error=error,
            line=item.line,
            attempts=attempts,
            throttles=throttles,
        )

    def _rotate(
        self, item: RotationItem, server_dry_run: bool
    ) -> RotationOutcome | None:
        job = self._job
        context = job.context_for(item)
        members: dict[str, Any] = {
            "CiphertextBlob": item.ciphertext_blob,
            "DestinationKeyId": job.destination_key_id,
            "SourceKeyId": item.source_key_id,
            "SourceEncryptionContext": item.encryption_context or None,
            "DestinationEncryptionContext": context,
            "SourceEncryptionAlgorithm": item.source_encryption_algorithm,
            "DestinationEncryptionAlgorithm": (
                job.destination_encryption_algorithm
            ),
            "GrantTokens": job.grant_tokens,
        }

        if server_dry_run:
            members["DryRun"] = True
        client = self._client
        allow_managed = client.allow_aws_managed_key
        # Checked before a rate slot is taken: a refused item costs the
        # account's quota nothing. The request is sent as built here.
        try:
            request = build_request(
                **members,
                region_name=client.region_name,
                allow_aws_managed_key=allow_managed,
            )
        except RequestValidationError as error:
            return self._failed(item, error, attempts=0, throttles=0)
        if job.dry_run and not server_dry_run:
            return self._outcome(item, RotationStatus.DRY_RUN, context)

        attempts = throttles = 0
        limit = job.max_attempts if job.engine_retries else 1
        while True:
            if self._stop.is_set():
                return None
            self._governor.acquire()
            attempts += 1
            try:
                result = client._send_checked(
                    request,
                    allow_aws_managed_key=allow_managed,
                    preflight=client.preflight,
                    stacklevel=2,
                )
            except (KmsServiceError, KmsConnectionError) as error:
                throttled = getattr(error, "code", None) == (
                    "ThrottlingException"
                )
                if throttled:
                    throttles += 1
                    self._governor.throttled()
                if not error.retryable or attempts >= limit:
                    return self._failed(
                        item, error, attempts=attempts, throttles=throttles
                    )
                self._backoff(attempts)
                continue
            except KmsReEncryptError as error:
                # Refused before sending (the request, the pre-flight, no
                # credentials): this attempt made no ReEncrypt call.
                return self._failed(
                    item, error, attempts=attempts - 1, throttles=throttles
                )
            break

        if isinstance(result, DryRunResult):
            return self._outcome(
                item,
                RotationStatus.DRY_RUN,
                context,
                attempts=attempts,
                throttles=throttles,
            )

        return RotationOutcome(
            id=item.id,
            status=RotationStatus.OK,
            ciphertext_blob=result.ciphertext_blob,
            key_id=result.key_id,
            source_key_id=result.source_key_id or item.source_key_id,
            encryption_context=context,
            line=item.line,
            attempts=attempts,
            throttles=throttles,
        )

    def _outcome(
        self,
        item: RotationItem,
        status: RotationStatus,
        context: Mapping[str, str] | None,
        *,
        attempts: int = 0,
        throttles: int = 0,
    ) -> RotationOutcome:
        return RotationOutcome(
            id=item.id,
            status=status,
            key_id=self._job.destination_key_id,
            source_key_id=item.source_key_id,
            encryption_context=context,
            line=item.line,
            attempts=attempts,
            throttles=throttles,
        )

    def _backoff(self, attempts: int) -> None:
        job = self._job
        ceiling = min(job.backoff_cap, job.backoff_base * 2 ** (attempts - 1))
        self._sleep(self._random.uniform(0.0, ceiling))


_Task: TypeAlias = tuple[RotationItem, bool]


class _ThreadBackend:
    """Runs items on threads of this process, started as items come, up
    to ``workers``. Plain threads on a queue rather than an executor: a
    future and its callback per item cost a few percent of the CPU."""

    def __init__(self, worker: _Worker, workers: int) -> None:
        self._worker = worker
        self._workers = workers
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[RotationOutcome | _Crash | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        self.inflight = 0

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            try:
                self._done.put(self._worker(*task))
            except BaseException as error:  # re-raised by results()
                self._done.put(_Crash(error))

    def submit(self, task: _Task) -> None:
        self._tasks.put(task)
        self.inflight += 1
        if len(self._threads) < min(self._workers, self.inflight):
            thread = threading.Thread(
                target=self._work,
                name=f"kms-rotate-{len(self._threads)}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def flush(self) -> None:
        """Nothing is buffered in this backend."""

    def results(self) -> list[RotationOutcome | None]:
        batch = [self._done.get()]
        while True:
            try:
                batch.append(self._done.get_nowait())
            except queue.Empty:
                break
        self.inflight -= len(batch)
        outcomes: list[RotationOutcome | None] = []
        for result in batch:
            if isinstance(result, _Crash):
                raise result.error
            outcomes.append(result)

        return outcomes

    def close(self) -> None:
        # The run's stop event is set: items still queued return None at
        # once, and the threads end after them.
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join()


@attrs.frozen
class _Crash:
    """A worker thread's exception that is not an item's failure (a
    KeyboardInterrupt, a SystemExit), carried to the consuming thread."""

    error: BaseException


def _child_main(
    index: int,
    job: _Job,
    settings: ClientSettings,
    governor: Any,
    stop: Any,
    workers: int,
    inbox: Any,
    outbox: Any,
) -> None:
    """The body of a worker process: its own client and threads."""
    try:
        client = settings.build(max_pool_connections=workers)
    except KmsReEncryptError as error:
        outbox.put((index, "error", error))
        return
    worker = _Worker(job=job, client=client, governor=governor, stop=stop)
    done: queue.SimpleQueue[RotationOutcome | object | None] = (
        queue.SimpleQueue()
    )
    finished = object()

    def send() -> None:
        while True:
            batch = [done.get()]
            # Linger a moment for more outcomes: one message per outcome
            # costs both processes more CPU than the calls leave room for.
            deadline = time.monotonic() + _OUTCOME_LINGER_SECONDS
            while len(batch) < 256 and batch[-1] is not finished:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(done.get(timeout=remaining))
                except queue.Empty:
                    break
            ending = finished in batch
            outcomes = [o for o in batch if o is not finished]
            if outcomes:
                outbox.put((index, "outcomes", outcomes))
            if ending:
                return

    # Plain threads on a queue rather than an executor: a future and its
    # callback per item were a few percent of the child's CPU.
    tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()

    def work() -> None:
        while (task := tasks.get()) is not None:
            done.put(worker(*task))

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    threads = [
        threading.Thread(target=work, name=f"kms-rotate-{n}", daemon=True)
        for n in range(workers)
    ]
    for thread in threads:
        thread.start()
    while (chunk := inbox.get()) is not None:
        for task in chunk:
            tasks.put(task)
    for _ in threads:
        tasks.put(None)
    for thread in threads:
        thread.join()
    done.put(finished)
    sender.join()
    outbox.put((index, "exit", None))


class _ProcessBackend:
    """Runs items in worker processes, each with its own client."""

    _POLL_SECONDS = 0.5

    def __init__(
        self,
        *,
        job: _Job,
        settings: ClientSettings,
        governor: Any,
        stop: Any,
        config: RotationConfig,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._chunk_size = config.chunk_size
        self._outbox: Any = context.Queue()
        self._inboxes: list[Any] = []
        self._processes: list[Any] = []
        self._loads = [0] * config.processes
        self._pending: list[list[_Task]] = [[] for _ in self._loads]
        # Items a process holds (sent, outcome not back yet). Below the
        # low-water mark its threads may soon idle, so flush() sends it
        # whatever is pending; above it, items wait to fill a chunk.
        self._held = [0] * config.processes
        self._low_water = 2 * config.workers
        for index in range(config.processes):
            inbox = context.Queue()
            process = context.Process(
                target=_child_main,
                args=(
                    index,
                    job,
                    settings,
                    governor,
                    stop,
                    config.workers,
                    inbox,
                    self._outbox,
                ),
                name=f"kms-rotate-{index}",
                daemon=True,
            )
            process.start()
            self._inboxes.append(inbox)
            self._processes.append(process)
        self.inflight = 0

    def submit(self, task: _Task) -> None:
        index = min(range(len(self._loads)), key=self._loads.__getitem__)
        self._pending[index].append(task)
        self._loads[index] += 1
        self.inflight += 1
        if len(self._pending[index]) >= self._chunk_size:
            self._send(index)

    def _send(self, index: int) -> None:
        if self._pending[index]:
            self._inboxes[index].put(self._pending[index])
            self._held[index] += len(self._pending[index])
            self._pending[index] = []

    def flush(self) -> None:
        """Send pending items to the processes that are running low."""
        for index in range(len(self._pending)):
            if self._held[index] < self._low_water:
                self._send(index)

    def results(self) -> list[RotationOutcome | None]:
        while True:
            try:
                index, kind, payload = self._outbox.get(
                    timeout=self._POLL_SECONDS
                )
            except queue.Empty:
                dead = [p.name for p in self._processes if not p.is_alive()]
                if dead:
                    raise RotationStoppedError(
                        f"worker process {dead[0]} died; items it held were "
                        "not rotated and a new run will pick them up.",
                        code="WorkerDied",
                    ) from None
                continue
            if kind == "error":
                raise payload
            if kind == "outcomes":
                self._loads[index] -= len(payload)
                self._held[index] -= len(payload)
                self.inflight -= len(payload)
                outcomes: list[RotationOutcome | None] = payload
                return outcomes

    def close(self) -> None:
        for inbox in self._inboxes:
            inbox.put(None)
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join()


def _botocore_retries_off(kms_client: BaseClient) -> bool:
    retries = getattr(kms_client.meta.config, "retries", None) or {}
    if retries.get("total_max_attempts") == 1:
        return True
    return retries.get("max_attempts") == 0


class _RetryObserver:
    """Counts throttles and retries that botocore makes on a caller's
    client, through its ``needs-retry`` event, and tells the governor."""

    def __init__(self, kms_client: BaseClient, governor: Any) -> None:
        self._events = kms_client.meta.events
        self._governor = governor
        self._lock = threading.Lock()
        self._unique_id = f"kms-reencrypt-rotate-{id(self)}"
        self.throttles = 0
        self.retries = 0
        self._events.register_first(
            "needs-retry.kms.ReEncrypt",
            self._observe,
            unique_id=self._unique_id,
        )

    def _observe(
        self, response: Any = None, attempts: int = 1, **kwargs: Any
    ) -> None:
        code = None
        if response is not None:
            code = (response[1] or {}).get("Error", {}).get("Code")
        with self._lock:
            if attempts > 1:
                self.retries += 1
            if code == "ThrottlingException":
                self.throttles += 1
        if code == "ThrottlingException":
            self._governor.throttled()

    def close(self) -> None:
        self._events.unregister(
            "needs-retry.kms.ReEncrypt", unique_id=self._unique_id
        )


def _item_from_mapping(raw: Mapping[str, Any], seq: int) -> RotationItem:
    item_id = raw.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise (
            MissingParameterError if item_id is None else ParameterTypeError
        )(
            f"item {seq} has no id; each item needs a non-empty str id.",
            parameter="id",
        )
    if "ciphertext_blob" not in raw:
        raise MissingParameterError(
            f"item {item_id!r} has no ciphertext_blob.",
            parameter="CiphertextBlob",
        )
    unknown = set(raw) - {
        "id",
        "ciphertext_blob",
        "encryption_context",
        "source_key_id",
        "source_encryption_algorithm",
        "line",
    }
    if unknown:
        names = sorted(_shown(key) for key in unknown)
        raise ParameterTypeError(
            f"item {item_id!r} has unknown keys: {', '.join(names)}.",
            parameter="item",
        )

    return RotationItem(
        id=item_id,
        ciphertext_blob=raw["ciphertext_blob"],
        encryption_context=raw.get("encryption_context"),
        source_key_id=raw.get("source_key_id"),
        source_encryption_algorithm=raw.get("source_encryption_algorithm"),
        line=raw.get("line"),
    )


#: The largest line number a journal can store (SQLite INTEGER).
_MAX_LINE = 2**63 - 1


def _reportable_id(value: object) -> str | None:
    # An id goes into outcomes, journals and output files: only a
    # non-empty str that UTF-8 can encode.
    if not isinstance(value, str) or not value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def _reportable_line(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= _MAX_LINE else None


def _plain(item: RotationItem) -> bool:
    """True when every member of ``item`` has a type that pickles."""
    text = (str, type(None))
    context = item.encryption_context
    return (
        type(item.ciphertext_blob) is bytes
        and type(item.source_key_id) in text
        and type(item.source_encryption_algorithm) in text
        and (
            context is None
            or (
                isinstance(context, Mapping)
                and all(
                    type(key) is str and type(value) is str
                    for key, value in context.items()
                )
            )
        )
    )


def _check_item(item: RotationItem, seq: int) -> None:
    """Refuse an id or line number that outcomes, journals and output
    files could not carry; every other member is checked as a request."""
    if _reportable_id(item.id) is None:
        error = (
            MissingParameterError if item.id is None else ParameterTypeError
        )
        raise error(
            f"item {seq} has no usable id; each item needs a non-empty str "
            "id that UTF-8 can encode (no lone surrogates).",
            parameter="id",
        )
    if item.line is not None and _reportable_line(item.line) is None:
        raise ParameterTypeError(
            f"item {item.id!r} has a line of {_shown(item.line)}; a line "
            f"is None or an int from 0 to {_MAX_LINE}.",
            parameter="line",
        )


class _Tally:
    """The running counts behind the report; touched by one thread."""

    def __init__(self) -> None:
        self.total = self.ok = self.failed = 0
        self.dry_run = self.skipped = 0
        self.calls = self.retries = self.throttles = 0
        self.by_code: Counter[str] = Counter()
        self.failed_items: list[tuple[str | None, str, int | None]] = []

    def add(self, outcome: RotationOutcome) -> None:
        self.calls += outcome.attempts
        self.retries += max(0, outcome.attempts - 1)
        self.throttles += outcome.throttles
        if outcome.status is RotationStatus.OK:
            self.ok += 1
        elif outcome.status is RotationStatus.DRY_RUN:
            self.dry_run += 1
        elif outcome.status is RotationStatus.SKIPPED:
            self.skipped += 1
        else:
            self.failed += 1
            code = outcome.error_code or "Unknown"
            self.by_code[code] += 1
            self.failed_items.append((outcome.id, code, outcome.line))


class Rotation:
    """A running rotation: iterate it for one outcome per item, in
    completion order; ``report`` summarizes what happened so far.

    Closing it (or leaving its ``with`` block, or Ctrl-C while iterating)
    stops sending, waits for the calls in flight and shuts the workers
    down. Create it with ``rotate_iter``, which resolves its arguments
    into the ones below.

    Args:
        items: The input, read lazily.
        job: What every worker needs to rotate an item.
        config: How the rotation runs.
        client: The client to call through, or None to build one (or one
            per worker process) from ``settings``.
        settings: How to build clients, when ``client`` is None.
        writer: Called with each outcome in this thread, or None.
        journal: A ``Journal`` recording outcomes, or None.
        journal_line: Gives the output line stored with each outcome.
        own_journal: Close the journal at the end (it was opened for
            this rotation) rather than only flush it.
        server_dry_run: Items of a dry run to ask KMS about.
        progress: An object with ``update(outcome)`` and ``close()``,
            or None.
        clock: Monotonic seconds.
        sleep: Sleeps.
        rate_limiter: The cap shared beyond this run, or None for the
            engine's own ``RateGovernor``.

    Raises:
        ConfigurationError: ``settings`` do not make a client.
        RotationStoppedError: Raised by iteration, after every outcome in
            flight was reported, when the run stopped early; its
            ``report`` counts the items not attempted.
    """

    def __init__(
        self,
        items: Iterable[Any],
        *,
        job: _Job,
        config: RotationConfig,
        client: ReEncryptClient | None,
        settings: ClientSettings | None,
        writer: Callable[[RotationOutcome], object] | None,
        journal: Any,
        journal_line: Callable[[RotationOutcome], str | None] | None,
        own_journal: bool,
        server_dry_run: int,
        progress: Any,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        from ._ratelimit import RateGovernor

        self._items = iter(items)
        self._job = job
        self._config = config
        self._writer = writer
        self._journal = journal
        self._journal_line = journal_line
        self._own_journal = own_journal
        self._server_dry_run = server_dry_run
        self._progress = progress
        self._clock = clock
        self._tally = _Tally()
        self._seen = _SeenIds()
        self._done = _SeenIds()
        self._stopped: tuple[str, str | None] | None = None
        self._streak_code: str | None = None
        self._streak = 0
        self._started = clock()
        self._ended: float | None = None
        self._shut = False
        self._observer: _RetryObserver | None = None

        if journal is not None:
            for item_id in journal.done_ids():
                self._done.add(item_id)

        processes = config.processes > 1
        self._pickled = processes
        self._governor: RateLimiter = rate_limiter or RateGovernor(
            config.rate, shared=processes, clock=clock, sleep=sleep
        )
        self._stop: Any = (
            multiprocessing.get_context("spawn").Event()
            if processes
            else threading.Event()
        )
        self._backend: _ThreadBackend | _ProcessBackend
        if processes:
            assert settings is not None
            self._backend = _ProcessBackend(
                job=job,
                settings=settings,
                governor=self._governor,
                stop=self._stop,
                config=config,
            )
        else:
            if client is None:
                assert settings is not None
                client = settings.build(max_pool_connections=config.workers)
            if not job.engine_retries:
                self._observer = _RetryObserver(
                    client.kms_client, self._governor
                )
            worker = _Worker(
                job=job,
                client=client,
                governor=self._governor,
                stop=self._stop,
                sleep=sleep,
            )
            self._backend = _ThreadBackend(worker, config.workers)
        self._outcomes = self._run()

    def __repr__(self) -> str:
        tally = self._tally
        state = "finished" if self._ended is not None else "running"
        return (
            f"<Rotation to {self._job.destination_key_id!r}: {state}, "
            f"{tally.total} read, {tally.ok} ok, {tally.failed} failed, "
            f"{tally.skipped} skipped>"
        )

    def _repr_html_(self) -> str:
        # Jupyter shows the report so far.
        from ._report_html import report_html

        return report_html(self.report)

    def __iter__(self) -> Iterator[RotationOutcome]:
        return self

    def __next__(self) -> RotationOutcome:
        return next(self._outcomes)

    def __enter__(self) -> Rotation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop sending, wait for the calls in flight, release workers."""
        self._outcomes.close()
        self._shutdown()

    @property
    def report(self) -> RotationReport:
        """The report of the run so far (final once iteration ended)."""
        tally = self._tally
        end = self._ended if self._ended is not None else self._clock()
        calls, retries, throttles = tally.calls, tally.retries, tally.throttles
        if self._observer is not None:
            calls += self._observer.retries
            retries += self._observer.retries
            throttles += self._observer.throttles
        reported = tally.ok + tally.failed + tally.dry_run + tally.skipped

        return RotationReport(
            total=tally.total,
            ok=tally.ok,
            failed=tally.failed,
            dry_run=tally.dry_run,
            skipped=tally.skipped,
            not_attempted=max(0, tally.total - reported),
            failures_by_code=tally.by_code,
            failed_items=tuple(tally.failed_items),
            calls=calls,
            retries=retries,
            throttles=throttles,
            elapsed=end - self._started,
            stopped_reason=None if self._stopped is None else self._stopped[0],
        )

    def _shutdown(self) -> None:
        if self._shut:
            return
        # Once only, even when a step fails: a second close of the
        # journal would raise from sqlite. The clock hook is read last, so
        # that one failing cannot leave workers running or the journal
        # open.
        self._shut = True
        try:
            self._stop.set()
            self._backend.close()
            if self._observer is not None:
                self._observer.close()
            if self._journal is not None:
                if self._own_journal:
                    self._journal.close()
                else:
                    self._journal.flush()
        finally:
            if self._progress is not None:
                self._progress.close()
        self._ended = self._clock()

    def _run(self) -> Generator[RotationOutcome, None, None]:
        backend = self._backend
        window = self._config.effective_window
        ready: deque[RotationOutcome] = deque()
        exhausted = False
        try:
            while True:
                while (
                    not exhausted
                    and self._stopped is None
                    and backend.inflight + len(ready) < window
                ):
                    try:
                        raw = next(self._items)
                    except StopIteration:
                        exhausted = True
                        break
                    self._tally.total += 1
                    prepared = self._prepare(raw, self._tally.total)
                    if isinstance(prepared, RotationOutcome):
                        ready.append(prepared)
                    else:
                        backend.submit(prepared)
                backend.flush()
                if not ready:
                    if not backend.inflight:
                        break
                    ready.extend(o for o in backend.results() if o is not None)
                    continue
                yield self._finish(ready.popleft())
        finally:
            self._shutdown()
        report = self.report
        log.info(
            "rotation to %s: %d ok, %d failed, %d skipped in %.1f s",
            self._job.destination_key_id,
            report.ok,
            report.failed,
            report.skipped,
            report.elapsed,
        )
        if self._stopped is not None:
            reason, code = self._stopped
            raise RotationStoppedError(reason, code=code, report=report)

    def _prepare(self, raw: Any, seq: int) -> _Task | RotationOutcome:
        try:
            if isinstance(raw, MalformedItem):
                return RotationOutcome(
                    id=_reportable_id(raw.id),
                    status=RotationStatus.FAILED,
                    key_id=self._job.destination_key_id,
                    error=raw.error,
                    line=_reportable_line(raw.line),
                )
            if isinstance(raw, Mapping):
                item = _item_from_mapping(raw, seq)
            elif isinstance(raw, RotationItem):
                item = raw
            else:
                raise ParameterTypeError(
                    f"item {seq} is a {type(raw).__name__}; pass a "
                    "RotationItem or a dict.",
                    parameter="item",
                )
            _check_item(item, seq)
        except KmsReEncryptError as error:
            fields: Any = raw if isinstance(raw, Mapping) else {}
            if isinstance(raw, RotationItem):
                fields = {"id": raw.id, "line": raw.line}
            return RotationOutcome(
                id=_reportable_id(fields.get("id")),
                status=RotationStatus.FAILED,
                key_id=self._job.destination_key_id,
                error=error,
                line=_reportable_line(fields.get("line")),
            )

        if not self._seen.add_new(item.id):
            where = f"line {item.line}" if item.line else f"item {seq}"
            return RotationOutcome(
                id=item.id,
                status=RotationStatus.FAILED,
                key_id=self._job.destination_key_id,
                error=ConflictingParametersError(
                    f"id {item.id!r} on {where} was seen before in this "
                    "input; it is rotated once only.",
                    parameter="id",
                ),
                line=item.line,
            )
        if item.id in self._done:
            return RotationOutcome(
                id=item.id,
                status=RotationStatus.SKIPPED,
                line=item.line,
                key_id=self._job.destination_key_id,
            )
        if self._pickled and not _plain(item):
            screened = self._screen(item)
            if isinstance(screened, RotationOutcome):
                return screened
            item = screened
        server_dry_run = self._server_dry_run > 0
        if server_dry_run:
            self._server_dry_run -= 1

        return (item, server_dry_run)

    def _screen(self, item: RotationItem) -> RotationItem | RotationOutcome:
        # An item bound for a worker process is pickled on a queue's
        # feeder thread, where a member that cannot be pickled would be
        # lost without an outcome. One that is not of a plain type is
        # checked here, as the worker would, and sent in its plain form.
        try:
            request = build_request(
                CiphertextBlob=item.ciphertext_blob,
                DestinationKeyId=self._job.destination_key_id,
                SourceKeyId=item.source_key_id,
                SourceEncryptionContext=item.encryption_context or None,
                SourceEncryptionAlgorithm=item.source_encryption_algorithm,
            )
        except RequestValidationError as error:
            return RotationOutcome(
                id=item.id,
                status=RotationStatus.FAILED,
                key_id=self._job.destination_key_id,
                source_key_id=_reportable_id(item.source_key_id),
                error=error,
                line=item.line,
            )
        return attrs.evolve(
            item,
            ciphertext_blob=request["CiphertextBlob"],
            encryption_context=request.get("SourceEncryptionContext"),
            source_key_id=request.get("SourceKeyId"),
            source_encryption_algorithm=request.get(
                "SourceEncryptionAlgorithm"
            ),
        )

    def _finish(self, outcome: RotationOutcome) -> RotationOutcome:
        if self._writer is not None and outcome.status is not (
            RotationStatus.SKIPPED
        ):
            try:
                self._writer(outcome)
            except Exception as error:
                if outcome.status is not RotationStatus.FAILED:
                    failure = WriteBackError(
                        f"the writer failed for item {outcome.id!r} "
                        f"({type(error).__name__}); its old ciphertext "
                        "stays in force.",
                        item_id=outcome.id,
                    )
                    failure.__cause__ = error
                    outcome = attrs.evolve(
                        outcome,
                        status=RotationStatus.FAILED,
                        ciphertext_blob=None,
                        error=failure,
                    )
                else:
                    log.debug("writer failed for failed item %r", outcome.id)
        if self._journal is not None and outcome.status is not (
            RotationStatus.SKIPPED
        ):
            line = None
            if self._journal_line is not None:
                line = self._journal_line(outcome)
            self._journal.record(outcome, line)

        self._tally.add(outcome)
        self._judge(outcome)
        if self._progress is not None:
            self._progress.update(outcome)

        return outcome

    def _judge(self, outcome: RotationOutcome) -> None:
        if outcome.status is not RotationStatus.FAILED:
            if outcome.status is RotationStatus.OK:
                self._streak, self._streak_code = 0, None
            return
        error = outcome.error
        code = outcome.error_code or "Unknown"
        if code in _IMMEDIATE_CODES:
            self._stop_run(
                f"KMS rejected the credentials ({code}); every item would "
                "fail the same way.",
                code,
            )
        elif isinstance(error, KmsConnectionError):
            self._stop_run(
                "the KMS endpoint could not be reached after the retries; "
                "check the endpoint URL, the Region and the network.",
                code,
            )
        elif isinstance(error, ConfigurationError):
            self._stop_run(f"the client is not configured: {error}", code)
        elif code in _DESTINATION_CODES or getattr(error, "retryable", False):
            if code == self._streak_code:
                self._streak += 1
            else:
                self._streak_code, self._streak = code, 1
            if self._streak >= self._config.systemic_streak:
                self._stop_run(
                    f"{self._streak} items in a row failed with {code} on "
                    f"the way to {self._job.destination_key_id}; the "
                    "destination key (or the service) looks unusable.",
                    code,
                )
        self._judge_threshold()

    def _judge_threshold(self) -> None:
        limit = self._config.max_failures
        failed = self._tally.failed
        if limit is None or self._stopped is not None:
            return
        if isinstance(limit, float):
            tally = self._tally
            seen = tally.ok + tally.failed + tally.dry_run
            if seen < MIN_OUTCOMES_FOR_FRACTION or failed / seen <= limit:
                return
            self._stop_run(
                f"{failed} of {seen} items failed, more than the "
                f"max_failures fraction {limit}.",
                None,
            )
        elif failed > limit:
            self._stop_run(
                f"{failed} items failed, more than max_failures={limit}.",
                None,
            )

    def _stop_run(self, reason: str, code: str | None) -> None:
        if self._stopped is None:
            log.debug("stopping the rotation: %s", reason)
            self._stopped = (reason, code)
            self._stop.set()


def rotate_iter(
    items: Iterable[RotationItem | Mapping[str, Any] | MalformedItem],
    *,
    destination_key_id: str,
    client: ReEncryptClient | BaseClient | ClientSettings | None = None,
    destination_encryption_context: DestinationContext = SAME_CONTEXT,
    destination_encryption_algorithm: str | None = None,
    grant_tokens: Iterable[str] | None = None,
    dry_run: bool = False,
    server_dry_run: int = 0,
    writer: Callable[[RotationOutcome], object] | None = None,
    journal: Any = None,
    config: RotationConfig | None = None,
    workers: int | None = None,
    processes: int | None = None,
    rate: float | None = None,
    max_failures: int | float | None = None,
    progress: bool | Any = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    journal_line: Callable[[RotationOutcome], str | None] | None = None,
    rate_limiter: RateLimiter | None = None,
) -> Rotation:
    """Rotate items, yielding one outcome per item as it completes.

    Takes the parameters of ``rotate``, plus ``journal_line`` and
    ``rate_limiter``.

    Args:
        items: ``RotationItem`` objects or dicts with the same keys (only
            ``id`` and ``ciphertext_blob`` required).
        destination_key_id: The key to re-encrypt under.
        client: A ``ReEncryptClient`` or botocore KMS client (threads
            only), ``ClientSettings`` (any number of processes), or None
            for the standard AWS configuration.
        destination_encryption_context: The context to bind the new
            ciphertexts to: ``SAME_CONTEXT`` (the default) binds each to
            the context of its old ciphertext; a mapping binds all to
            that one; None binds none.
        destination_encryption_algorithm: For an asymmetric destination.
        grant_tokens: Grant tokens sent with every call.
        dry_run: Check every item offline, send nothing.
        server_dry_run: With ``dry_run``, also ask KMS (``DryRun=True``)
            about the first this many items.
        writer: Called with each outcome in the caller's thread, in
            completion order; an item counts as rotated only once it
            returns.
        journal: A path, or a ``Journal``, recording outcomes durably;
            items it marks done are skipped on a new run.
        config: A ``RotationConfig``; the next four arguments override it.
        workers: Threads per process.
        processes: Worker processes.
        rate: Cap on KMS calls per second for the whole run.
        max_failures: Stop once more items than this failed (a count or a
            fraction).
        progress: True for a progress bar (the notebook widget in
            Jupyter with ipywidgets, else a text bar), needing tqdm; or an
            object with ``update(outcome)`` and ``close()`` methods.
        clock: Monotonic seconds; injectable for tests.
        sleep: Sleeps; injectable for tests.
        journal_line: Gives the output line to store in the journal with
            each outcome (the command line repairs its output file from
            them); None stores none.
        rate_limiter: A ``RateLimiter`` shared beyond this run (one for
            a whole Dask cluster, for example) in place of the engine's
            own governor. It owns the cap, so ``rate`` must be None, and
            it serves the threads of this process, so ``processes`` must
            be 1.

    Returns:
        The running ``Rotation``; iterate it. Once iteration ends it
        raises ``RotationStoppedError`` if the run stopped early, and its
        ``report`` is final.

    Raises:
        ConfigurationError: Conflicting or invalid options.
        RequestValidationError: ``destination_key_id``,
            ``destination_encryption_context``,
            ``destination_encryption_algorithm`` or ``grant_tokens`` could
            not be sent with any item; nothing was sent.
    """
    _check_call_options(
        dry_run=dry_run,
        server_dry_run=server_dry_run,
        grant_tokens=grant_tokens,
        config=config,
        journal=journal,
        progress=progress,
        callables={
            "writer": writer,
            "journal_line": journal_line,
            "clock": clock,
            "sleep": sleep,
        },
    )
    clock = CheckedClock(clock)
    try:
        items = iter(items)
    except TypeError:
        raise ConfigurationError(
            f"items must be an iterable of RotationItem or dict, got a "
            f"{type(items).__name__}.",
            option="items",
        ) from None
    # The members every call of the run shares are checked once, here,
    # rather than failing every item alike.
    parse_key_id(destination_key_id, parameter="DestinationKeyId")
    if isinstance(destination_encryption_context, Mapping):
        destination_encryption_context = check_context(
            destination_encryption_context, "DestinationEncryptionContext"
        )
    if destination_encryption_algorithm is not None:
        destination_encryption_algorithm = check_algorithm(
            destination_encryption_algorithm, "DestinationEncryptionAlgorithm"
        )
    tokens = None
    if grant_tokens is not None:
        tokens = tuple(check_grant_tokens(list(grant_tokens)))
    config = config or RotationConfig()
    config = attrs.evolve(
        config,
        workers=config.workers if workers is None else workers,
        processes=config.processes if processes is None else processes,
        rate=config.rate if rate is None else rate,
        max_failures=(
            config.max_failures if max_failures is None else max_failures
        ),
    )

    facade, settings = _resolve_client(client, config)
    # With the client's Region known, an ARN of another Region (or an AWS
    # managed key) would fail every item alike: refuse it once, now.
    region = settings.region_name if settings is not None else None
    destination = check_key_identifier(
        destination_key_id,
        "DestinationKeyId",
        region_name=facade.region_name if facade is not None else region,
    )
    if destination.is_aws_managed and not (
        facade is not None and facade.allow_aws_managed_key
    ):
        refuse_aws_managed_destination(destination)
    if rate_limiter is not None and (
        config.rate is not None or config.processes > 1
    ):
        raise ConfigurationError(
            "a rate_limiter owns the cap and serves the threads of this "
            "process: leave rate out and use processes=1 with it.",
            option="rate_limiter",
        )
    if dry_run and journal is not None:
        raise ConfigurationError(
            "a dry run rotates nothing, so it cannot record a journal; "
            "leave journal out.",
            option="journal",
        )
    if server_dry_run and not dry_run:
        raise ConfigurationError(
            "server_dry_run asks KMS about a sample of a dry run; set "
            "dry_run=True with it.",
            option="server_dry_run",
        )
    if destination_encryption_context is not SAME_CONTEXT and not (
        destination_encryption_context is None
        or isinstance(destination_encryption_context, Mapping)
    ):
        raise ConfigurationError(
            "destination_encryption_context must be a mapping, None or "
            "SAME_CONTEXT.",
            option="destination_encryption_context",
        )
    if facade is not None:
        engine_retries = _botocore_retries_off(facade.kms_client)
    else:
        engine_retries = True

    job = _Job(
        destination_key_id=destination_key_id,
        destination_context=destination_encryption_context,
        destination_encryption_algorithm=destination_encryption_algorithm,
        grant_tokens=tokens,
        dry_run=dry_run,
        engine_retries=engine_retries,
        max_attempts=config.max_attempts,
        backoff_base=config.backoff_base,
        backoff_cap=config.backoff_cap,
    )
    own_journal = False
    if isinstance(journal, str) or hasattr(journal, "__fspath__"):
        from ._journal import Journal

        journal = Journal(journal, destination_key_id=destination_key_id)
        own_journal = True
    bar = None
    if progress is True:
        from ._progress import ProgressBar

        bar = ProgressBar.create(notebook=True)
    elif progress:
        bar = progress

    return Rotation(
        items,
        job=job,
        config=config,
        client=facade,
        settings=settings,
        writer=writer,
        journal=journal,
        journal_line=journal_line,
        own_journal=own_journal,
        server_dry_run=server_dry_run,
        progress=bar,
        clock=clock,
        sleep=sleep,
        rate_limiter=rate_limiter,
    )


def _check_call_options(
    *,
    dry_run: object,
    server_dry_run: object,
    grant_tokens: object,
    config: object,
    journal: object,
    progress: object,
    callables: Mapping[str, object],
) -> None:
    """Refuse option values of the wrong kind before anything starts."""
    if type(dry_run) is not bool:
        raise ConfigurationError(
            f"dry_run must be True or False, got {_shown(dry_run)}.",
            option="dry_run",
        )
    if (
        isinstance(server_dry_run, bool)
        or not isinstance(server_dry_run, int)
        or server_dry_run < 0
    ):
        raise ConfigurationError(
            "server_dry_run must be an int, 0 or more, got "
            f"{_shown(server_dry_run)}.",
            option="server_dry_run",
        )
    if grant_tokens is not None and (
        isinstance(grant_tokens, str | bytes | bytearray | Mapping)
        or not isinstance(grant_tokens, Iterable)
    ):
        raise ConfigurationError(
            "grant_tokens must be a list of str tokens or None, got "
            f"{_shown(grant_tokens)}.",
            option="grant_tokens",
        )
    if config is not None and not isinstance(config, RotationConfig):
        raise ConfigurationError(
            f"config must be a RotationConfig or None, got {_shown(config)}.",
            option="config",
        )
    if not (
        journal is None
        or isinstance(journal, str)
        or hasattr(journal, "__fspath__")
        or all(
            callable(getattr(journal, name, None))
            for name in ("done_ids", "record", "flush")
        )
    ):
        raise ConfigurationError(
            f"journal must be a path, a Journal or None, got "
            f"{_shown(journal)}.",
            option="journal",
        )
    if not (
        progress is None
        or type(progress) is bool
        or all(
            callable(getattr(progress, name, None))
            for name in ("update", "close")
        )
    ):
        raise ConfigurationError(
            "progress must be True, False, None or a progress bar with "
            f"update() and close(), got {_shown(progress)}.",
            option="progress",
        )
    for name, value in callables.items():
        optional = name in ("writer", "journal_line")
        if not (callable(value) or (optional and value is None)):
            raise ConfigurationError(
                f"{name} must be callable, got {_shown(value)}.",
                option=name,
            )


class CheckedClock:
    """A ``clock=`` hook whose readings are checked: a reading that is not
    a finite number would otherwise surface as a TypeError, or a report
    with a NaN elapsed time, after items were already sent.

    Args:
        clock: Monotonic seconds.

    Raises:
        ConfigurationError: ``clock`` is not callable, or a reading (the
            first is taken here) is not a finite number.
    """

    __slots__ = ("_clock",)

    def __init__(self, clock: Callable[[], float]) -> None:
        if not callable(clock):
            raise ConfigurationError(
                f"clock must be a callable returning monotonic seconds, got "
                f"{_shown(clock)}.",
                option="clock",
            )
        self._clock = clock
        self()  # a bad clock is refused before anything is sent

    def __call__(self) -> float:
        """Read the clock.

        Returns:
            The reading, a finite number.

        Raises:
            ConfigurationError: The reading is not a finite number.
        """
        reading = self._clock()
        if (
            not isinstance(reading, int | float)
            or isinstance(reading, bool)
            or not math.isfinite(reading)
        ):
            raise ConfigurationError(
                "clock must return monotonic seconds as a finite number, "
                f"returned {_shown(reading)}.",
                option="clock",
            )
        return reading


def _resolve_client(
    client: ReEncryptClient | BaseClient | ClientSettings | None,
    config: RotationConfig,
) -> tuple[ReEncryptClient | None, ClientSettings | None]:
    if client is None:
        return None, ClientSettings()
    if isinstance(client, ClientSettings):
        return None, client
    if config.processes > 1:
        raise ConfigurationError(
            "a client object cannot cross into worker processes, and its "
            "credentials are not copied: with processes > 1 pass "
            "client=ClientSettings(region_name=..., endpoint_url=..., "
            "profile_name=...) and each process builds its own client.",
            option="client",
        )

    return as_client(client), None


def rotate(
    items: Iterable[RotationItem | Mapping[str, Any] | MalformedItem],
    *,
    destination_key_id: str,
    client: ReEncryptClient | BaseClient | ClientSettings | None = None,
    destination_encryption_context: DestinationContext = SAME_CONTEXT,
    destination_encryption_algorithm: str | None = None,
    grant_tokens: Iterable[str] | None = None,
    dry_run: bool = False,
    server_dry_run: int = 0,
    writer: Callable[[RotationOutcome], object] | None = None,
    journal: Any = None,
    config: RotationConfig | None = None,
    workers: int | None = None,
    processes: int | None = None,
    rate: float | None = None,
    max_failures: int | float | None = None,
    progress: bool | Any = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RotationReport:
    """Re-encrypt many ciphertexts under ``destination_key_id``.

    Items are read lazily and at most a bounded window is in flight, so
    any number of items (from a generator of unknown length) runs in flat
    memory. Each item goes through ``ReEncryptClient.re_encrypt``.

    Args:
        items: ``RotationItem`` objects or dicts with the same keys (only
            ``id`` and ``ciphertext_blob`` required).
        destination_key_id: The key to re-encrypt under.
        client: A ``ReEncryptClient`` or botocore KMS client (threads
            only), ``ClientSettings`` (any number of processes), or None
            for the standard AWS configuration.
        destination_encryption_context: The context to bind the new
            ciphertexts to: ``SAME_CONTEXT`` (the default) binds each to
            the context of its old ciphertext, so readers keep working; a
            mapping binds all to that one; None binds none.
        destination_encryption_algorithm: For an asymmetric destination.
        grant_tokens: Grant tokens sent with every call.
        dry_run: Check every item offline, send nothing.
        server_dry_run: With ``dry_run``, also ask KMS (``DryRun=True``)
            about the first this many items.
        writer: Called with each outcome in the caller's thread, in
            completion order. An item counts as rotated only once it
            returns; if it raises, the item is failed (``WriteBackError``)
            and not marked done in the journal.
        journal: A path, or a ``Journal``, recording outcomes durably;
            items it marks done are skipped (status skipped) on a new run.
        config: A ``RotationConfig``; the next four arguments override it.
        workers: Threads per process.
        processes: Worker processes.
        rate: Cap on KMS calls per second for the whole run.
        max_failures: Stop once more items than this failed (a count or a
            fraction).
        progress: True for a progress bar (the notebook widget in
            Jupyter), needing tqdm.
        clock: Monotonic seconds; injectable for tests.
        sleep: Sleeps; injectable for tests.

    Returns:
        The report of the run.

    Raises:
        RotationStoppedError: The run stopped early; its ``report``
            attribute holds the report.
        ConfigurationError: Conflicting or invalid options (a value of
            the wrong type included), raised before anything is sent.
        RequestValidationError: ``destination_key_id``,
            ``destination_encryption_context``,
            ``destination_encryption_algorithm`` or ``grant_tokens`` could
            not be sent with any item (checked once, before the first
            item); nothing was sent.

    Whatever the items hold, an item that cannot be rotated becomes a
    failed outcome (a ``RequestValidationError`` for one refused before
    sending) and the run goes on; nothing else is raised for an item.
    """
    rotation = rotate_iter(
        items,
        destination_key_id=destination_key_id,
        client=client,
        destination_encryption_context=destination_encryption_context,
        destination_encryption_algorithm=destination_encryption_algorithm,
        grant_tokens=grant_tokens,
        dry_run=dry_run,
        server_dry_run=server_dry_run,
        writer=writer,
        journal=journal,
        config=config,
        workers=workers,
        processes=processes,
        rate=rate,
        max_failures=max_failures,
        progress=progress,
        clock=clock,
        sleep=sleep,
    )
    with rotation:
        for _ in rotation:
            pass

    return rotation.report
