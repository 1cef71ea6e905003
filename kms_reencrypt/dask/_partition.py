"""Rotating one partition, inside a Dask task, through the engine.

Each partition's rows become ``RotationItem`` objects (or
``MalformedItem`` objects naming the row) and go through ``rotate_iter``
on the worker, with a client the worker builds from ``ClientSettings``
and keeps for its later tasks, the cluster's rate limiter and the
partition's journal. The task returns one result per row, in the
partition's order: finished items an earlier attempt journaled come
back with the ciphertext that attempt wrote, so that a retried or rerun
task yields the same output without calling KMS for them again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any, NamedTuple

import attrs

from .._client import ReEncryptClient
from .._encoding import ciphertext_from_base64
from .._exceptions import (
    ConfigurationError,
    KmsReEncryptError,
    MissingParameterError,
    ParameterTypeError,
)
from .._rotate import (
    SAME_CONTEXT,
    ClientSettings,
    DestinationContext,
    MalformedItem,
    RotationConfig,
    RotationItem,
    RotationOutcome,
    RotationStatus,
    rotate_iter,
)
from ._journal import PartitionJournal
from ._ratecap import BucketRef, ClusterRateLimiter

__all__ = [
    "Fields",
    "OutputNames",
    "PartitionJob",
    "RowResult",
    "TaskCancelledError",
    "rotate_records",
]

log = logging.getLogger(__name__)

#: Seconds between two checks that the task is still wanted.
CANCEL_CHECK_SECONDS = 0.25


class TaskCancelledError(Exception):
    """Dask cancelled the task while it ran; its result is not wanted."""


@attrs.frozen(kw_only=True)
class Fields:
    """Where each part of an item is in a row (column names) or record
    (keys).

    Attributes:
        id: The item's id; str, or an integer written in decimal.
        ciphertext: The ciphertext: bytes, or base64 text with
            ``base64``.
        encryption_context: A mapping of str, or its JSON text, or the
            key-value pairs of a Parquet map; None for none.
        context_fields: Builds the context from other fields instead:
            ``(context key, field)`` pairs; a null field is left out.
        source_key_id: The source key, when known.
        source_encryption_algorithm: The source algorithm (asymmetric
            sources).
        base64: The ciphertext is base64 text, and the new one is too.
    """

    id: str
    ciphertext: str
    encryption_context: str | None = None
    context_fields: tuple[tuple[str, str], ...] = ()
    source_key_id: str | None = None
    source_encryption_algorithm: str | None = None
    base64: bool = False

    def names(self) -> list[str]:
        """Return the fields read, each once, in a stable order.

        Returns:
            The field names.
        """
        names = [self.id, self.ciphertext]
        names += [
            name
            for name in (
                self.encryption_context,
                self.source_key_id,
                self.source_encryption_algorithm,
            )
            if name is not None
        ]
        names += [name for _, name in self.context_fields]

        return list(dict.fromkeys(names))


def _check_prefix(instance: object, attribute: Any, value: object) -> None:
    # The names become column names, written to Parquet as UTF-8.
    if not isinstance(value, str):
        raise ConfigurationError(
            f"prefix must be a str, got a {type(value).__name__}.",
            option="prefix",
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        usable = False
    else:
        usable = "\0" not in value
    if not usable:
        raise ConfigurationError(
            "prefix must be text without NUL bytes or lone surrogates.",
            option="prefix",
        )


@attrs.frozen(kw_only=True)
class OutputNames:
    """The names of the fields a rotation adds.

    Attributes:
        prefix: Put before ``ciphertext``, ``key_id``, ``status``,
            ``error`` and ``error_message``.

    Raises:
        ConfigurationError: ``prefix`` is not a str, or holds a NUL byte
            or a lone surrogate.
    """

    prefix: str = attrs.field(default="rotation_", validator=_check_prefix)

    @property
    def ciphertext(self) -> str:
        """The new ciphertext, when ok."""
        return f"{self.prefix}ciphertext"

    @property
    def key_id(self) -> str:
        """The new key's ARN when ok, else the destination as given."""
        return f"{self.prefix}key_id"

    @property
    def status(self) -> str:
        """``ok``, ``failed`` or ``dry-run``."""
        return f"{self.prefix}status"

    @property
    def error(self) -> str:
        """The error code when failed."""
        return f"{self.prefix}error"

    @property
    def error_message(self) -> str:
        """The error's message when failed."""
        return f"{self.prefix}error_message"

    def all(self) -> tuple[str, str, str, str, str]:
        """Return every name, in the order of ``RowResult``.

        Returns:
            The names of the ciphertext, key id, status, error and error
            message fields.
        """
        return (
            self.ciphertext,
            self.key_id,
            self.status,
            self.error,
            self.error_message,
        )


def _plain_context(value: DestinationContext) -> DestinationContext:
    # A MappingProxyType does not pickle; the graph needs a plain dict.
    if isinstance(value, Mapping):
        return dict(value)
    return value


