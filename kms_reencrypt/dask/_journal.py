"""Per-partition journals of a Dask rotation, on shared storage.

A partition's journal is a directory, ``part-NNNNNN``, of JSON Lines
segments: one per task attempt that rotated something, written by that
attempt alone and read by every later one. Its first line binds it to
the destination key and to a fingerprint of the partition's input; each
other line is one finished item with its new ciphertext::

    {"kms_reencrypt_dask_journal": 1, "destination": ..., "fingerprint": ...}
    {"id": "a1", "ciphertext": "<base64>", "key_id": "arn:aws:kms:..."}

Lines are written in batches, each flushed and fsync'd before the next
batch is taken (the same batching as the SQLite journal of ``rotate``),
so a task killed mid-partition loses at most its last uncommitted batch,
whose items the retry rotates again. A torn or unreadable line is
skipped.

Why not the SQLite journal. SQLite's WAL mode needs every process using
a database to be on one host, and its locks are unreliable on network
file systems; and Dask may run two attempts of one task at once (a
worker it took for dead that is still running). Files appended to by
one writer each, and only read by the others, need nothing of a shared
file system but appending, listing a directory and fsync.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Final

from .._exceptions import ConfigurationError, WriteBackError
from .._journal import DEFAULT_COMMIT_EVERY, DEFAULT_COMMIT_INTERVAL
from .._rotate import CheckedClock, RotationOutcome, RotationStatus

__all__ = [
    "FORMAT_VERSION",
    "PartitionJournal",
    "directory_path",
    "partition_directory",
]

log = logging.getLogger(__name__)

#: The version written in each segment's first line.
FORMAT_VERSION: Final = 1
_MARK = "kms_reencrypt_dask_journal"


def directory_path(value: object, option: str) -> str:
    """Return a journal directory given as a str or a path object.

    Args:
        value: The directory as given.
        option: The argument's name, for the error.

    Returns:
        The path as a str.

    Raises:
        ConfigurationError: Not a str or path object, or a path holding
            a NUL byte or a lone surrogate.
    """
    from .._rotate_cli import usable_path

    try:
        path = os.fspath(value)  # type: ignore[call-overload]
    except TypeError:
        path = None
    if not isinstance(path, str) or not usable_path(path):
        raise ConfigurationError(
            f"{option} must be a directory path (a str or a pathlib.Path) "
            "without NUL bytes or lone surrogates; got a "
            f"{type(value).__name__}.",
            option=option,
        )
    return path


def partition_directory(root: str | os.PathLike[str], partition: int) -> str:
    """Return the directory of one partition's journal.

    Args:
        root: The rotation's journal directory.
        partition: The partition's number in the collection.

    Returns:
        The path.
    """
    return os.path.join(os.fspath(root), f"part-{partition:06d}")


class PartitionJournal:
    """What earlier attempts finished in one partition, and a new segment
    for this attempt's outcomes.

    It has the methods the engine calls on a journal (``done_ids``,
    ``record``, ``flush``) and ``done`` to give back the new ciphertext
    of a finished item.

    Args:
        root: The rotation's journal directory, on storage every worker
            shares.
        partition: The partition's number.
        destination_key_id: The rotation's destination; a journal made
            for another is refused.
        fingerprint: Identifies the partition's input; a journal made for
            another input is refused.
        commit_every: Outcomes per commit at most.
        commit_interval: Seconds between commits at most.
        clock: Monotonic seconds; injectable for tests.

    Raises:
        ConfigurationError: An argument of the wrong type or out of
            range (naming it); the directory cannot be created or read;
            or a segment belongs to another destination or input.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        partition: int,
        destination_key_id: str,
        fingerprint: str,
        commit_every: int = DEFAULT_COMMIT_EVERY,
        commit_interval: float = DEFAULT_COMMIT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_arguments(
            root,
            partition=partition,
            destination_key_id=destination_key_id,
            fingerprint=fingerprint,
            commit_every=commit_every,
            commit_interval=commit_interval,
        )
        self.directory = partition_directory(root, partition)
        self._header = {
            _MARK: FORMAT_VERSION,
            "destination": destination_key_id,
            "fingerprint": fingerprint,
        }
        self._commit_every = commit_every
        self._commit_interval = commit_interval
        self._clock = CheckedClock(clock)
        self._pending: list[bytes] = []
        self._last_commit = self._clock()
        self._segment: Any = None
        self._done: dict[str, tuple[bytes, str | None]] = {}
        try:
            os.makedirs(self.directory, exist_ok=True)
            for name in sorted(os.listdir(self.directory)):
                if name.endswith(".jsonl"):
                    self._read(os.path.join(self.directory, name))
        except OSError as error:
            raise ConfigurationError(
                f"the journal {self.directory} cannot be created or read "
                f"({type(error).__name__}: {error.strerror or error}); give "
                "journal_dir a directory every worker can write.",
                option="journal_dir",
            ) from error

    def __repr__(self) -> str:
        return f"PartitionJournal({self.directory!r})"

    def _read(self, path: str) -> None:
        with open(path, "rb") as stream:
            lines = stream.read().split(b"\n")
        # The last piece has no newline: empty, or a torn line.
        complete = lines[:-1]
        if not complete:
            return
        try:
            header = json.loads(complete[0])
        except ValueError:
            log.debug("skipping %s: unreadable first line", path)
            return
        if not isinstance(header, dict) or _MARK not in header:
            raise ConfigurationError(
                f"{path} is not a segment of a Dask rotation journal.",
                option="journal_dir",
            )
        if header.get("destination") != self._header["destination"]:
            raise ConfigurationError(
                f"the journal {self.directory} was made for a rotation to "
                f"{header.get('destination')!r}, not "
                f"{self._header['destination']!r}; use another journal "
                "directory for another destination.",
                option="journal_dir",
            )
        if header.get("fingerprint") != self._header["fingerprint"]:
            raise ConfigurationError(
                f"the journal {self.directory} was made for other input "
                "in this partition (other rows, or another partitioning); "
                "use another journal directory for other input.",
                option="journal_dir",
            )
        skipped = 0
        for raw in complete[1:]:
            entry = _entry(raw)
            if entry is None:
                skipped += 1
                continue
            self._done.setdefault(entry[0], entry[1:])
        if skipped:
            log.debug("skipped %d unreadable lines of %s", skipped, path)

    @property
    def resumed(self) -> bool:
        """True when earlier attempts finished items of this partition."""
        return bool(self._done)

    def done_ids(self) -> Iterator[str]:
        """Yield the id of every item an earlier attempt finished.

        Yields:
            The ids, each once.
        """
        yield from self._done

    def done(self, item_id: str) -> tuple[bytes, str | None] | None:
        """Return the new ciphertext and key of a finished item.

        Args:
            item_id: The item's id.

        Returns:
            ``(ciphertext, key_id)``, or None if no attempt finished it
            (always None for an id that is not a str).
        """
        given: object = item_id  # any object, whatever the annotation says
        if not isinstance(given, str):
            return None
        return self._done.get(given)

    def record(
        self, outcome: RotationOutcome, line: str | None = None
    ) -> None:
        """Record an outcome; only finished items are kept.

        Args:
            outcome: The outcome.
            line: Ignored; the engine's journals take an output line.

        Raises:
            ConfigurationError: ``outcome`` is not a ``RotationOutcome``,
                or is ok without an id, a ciphertext or a key id of
                their types.
            WriteBackError: The segment could not be written.
        """
        given: object = outcome  # any object, whatever the annotation says
        if not isinstance(given, RotationOutcome):
            raise ConfigurationError(
                "record() takes a RotationOutcome, got a "
                f"{type(given).__name__}.",
                option="outcome",
            )
        if outcome.status is RotationStatus.OK and outcome.id is not None:
            if not (
                isinstance(outcome.id, str)
                and isinstance(outcome.ciphertext_blob, bytes)
                and isinstance(outcome.key_id, str | None)
            ):
                raise ConfigurationError(
                    "an ok outcome to journal needs a str id, bytes "
                    "ciphertext_blob and a str key_id or None.",
                    option="outcome",
                )
            entry = {
                "id": outcome.id,
                "ciphertext": base64.b64encode(outcome.ciphertext_blob).decode(
                    "ascii"
                ),
                "key_id": outcome.key_id,
            }
            self._pending.append(json.dumps(entry).encode() + b"\n")
        full = len(self._pending) >= self._commit_every
        late = self._clock() - self._last_commit >= self._commit_interval
        if full or late:
            self.flush()

    def flush(self) -> None:
        """Write, flush and fsync what is pending.

        Raises:
            WriteBackError: The segment could not be written.
        """
        pending, self._pending = self._pending, []
        self._last_commit = self._clock()
        if not pending:
            return
        try:
            if self._segment is None:
                self._segment = self._open_segment()
            self._segment.write(b"".join(pending))
            self._segment.flush()
            os.fsync(self._segment.fileno())
        except OSError as error:
            raise WriteBackError(
                f"the journal {self.directory} could not be written "
                f"({type(error).__name__}: {error})."
            ) from error

    def _open_segment(self) -> Any:
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.jsonl"
        path = os.path.join(self.directory, name)
        segment = open(path, "xb")  # noqa: SIM115 (closed in close())
        segment.write(json.dumps(self._header).encode() + b"\n")
        segment.flush()
        os.fsync(segment.fileno())
        _fsync_directory(self.directory)

        return segment

    def close(self) -> None:
        """Commit what is pending and close this attempt's segment.

        Raises:
            WriteBackError: The segment could not be written.
        """
        try:
            self.flush()
        finally:
            if self._segment is not None:
                self._segment.close()
                self._segment = None


