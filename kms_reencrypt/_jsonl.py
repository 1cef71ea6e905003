"""JSON Lines in and out for the ``rotate`` command.

Input, one object per line::

    {"id": "a1", "ciphertext": "<base64>", "encryption_context": {...},
     "source_key_id": "...", "source_encryption_algorithm": "..."}

A line that cannot be read becomes a ``MalformedItem`` naming its line
number, and so a failed outcome in the output: not UTF-8, not a JSON
object, nested too deeply, a number too long to convert, a ``\\u``
escape of a lone surrogate (not text, and not writable as UTF-8), a
member of the wrong type, or longer than ``MAX_LINE_BYTES`` (read no
further than that, so memory stays bounded). Blank lines are skipped; a
UTF-8 byte order mark before the first line is ignored.

Output, one object per line: ``id``, ``status``, ``ciphertext`` (when
ok), ``key_id``, ``source_key_id``, ``encryption_context``, ``line`` and
``error`` (``code`` and ``message``, when failed).

The output file is append-only and written only after the journal has
committed the lines it receives, so on a new run it can be repaired from
the journal: a torn last line is dropped, failed lines are dropped (the
new run tries those items again and writes them afresh), every finished
item is kept once, and finished items whose line never reached the file
are written from the journal.
"""

from __future__ import annotations

import codecs
import contextlib
import glob
import json
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any, Final

from ._encoding import ciphertext_from_base64, ciphertext_to_base64
from ._exceptions import (
    CiphertextEncodingError,
    ConfigurationError,
    KmsReEncryptError,
    MissingParameterError,
    ParameterTypeError,
    WriteBackError,
)
from ._rotate import MalformedItem, RotationItem, RotationOutcome, _SeenIds

__all__ = ["MAX_LINE_BYTES", "OutputFile", "outcome_line", "read_items"]

#: Lines written between two fsyncs of the output file.
FSYNC_EVERY: Final = 4096
#: The longest input line read, newline excluded: a KMS ciphertext is at
#: most 6144 bytes (8192 in base64), so a longer line is not an item.
MAX_LINE_BYTES: Final = 1 << 20
_SKIP_CHUNK = 1 << 16

_OPTIONAL_TEXT = ("source_key_id", "source_encryption_algorithm")


def _malformed(
    line: int, message: str, *, parameter: str, item_id: str | None = None
) -> MalformedItem:
    error_class = (
        MissingParameterError if "missing" in message else ParameterTypeError
    )
    # "input line 6 is not valid JSON", "input line 7: the id is
    # missing": the line is the subject of the sentences that describe it.
    joiner = " " if message.startswith("is ") else ": "
    return MalformedItem(
        error=error_class(
            f"input line {line}{joiner}{message}", parameter=parameter
        ),
        id=item_id,
        line=line,
    )


def _parse(raw: bytes, number: int) -> RotationItem | MalformedItem:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _malformed(number, "is not valid UTF-8.", parameter="line")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        return _malformed(
            number, f"is not valid JSON ({error.msg}).", parameter="line"
        )
    except RecursionError:
        return _malformed(
            number, "is not valid JSON (nested too deeply).", parameter="line"
        )
    except ValueError:  # an integer of more digits than Python converts
        return _malformed(
            number,
            "is not valid JSON (a number too long to read).",
            parameter="line",
        )
    if not isinstance(record, dict):
        return _malformed(number, "is not a JSON object.", parameter="line")
    if "\\u" in text and not _encodable(record):
        return _malformed(
            number,
            "holds a \\u escape of a lone surrogate, which is not text.",
            parameter="line",
        )
    item_id = record.get("id")
    if item_id is None:
        return _malformed(number, 'the "id" field is missing.', parameter="id")
    if not isinstance(item_id, str) or not item_id:
        return _malformed(
            number, "the id must be a non-empty string.", parameter="id"
        )
    ciphertext = record.get("ciphertext")
    if ciphertext is None:
        # The Python API's name, given in a file by mistake.
        hint = (
            ' (a line names it "ciphertext", not "ciphertext_blob")'
            if "ciphertext_blob" in record
            else ""
        )
        return _malformed(
            number,
            f'the "ciphertext" field is missing{hint}.',
            parameter="ciphertext",
            item_id=item_id,
        )
    if not isinstance(ciphertext, str):
        return _malformed(
            number,
            "the ciphertext must be base64 text.",
            parameter="ciphertext",
            item_id=item_id,
        )
    try:
        blob = ciphertext_from_base64(ciphertext, parameter="ciphertext")
    except KmsReEncryptError as error:
        return MalformedItem(
            error=CiphertextEncodingError(
                f"input line {number}: {error}", parameter="ciphertext"
            ),
            id=item_id,
            line=number,
        )
    context = record.get("encryption_context")
    if context is not None and not (
        isinstance(context, dict)
        and all(isinstance(v, str) for v in context.values())
    ):
        return _malformed(
            number,
            "the encryption_context must be an object of strings.",
            parameter="encryption_context",
            item_id=item_id,
        )
    for name in _OPTIONAL_TEXT:
        if record.get(name) is not None and not isinstance(record[name], str):
            return _malformed(
                number,
                f"the {name} must be a string.",
                parameter=name,
                item_id=item_id,
            )

    return RotationItem(
        id=item_id,
        ciphertext_blob=blob,
        encryption_context=context,
        source_key_id=record.get("source_key_id"),
        source_encryption_algorithm=record.get("source_encryption_algorithm"),
        line=number,
    )