@attrs.frozen(kw_only=True)
class PartitionJob:
    """Everything a task needs to rotate a partition; picklable, and
    holding no client, no credentials and no future.

    Attributes:
        destination_key_id: The key to re-encrypt under.
        settings: How each worker builds its client.
        fields: Where the items' parts are.
        output: The names of the added fields.
        destination_encryption_context: As for ``rotate``.
        destination_encryption_algorithm: As for ``rotate``.
        grant_tokens: As for ``rotate``; they travel in the graph.
        dry_run: Check each item offline, send nothing.
        config: The engine's configuration for each partition (``rate``
            None: the cap is the bucket's).
        journal_dir: The journals' directory, or None.
        bucket: The cluster's rate bucket.
    """

    destination_key_id: str
    settings: ClientSettings
    fields: Fields
    output: OutputNames
    destination_encryption_context: DestinationContext = attrs.field(
        default=SAME_CONTEXT, converter=_plain_context, repr=False
    )
    destination_encryption_algorithm: str | None = None
    grant_tokens: tuple[str, ...] | None = attrs.field(
        default=None, repr=False
    )
    dry_run: bool = False
    config: RotationConfig
    journal_dir: str | None = None
    bucket: BucketRef = attrs.field(eq=False)

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return ("kms-reencrypt-partition-job", self.bucket.name)


class RowResult(NamedTuple):
    """What a rotation adds to one row."""

    ciphertext: bytes | str | None
    key_id: str | None
    status: str
    error: str | None
    error_message: str | None


def rotate_records(
    records: Sequence[Any],
    job: PartitionJob,
    *,
    partition: int,
) -> list[RowResult]:
    """Rotate the items of one partition.

    Args:
        records: One mapping per row, holding at least the job's fields;
            anything else is a failed row.
        job: The rotation.
        partition: The partition's number, which names its journal.

    Returns:
        One result per record, in order.

    Raises:
        RotationStoppedError: The partition's run stopped early (an
            unusable destination, rejected credentials, too many
            failures); what finished is journaled.
        ConfigurationError: The journal belongs to another run.
        TaskCancelledError: Dask cancelled the task.
    """
    items, fingerprint = _items(records, job.fields)

    journal = None
    if job.journal_dir is not None:
        journal = PartitionJournal(
            job.journal_dir,
            partition=partition,
            destination_key_id=job.destination_key_id,
            fingerprint=fingerprint,
        )
    limiter = None
    if not job.dry_run:
        limiter = ClusterRateLimiter(job.bucket, expected=len(items))
    results: list[RowResult | None] = [None] * len(items)
    cancelled = _cancellation_check()
    try:
        rotation = rotate_iter(
            items,
            destination_key_id=job.destination_key_id,
            client=_client(job.settings, job.config.workers),
            destination_encryption_context=job.destination_encryption_context,
            destination_encryption_algorithm=(
                job.destination_encryption_algorithm
            ),
            grant_tokens=job.grant_tokens,
            dry_run=job.dry_run,
            journal=journal,
            config=job.config,
            rate_limiter=limiter,
        )
        with rotation:
            checked = time.monotonic()
            for outcome in rotation:
                assert outcome.line is not None
                results[outcome.line - 1] = _result(outcome, job, journal)
                now = time.monotonic()
                if now - checked >= CANCEL_CHECK_SECONDS:
                    checked = now
                    if cancelled():
                        raise TaskCancelledError(
                            f"partition {partition} was cancelled."
                        )
        log.debug("partition %d: %s", partition, rotation.report.to_dict())
    finally:
        if limiter is not None:
            limiter.close()
        if journal is not None:
            journal.close()

    assert all(result is not None for result in results)
    return results  # type: ignore[return-value]


def _result(
    outcome: RotationOutcome,
    job: PartitionJob,
    journal: PartitionJournal | None,
) -> RowResult:
    status = outcome.status
    blob = outcome.ciphertext_blob
    key_id = outcome.key_id
    if status is RotationStatus.SKIPPED:
        assert journal is not None
        assert outcome.id is not None
        done = journal.done(outcome.id)
        assert done is not None
        blob, key_id = done
        status = RotationStatus.OK
    if status is RotationStatus.FAILED:
        error = outcome.error
        return RowResult(
            None,
            key_id,
            str(status),
            outcome.error_code,
            None if error is None else str(error),
        )
    ciphertext: bytes | str | None = blob
    if blob is not None and job.fields.base64:
        from .._encoding import ciphertext_to_base64

        ciphertext = ciphertext_to_base64(blob)

    return RowResult(ciphertext, key_id, str(status), None, None)


def _items(
    records: Sequence[Any], fields: Fields
) -> tuple[list[RotationItem | MalformedItem], str]:
    items: list[RotationItem | MalformedItem] = []
    digest = hashlib.sha256()
    for row, record in enumerate(records, 1):
        item = _item(record, fields, row)
        items.append(item)
        if isinstance(item, RotationItem):
            blob = item.ciphertext_blob
            digest.update(item.id.encode("utf-8", "surrogatepass") + b"\0")
            digest.update(len(blob).to_bytes(8, "big") + blob)
        else:
            digest.update(b"\1%d\0" % row)

    return items, digest.hexdigest()