def _check_arguments(
    root: object,
    *,
    partition: object,
    destination_key_id: object,
    fingerprint: object,
    commit_every: object,
    commit_interval: object,
) -> None:
    """Refuse arguments of the wrong kind, naming them."""
    directory_path(root, "root")
    if type(partition) is not int or partition < 0:
        raise ConfigurationError(
            "partition must be an int, 0 or more.", option="partition"
        )
    for name, value in (
        ("destination_key_id", destination_key_id),
        ("fingerprint", fingerprint),
    ):
        if not isinstance(value, str):
            raise ConfigurationError(
                f"{name} must be a str, got a {type(value).__name__}.",
                option=name,
            )
    if type(commit_every) is not int or commit_every < 1:
        raise ConfigurationError(
            "commit_every must be a positive int.", option="commit_every"
        )
    if (
        isinstance(commit_interval, bool)
        or not isinstance(commit_interval, int | float)
        or not 0 <= commit_interval < math.inf
    ):
        raise ConfigurationError(
            "commit_interval must be a finite number of seconds, 0 or more.",
            option="commit_interval",
        )


def _entry(raw: bytes) -> tuple[str, bytes, str | None] | None:
    try:
        value = json.loads(raw)
        item_id, text = value["id"], value["ciphertext"]
        key_id = value.get("key_id")
        if not isinstance(item_id, str) or not isinstance(text, str):
            return None
        blob = base64.b64decode(text, validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None

    return item_id, blob, key_id if isinstance(key_id, str) else None


def _fsync_directory(path: str) -> None:
    # Makes the new file's name durable; not every system allows it.
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