def _encodable(record: Any) -> bool:
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_items(stream: IO[bytes]) -> Iterator[RotationItem | MalformedItem]:
    """Read rotation items from a JSON Lines byte stream, lazily.

    Args:
        stream: The input, opened in binary mode.

    Yields:
        One ``RotationItem`` per readable line, one ``MalformedItem`` per
        unreadable one; blank lines yield nothing.
    """
    number = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while True:  # skip to the end of the line, a chunk at a time
                rest = stream.readline(_SKIP_CHUNK)
                if not rest or rest.endswith(b"\n"):
                    break
            yield _malformed(
                number,
                f"is longer than {MAX_LINE_BYTES} bytes; not read.",
                parameter="line",
            )
            continue
        if not raw.strip():
            continue
        yield _parse(raw, number)


def outcome_line(outcome: RotationOutcome) -> str:
    """Return the output line (without newline) for one outcome.

    Args:
        outcome: The outcome.

    Returns:
        Compact JSON; the message of an error never holds payloads.
    """
    record: dict[str, Any] = {"id": outcome.id, "status": str(outcome.status)}
    if outcome.ciphertext_blob is not None:
        record["ciphertext"] = ciphertext_to_base64(outcome.ciphertext_blob)
    record["key_id"] = outcome.key_id
    record["source_key_id"] = outcome.source_key_id
    context = outcome.encryption_context
    record["encryption_context"] = None if context is None else dict(context)
    if outcome.line is not None:
        record["line"] = outcome.line
    if outcome.error is not None:
        record["error"] = {
            "code": outcome.error_code,
            "message": str(outcome.error),
        }

    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