def _item(
    record: Any, fields: Fields, row: int
) -> RotationItem | MalformedItem:
    if not isinstance(record, Mapping):
        return MalformedItem(
            error=ParameterTypeError(
                f"row {row} is a {type(record).__name__}, not a mapping of "
                "fields.",
                parameter="record",
            ),
            id=None,
            line=row,
        )
    raw_id = record.get(fields.id)
    if _is_null(raw_id):
        return _malformed(row, None, MissingParameterError, "has no id")
    item_id = None
    if isinstance(raw_id, str) and raw_id:
        item_id = raw_id
    elif type(raw_id) is not bool and isinstance(raw_id, Integral):
        # ValueError: more digits than int() writes in decimal.
        with contextlib.suppress(ValueError):
            item_id = str(int(raw_id))
    if item_id is None:
        return _malformed(
            row,
            None,
            ParameterTypeError,
            "has an id that is neither a non-empty str nor an integer "
            "of at most 4300 digits",
        )

    try:
        blob = _ciphertext(record.get(fields.ciphertext), fields, row)
        context = _context(record, fields, row)
        source_key_id = _text(record, fields.source_key_id, row)
        algorithm = _text(record, fields.source_encryption_algorithm, row)
    except KmsReEncryptError as error:
        return MalformedItem(error=error, id=item_id, line=row)

    return RotationItem(
        id=item_id,
        ciphertext_blob=blob,
        encryption_context=context,
        source_key_id=source_key_id,
        source_encryption_algorithm=algorithm,
        line=row,
    )


def _ciphertext(value: Any, fields: Fields, row: int) -> bytes:
    if _is_null(value):
        raise MissingParameterError(
            f"row {row} has no ciphertext.", parameter=fields.ciphertext
        )
    if fields.base64:
        if not isinstance(value, str):
            raise ParameterTypeError(
                f"row {row}: the ciphertext must be base64 text.",
                parameter=fields.ciphertext,
            )
        return ciphertext_from_base64(value, parameter=fields.ciphertext)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise ParameterTypeError(
        f"row {row}: the ciphertext must be bytes, got "
        f"{type(value).__name__} (base64 text needs base64=True).",
        parameter=fields.ciphertext,
    )


def _context(
    record: Mapping[str, Any], fields: Fields, row: int
) -> dict[str, str] | None:
    if fields.context_fields:
        built = {}
        for key, name in fields.context_fields:
            value = record.get(name)
            if _is_null(value):
                continue
            if isinstance(value, str):
                built[key] = value
            elif isinstance(value, Real):
                built[key] = str(value)
            else:
                raise ParameterTypeError(
                    f"row {row}: the context field {name!r} is a "
                    f"{type(value).__name__}; it must be text or a number.",
                    parameter="EncryptionContext",
                )
        return built or None
    if fields.encryption_context is None:
        return None

    value = record.get(fields.encryption_context)
    if _is_null(value):
        return None
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except (ValueError, RecursionError):  # deep nesting: RecursionError
            value = None
    elif isinstance(value, list | tuple):
        # A Parquet map reads as a list of (key, value) pairs.
        try:
            value = dict(value)
        except (TypeError, ValueError):
            value = None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ParameterTypeError(
            f"row {row}: the encryption context must be a mapping of "
            "str, its JSON text, or a map column.",
            parameter="EncryptionContext",
        )

    return dict(value) or None


def _text(record: Mapping[str, Any], name: str | None, row: int) -> str | None:
    if name is None:
        return None
    value = record.get(name)
    if _is_null(value):
        return None
    if not isinstance(value, str):
        raise ParameterTypeError(
            f"row {row}: the field {name!r} must be text.", parameter=name
        )

    return value


def _malformed(
    row: int,
    item_id: str | None,
    error_class: type[MissingParameterError | ParameterTypeError],
    message: str,
) -> MalformedItem:
    return MalformedItem(
        error=error_class(f"row {row} {message}.", parameter="id"),
        id=item_id,
        line=row,
    )


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return value != value
    # pandas.NA and NaT, without importing pandas for Bags.
    return type(value).__name__ in ("NAType", "NaTType")


_CLIENTS: dict[tuple[ClientSettings, int], ReEncryptClient] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(settings: ClientSettings, workers: int) -> ReEncryptClient:
    """The worker process's client for these settings, built once."""
    with _CLIENTS_LOCK:
        client = _CLIENTS.get((settings, workers))
        if client is None:
            client = settings.build(max_pool_connections=workers)
            _CLIENTS[(settings, workers)] = client

    return client


def _cancellation_check() -> Callable[[], bool]:
    """Return a check that Dask no longer wants this task's result.

    Dask cannot stop a running task; the worker only marks it cancelled.
    The worker's state is not a public API, so anything unexpected
    answers "still wanted" and the task runs to the end of its
    partition.
    """
    try:
        from distributed import get_worker

        worker: Any = get_worker()
        key = worker.get_current_task()
    except (ImportError, ValueError, AttributeError):
        return lambda: False

    def cancelled() -> bool:
        try:
            task = worker.state.tasks.get(key)
        except AttributeError:
            return False
        return task is None or task.state in ("cancelled", "released")

    return cancelled
