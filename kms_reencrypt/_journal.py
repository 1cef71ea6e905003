"""The durable journal of a rotation: which items are done, in SQLite.

One thread (the one consuming the rotation's outcomes) writes it. The
database runs in WAL mode with ``synchronous=NORMAL``: a commit survives
the process being killed (``kill -9``, a crash), and an operating system
crash can lose at most the last commits, whose items a new run rotates
again. Outcomes are committed in small batches; ``on_commit`` receives
the output lines of each batch after it is durable, which is how the
command line keeps its output file consistent with the journal.

A journal is bound to its run: it stores the destination key and,
optionally, a fingerprint of the input, and refuses to serve another.

What it holds: per item the id, status, key ARN, input line number and
error code, and, in ``output``, the output line the command line writes
for it (the new ciphertext and its encryption context, exactly what the
output file holds, so that the file can be rebuilt). Never the old
ciphertext, grant tokens, credentials or error messages
(tests/test_secrets.py).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from ._exceptions import ConfigurationError, WriteBackError

__all__ = ["DEFAULT_COMMIT_EVERY", "DEFAULT_COMMIT_INTERVAL", "Journal"]

#: Outcomes per commit at most.
DEFAULT_COMMIT_EVERY: Final = 128
#: Seconds between commits at most, while outcomes arrive.
DEFAULT_COMMIT_INTERVAL: Final = 0.2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    name TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    key_id TEXT,
    line INTEGER,
    error_code TEXT,
    output TEXT
);
"""

# A done item is never downgraded by a later failure of the same id (a
# duplicate line, for example).
_UPSERT = """
INSERT INTO items (id, status, key_id, line, error_code, output)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    status = excluded.status,
    key_id = excluded.key_id,
    line = excluded.line,
    error_code = excluded.error_code,
    output = excluded.output
WHERE items.status != 'ok'
"""


class Journal:
    """Records each outcome of a rotation, so that a new run can skip
    what is done.

    Args:
        path: The SQLite file; created if missing.
        destination_key_id: The destination of the run; a journal made for
            another destination is refused.
        fingerprint: Identifies the input (for example a hash of its
            first bytes); a journal made for another input is refused.
            None skips the check.
        commit_every: Outcomes per commit at most.
        commit_interval: Seconds between commits at most.
        on_commit: Called with the output lines of each committed batch,
            in order, once they are durable.
        clock: Monotonic seconds; injectable for tests.

    Raises:
        ConfigurationError: The journal belongs to another run, or is not
            a journal.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        destination_key_id: str,
        fingerprint: str | None = None,
        commit_every: int = DEFAULT_COMMIT_EVERY,
        commit_interval: float = DEFAULT_COMMIT_INTERVAL,
        on_commit: Callable[[list[str]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = os.fspath(path)
        self.on_commit = on_commit
        self._commit_every = commit_every
        self._commit_interval = commit_interval
        self._clock = clock
        self._rows: list[tuple[Any, ...]] = []
        self._lines: list[str] = []
        self._last_commit = clock()
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            raise ConfigurationError(
                f"{self.path} is not a rotation journal ({error}).",
                option="journal",
            ) from error
        except ValueError as error:  # a NUL byte or a lone surrogate
            raise ConfigurationError(
                f"{self.path!r} cannot be a journal's path ({error}).",
                option="journal",
            ) from error
        self._bind(destination_key_id, fingerprint)

    def __repr__(self) -> str:
        return f"Journal({self.path!r})"

    def _bind(self, destination: str, fingerprint: str | None) -> None:
        stored = dict(self._db.execute("SELECT name, value FROM run"))
        if not stored:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO run (name, value) VALUES (?, ?)",
                [("destination", destination), ("fingerprint", fingerprint)],
            )
            self._db.execute("COMMIT")
            return
        if stored.get("destination") != destination:
            raise ConfigurationError(
                f"the journal {self.path} was made for a rotation to "
                f"{stored.get('destination')!r}, not {destination!r}; use "
                "another journal file for another destination.",
                option="journal",
            )
        known = stored.get("fingerprint")
        if known and fingerprint and known != fingerprint:
            raise ConfigurationError(
                f"the journal {self.path} was made for another input file; "
                "use another journal file for another input.",
                option="journal",
            )

    @property
    def resumed(self) -> bool:
        """True when an earlier run left outcomes in this journal."""
        row = self._db.execute("SELECT 1 FROM items LIMIT 1").fetchone()
        return row is not None

    def done_ids(self) -> Iterator[str]:
        """Yield the id of every item an earlier run finished."""
        cursor = self._db.execute("SELECT id FROM items WHERE status = 'ok'")
        for (item_id,) in cursor:
            yield item_id

    def done_outputs(self) -> Iterator[tuple[str, str | None]]:
        """Yield ``(id, output line)`` of every finished item."""
        cursor = self._db.execute(
            "SELECT id, output FROM items WHERE status = 'ok'"
        )
        yield from cursor

    def record(self, outcome: Any, line: str | None = None) -> None:
        """Record one outcome; committed with its batch.

        Args:
            outcome: A ``RotationOutcome``.
            line: The output line to write for it once committed.

        Raises:
            WriteBackError: SQLite failed (disk full, file removed).
        """
        if outcome.id is not None:
            self._rows.append(
                (
                    outcome.id,
                    str(outcome.status),
                    outcome.key_id,
                    outcome.line,
                    outcome.error_code,
                    line,
                )
            )
        if line is not None:
            self._lines.append(line)
        full = max(len(self._rows), len(self._lines)) >= self._commit_every
        late = self._clock() - self._last_commit >= self._commit_interval
        if full or late:
            self.flush()

    def flush(self) -> None:
        """Commit what is pending and hand its lines to ``on_commit``.

        Raises:
            WriteBackError: SQLite failed.
        """
        rows, lines = self._rows, self._lines
        self._rows, self._lines = [], []
        self._last_commit = self._clock()
        if rows:
            try:
                self._db.execute("BEGIN")
                self._db.executemany(_UPSERT, rows)
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                # Nothing of the batch was committed, nor handed to
                # on_commit: a new run rotates those items again.
                with contextlib.suppress(sqlite3.Error):
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                raise WriteBackError(
                    f"the journal {self.path} could not be written "
                    f"({type(error).__name__}: {error}); the last "
                    f"{len(rows)} outcomes are not recorded, and a new run "
                    "rotates those items again."
                ) from error
        if lines and self.on_commit is not None:
            self.on_commit(lines)

    def close(self) -> None:
        """Commit what is pending and close the database."""
        try:
            self.flush()
        finally:
            self._db.close()