class OutputFile:
    """The append-only JSON Lines output of ``rotate``.

    A failed write (disk full, file too large, I/O error) and an output
    file removed or replaced by another while the run writes it raise
    ``WriteBackError``; the journal holds every line that did not reach
    the file, and the next run writes them.

    Args:
        stream: A text stream to write (the file, or standard output).
        fsync: Sync the file to disk every ``FSYNC_EVERY`` lines and on
            close (files only).
        path: The file's path, to notice that it was removed or replaced
            during the run; None for standard output.
    """

    def __init__(
        self, stream: IO[str], *, fsync: bool, path: str | None = None
    ) -> None:
        self._stream = stream
        self._fsync = fsync
        self._path = path
        self._unsynced = 0
        self._broken = False

    @classmethod
    def open(cls, path: str, *, journal: Any = None) -> OutputFile:
        """Open the output file, repaired for a resumed run.

        Args:
            path: The file.
            journal: The ``Journal`` of a resumed run, or None for a fresh
                run (the file is truncated).

        Returns:
            The output, positioned for appending.

        Raises:
            ConfigurationError: The file cannot be opened or repaired
                (nothing was sent to KMS yet).
        """
        try:
            if journal is None:
                stream = open(path, "w", encoding="utf-8")  # noqa: SIM115
            else:
                _repair(path, journal)
                stream = open(path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as error:
            doing = "opened" if journal is None else "repaired"
            raise ConfigurationError(
                f"the output file {path} cannot be {doing} ({_why(error)}); "
                "nothing was sent to KMS.",
                option="--output",
            ) from error

        return cls(stream, fsync=True, path=path)

    def write_lines(self, lines: list[str]) -> None:
        """Append lines, then flush them to the operating system.

        Raises:
            WriteBackError: The lines could not be written, or the file
                was removed or replaced since it was opened.
        """
        self._check_same_file()
        try:
            self._stream.write("".join(f"{line}\n" for line in lines))
            self._stream.flush()
            self._unsynced += len(lines)
            if self._fsync and self._unsynced >= FSYNC_EVERY:
                os.fsync(self._stream.fileno())
                self._unsynced = 0
        except OSError as error:
            self._broken = True
            raise WriteBackError(
                f"the output file {self._name} could not be written "
                f"({_why(error)})."
            ) from error

    def close(self) -> None:
        """Flush, sync and close (standard output is only flushed).

        After a failed write the file is closed without another attempt:
        the journal holds what did not reach it.

        Raises:
            WriteBackError: The last lines could not be written, or the
                file was removed or replaced during the run.
        """
        if self._broken:
            if self._fsync:
                with contextlib.suppress(OSError):
                    self._stream.close()
            return
        try:
            self._stream.flush()
            if self._fsync:
                os.fsync(self._stream.fileno())
        except OSError as error:
            self._broken = True
            self.close()
            raise WriteBackError(
                f"the output file {self._name} could not be written "
                f"({_why(error)})."
            ) from error
        try:
            self._check_same_file()
        finally:
            if self._fsync:
                self._stream.close()

    @property
    def _name(self) -> str:
        return self._path or str(getattr(self._stream, "name", "output"))

    def _check_same_file(self) -> None:
        if self._path is None:
            return
        try:
            on_disk = os.stat(self._path)
            ours = os.fstat(self._stream.fileno())
            same = (on_disk.st_dev, on_disk.st_ino) == (
                ours.st_dev,
                ours.st_ino,
            )
        except OSError:
            same = False
        if not same:
            self._broken = True
            raise WriteBackError(
                f"the output file {self._path} was removed or replaced "
                "during the run; the lines written to it since are in the "
                "journal only."
            )


def _why(error: OSError) -> str:
    # "No space left on device", without the path the caller names.
    return error.strerror or type(error).__name__


def _repair(path: str, journal: Any) -> None:
    # Keep each finished item's first ok line; drop failed lines and a
    # torn last line; add finished items missing from the file. Written
    # to a temporary file and renamed over, so a crash here loses nothing.
    # Ids are held as 8-byte hashes, so memory stays small for millions.
    done = _SeenIds()
    for item_id in journal.done_ids():
        done.add(item_id)
    kept = _SeenIds()
    directory, name = os.path.split(os.path.abspath(path))
    # A run killed in the middle of its repair leaves its temporary file;
    # the names say whose it is.
    prefix = f".{name}."
    for stale in glob.glob(
        glob.escape(os.path.join(directory, prefix)) + "*.repair"
    ):
        with contextlib.suppress(OSError):
            os.unlink(stale)
    handle, temporary = tempfile.mkstemp(
        dir=directory, prefix=prefix, suffix=".repair"
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            if os.path.exists(path):
                with open(path, "rb") as existing:
                    for raw in existing:
                        if not raw.endswith(b"\n"):
                            break
                        try:
                            record = json.loads(raw)
                        except (ValueError, RecursionError):
                            continue
                        if not isinstance(record, dict):
                            continue
                        item_id = record.get("id")
                        if (
                            record.get("status") == "ok"
                            and isinstance(item_id, str)
                            and item_id in done
                            and item_id not in kept
                        ):
                            kept.add(item_id)
                            out.write(raw.decode("utf-8"))
            for item_id, line in journal.done_outputs():
                if item_id not in kept and line is not None:
                    out.write(f"{line}\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
