"""Hostile input for ``kms_reencrypt.dask`` and ``kms-reencrypt
rotate-parquet``: every public entry point, fuzzed with hypothesis, ends
in a result or in one of its documented typed errors, and in nothing
else (see tests/test_hostile.py, whose strategies and fixtures these
tests share, and docs/reliability.md, "Hostile input").

Collections are computed with Dask's local schedulers (synchronous or
threads), in this process; rows that pass validation go to the local
KMS over HTTP on 127.0.0.1. The command lines run on one in-process
``LocalCluster`` started for the module: ``distributed.LocalCluster`` is
replaced by a stand-in that records the call and raises
``ClusterStarted``, and ``distributed.Client`` by a subclass that
records each client it connects, so that a usage error can be shown to
have started and reached no cluster.
"""

from __future__ import annotations

import base64
import fnmatch
import itertools
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

import dask
import dask.bag as db
import dask.dataframe as dd
import distributed
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import test_hostile as shared
from hypothesis import event, given
from hypothesis import strategies as st

import kms_reencrypt.exceptions
from kms_reencrypt import (
    ClientSettings,
    ConfigurationError,
    KmsReEncryptError,
    RequestValidationError,
    RotationConfig,
    RotationItem,
    RotationOutcome,
    RotationStatus,
    RotationStoppedError,
)
from kms_reencrypt._cli import main
from kms_reencrypt._rotate import SAME_CONTEXT
from kms_reencrypt.dask import (
    OutputNames,
    PartitionJournal,
    TokenBucket,
    rotate_bag,
    rotate_dataframe,
)
from kms_reencrypt.dask._ratecap import MAX_LEASE

# The fixtures of tests/test_hostile.py: one local KMS for the module,
# keys, real ciphertexts and a grant token on it, and an environment
# whose default client talks to it and nothing else.
local_kms = shared.local_kms
world = shared.world
aws_env = shared.aws_env

hostile = shared.hostile
junk = shared.junk
any_text = shared.any_text
_mixed = shared._mixed
_rare = shared._rare
_check_error = shared._check_error
_not_a_running_choice = shared._not_a_running_choice
HUGE_TEXT = shared.HUGE_TEXT
HUGE_BLOB = shared.HUGE_BLOB

#: Every code a failed row may carry: a library error's class name, or
#: the code of a KMS error the library knows.
DOCUMENTED_CODES = frozenset(
    name
    for name, value in vars(kms_reencrypt.exceptions).items()
    if isinstance(value, type) and issubclass(value, KmsReEncryptError)
)
STATUSES = frozenset({"ok", "failed", "dry-run"})

_STRATEGIES: dict[str, Any] = {}
_PLACES = itertools.count()


@pytest.fixture(autouse=True)
def raw_cells() -> Iterator[None]:
    """Object columns stay objects: Dask would otherwise convert text
    cells to Arrow strings, which hold no lone surrogate and no bytes,
    and the library would never see the cells drawn."""
    with dask.config.set({"dataframe.convert-string": False}):
        yield


def _drawn(name: str, make: Callable[[], Any], data: st.DataObject) -> Any:
    # Strategies built once per module (they depend on the world's keys).
    if name not in _STRATEGIES:
        _STRATEGIES[name] = make()
    return data.draw(_STRATEGIES[name])


def _sent(local_kms: Any) -> int:
    count: int = local_kms.stats.requests.get("ReEncrypt", 0)
    return count


def _same(first: Any, second: Any) -> bool:
    """The same cell: the same object, equal, or both NaN."""
    if first is second:
        return True
    if isinstance(first, float) and isinstance(second, float):
        return (math.isnan(first) and math.isnan(second)) or first == second
    try:
        return bool(first == second)
    except Exception:
        return False


def _b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


# -- strategies ----------------------------------------------------------

#: Cells of a wrong kind that pandas and Dask hold as they are (junk's
#: locks, files and functions cannot be hashed into a Dask token).
wrong_cells = st.one_of(
    st.none(),
    st.just(math.nan),
    st.booleans(),
    st.integers(),
    st.floats(),
    any_text,
    st.binary(max_size=32),
    st.sampled_from(["", "\x00", "\ud800", "a\x00b", HUGE_TEXT]),
    st.sampled_from([b"", b"\x00" * 7000, HUGE_BLOB]),
    st.lists(st.one_of(any_text, st.integers()), max_size=3),
    st.dictionaries(any_text, st.one_of(any_text, st.integers()), max_size=3),
    st.builds(shared._Opaque),
)


def _cells(world: dict[str, Any]) -> dict[str, st.SearchStrategy[Any]]:
    """Each column's cells: a valid value three times in four."""
    context = world["context"]
    return {
        "blob": _mixed(
            st.sampled_from(world["blobs"]),
            st.one_of(
                wrong_cells,
                st.sampled_from(world["blobs"]).map(_b64),
                st.binary(max_size=300).map(lambda b: b"\x01\x02\x02\x00" + b),
            ),
        ),
        "ctx": _mixed(
            st.sampled_from([json.dumps(context), context]),
            st.one_of(
                wrong_cells,
                st.just(list(context.items())),
                st.sampled_from(
                    ["[" * 100_000, '{"a": "\\ud800"}', '{"a": 1}', "{"]
                ),
                st.dictionaries(any_text, any_text, max_size=3),
            ),
        ),
        "tenant": _mixed(st.just("acme"), wrong_cells),
        "u": _mixed(st.just("ß"), wrong_cells),
        "src": _mixed(st.just(world["source"]), wrong_cells),
    }


def _rows(world: dict[str, Any]) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Up to 6 rows; an id is its row's own, a duplicate, or wrong."""
    cells = _cells(world)
    ids = _mixed(st.none(), st.one_of(st.just("dup"), wrong_cells))
    row = st.fixed_dictionaries({"id": ids, **cells})
    return st.lists(row, max_size=6).map(
        lambda rows: [
            {**r, "id": f"row-{n}" if r["id"] is None else r["id"]}
            for n, r in enumerate(rows)
        ]
    )


def _pandas(
    rows: list[dict[str, Any]], typed: bool, extra: Any = None
) -> pd.DataFrame:
    """Object columns holding the cells as they are; with ``typed``, the
    ciphertexts as Arrow binary when they are all bytes or null; and a
    column named ``extra`` unless None (one may clash with the added
    columns)."""
    names = ["id", "blob", "ctx", "tenant", "u", "src"]
    columns: dict[Any, Any] = {
        name: pd.Series([r[name] for r in rows], dtype=object)
        for name in names
    }
    blobs = [r["blob"] for r in rows]
    if typed and all(b is None or isinstance(b, bytes) for b in blobs):
        columns["blob"] = pd.array(blobs, dtype=pd.ArrowDtype(pa.binary()))
    if extra is not None:
        columns[extra] = pd.Series(["x"] * len(rows), dtype=object)
    # Names of any kind: Arrow strings hold no lone surrogate.
    frame = pd.DataFrame(dict(enumerate(columns.values())))
    frame.columns = pd.Index(list(columns), dtype=object)
    return frame


def _frames(world: dict[str, Any]) -> st.SearchStrategy[Any]:
    return st.builds(
        lambda rows, typed, extra, partitions: dd.from_pandas(
            _pandas(rows, typed, extra), npartitions=partitions, sort=False
        ),
        _rows(world),
        st.booleans(),
        _mixed(st.none(), st.sampled_from([0, "rotation_status", "\ud800"])),
        st.integers(1, 3),
    )


def _settings(world: dict[str, Any]) -> st.SearchStrategy[Any]:
    # Members of any type; text never names a host on the network.
    return st.one_of(
        st.sampled_from([world["settings"], None]),
        st.builds(
            ClientSettings,
            region_name=_mixed(
                st.sampled_from([None, "us-east-1"]),
                st.one_of(junk, st.just("us east 1")),
            ),
            endpoint_url=_mixed(
                st.just(world["settings"].endpoint_url),
                junk.filter(lambda v: not isinstance(v, str)),
            ),
            profile_name=_mixed(st.none(), st.just("missing-profile")),
            local=_mixed(st.just(True)),
        ),
    )


def _common(world: dict[str, Any]) -> dict[str, st.SearchStrategy[Any]]:
    """The options rotate_dataframe and rotate_bag share."""
    contexts = st.one_of(
        st.sampled_from([SAME_CONTEXT, None, world["context"]]),
        st.dictionaries(any_text, any_text, max_size=3),
    )
    tokens = st.one_of(
        st.just([world["grant"]]),
        st.lists(any_text, max_size=11),
        st.builds(lambda: iter([world["grant"]])),
    )
    return {
        "client": _rare(_settings(world), st.one_of(junk, st.just(print))),
        "prefix": _rare(
            st.sampled_from(["rotation_", "r_", ""]),
            st.one_of(junk, st.sampled_from(["\ud800", "a\x00"])),
        ),
        "destination_encryption_context": _rare(contexts),
        "destination_encryption_algorithm": _rare(
            st.sampled_from([None, "SYMMETRIC_DEFAULT"])
        ),
        "grant_tokens": _rare(tokens),
        "rate": _rare(
            st.one_of(st.none(), st.floats(100, 1e6)),
            st.one_of(junk.filter(_not_a_running_choice), st.just(10**400)),
        ),
        "workers": _rare(
            st.integers(1, 4), junk.filter(_not_a_running_choice)
        ),
        "max_failures": _rare(
            st.one_of(st.integers(0, 5), st.floats(0.01, 0.99))
        ),
        "config": _rare(
            st.builds(RotationConfig, workers=st.integers(1, 4)),
            st.one_of(junk, st.just(RotationConfig(processes=2))),
        ),
    }


#: A dry run, a journal (True: a fresh directory), or neither; now and
#: then both (refused) or a wrong value.
modes = _rare(
    st.sampled_from(
        [
            {},
            {"dry_run": True},
            {"dry_run": True},
            {"dry_run": False},
            {"journal_dir": True},
            {"dry_run": False, "journal_dir": True},
        ]
    ),
    st.one_of(
        st.just({"dry_run": True, "journal_dir": True}),
        st.builds(lambda v: {"dry_run": v}, junk),
        st.builds(
            lambda v: {"journal_dir": v},
            st.one_of(junk, st.sampled_from(["", "a\x00b", "s3://b/j"])),
        ),
    ),
)


def _keys(world: dict[str, Any]) -> st.SearchStrategy[Any]:
    return _rare(
        st.sampled_from([world["destination"], world["alias"]]),
        st.one_of(
            shared._keys(world), junk, st.just("alias/aws/s3"), st.just("")
        ),
    )


def _dataframe_call(world: dict[str, Any]) -> st.SearchStrategy[Any]:
    columns = st.sampled_from(["id", "blob", "ctx", "missing", "\ud800"])
    # The context from one column or from two, or any of either or both.
    contexts = _rare(
        st.sampled_from(
            [
                {"context_column": "ctx"},
                {"context_columns": {"tenant": "tenant", "ü": "u"}},
            ]
        ),
        st.fixed_dictionaries(
            {},
            optional={
                "context_column": st.one_of(junk, columns),
                "context_columns": st.one_of(
                    junk, st.dictionaries(any_text, columns, max_size=2)
                ),
            },
        ),
    )
    call = st.fixed_dictionaries(
        {
            "frame": _rare(
                _frames(world),
                st.one_of(
                    junk,
                    st.builds(_pandas, _rows(world), st.just(False)),
                    st.builds(
                        lambda rows: db.from_sequence(rows or [{}]),
                        _rows(world),
                    ),
                ),
            ),
            "destination_key_id": _keys(world),
            "id_column": _rare(st.just("id"), st.one_of(junk, columns)),
            "ciphertext_column": _rare(
                st.just("blob"), st.one_of(junk, columns)
            ),
        },
        optional={
            "source_key_id_column": _rare(
                st.sampled_from(["src", None]), st.one_of(junk, columns)
            ),
            "source_encryption_algorithm_column": _rare(
                st.none(), st.one_of(junk, columns)
            ),
            "base64": _rare(st.just(False)),
            **_common(world),
        },
    )
    return st.builds(lambda c, x, m: {**c, **x, **m}, call, contexts, modes)


def _records(world: dict[str, Any]) -> st.SearchStrategy[list[Any]]:
    """Up to 6 elements: mostly records, some of any kind."""
    cells = _cells(world)
    record = st.fixed_dictionaries(
        {},
        optional={
            "id": _mixed(st.none(), st.one_of(st.just("dup"), wrong_cells)),
            "ciphertext_blob": cells["blob"],
            "encryption_context": _mixed(
                st.just(world["context"]), st.one_of(wrong_cells)
            ),
            "source_key_id": cells["src"],
            "owner": wrong_cells,
            7: wrong_cells,
        },
    )
    item = st.builds(
        RotationItem,
        id=_mixed(st.text(min_size=1, max_size=5), wrong_cells),
        ciphertext_blob=cells["blob"],
        encryption_context=_mixed(st.just(world["context"]), wrong_cells),
    )
    elements = _mixed(
        st.one_of(record, record, record, item),
        st.one_of(
            wrong_cells.filter(lambda v: not isinstance(v, dict)),
            st.tuples(any_text),
        ),
    )
    return st.lists(elements, max_size=6).map(
        lambda elements: [
            {"id": f"rec-{n}", **e} if isinstance(e, dict) else e
            for n, e in enumerate(elements)
        ]
    )


def _bag_call(world: dict[str, Any]) -> st.SearchStrategy[Any]:
    names = st.sampled_from(
        ["id", "ciphertext_blob", "owner", "missing", "\ud800", "\x00"]
    )
    bags = st.builds(
        lambda records, partitions: db.from_sequence(
            records, npartitions=partitions
        ),
        _records(world).filter(bool),
        st.integers(1, 3),
    )
    call = st.fixed_dictionaries(
        {
            "bag": _rare(
                bags,
                st.one_of(
                    junk,
                    _records(world),
                    st.builds(
                        lambda rows: dd.from_pandas(_pandas(rows, False)),
                        _rows(world),
                    ),
                ),
            ),
            "destination_key_id": _keys(world),
        },
        optional={
            "id_field": _rare(st.just("id"), st.one_of(junk, names)),
            "ciphertext_field": _rare(
                st.just("ciphertext_blob"), st.one_of(junk, names)
            ),
            "context_field": _rare(
                st.sampled_from(["encryption_context", None]),
                st.one_of(junk, names),
            ),
            "context_fields": _rare(
                st.sampled_from([None, {"tenant": "owner"}]),
                st.one_of(junk, st.dictionaries(any_text, names, max_size=2)),
            ),
            "source_key_id_field": _rare(
                st.sampled_from(["source_key_id", None]),
                st.one_of(junk, names),
            ),
            "source_encryption_algorithm_field": _rare(
                st.sampled_from(["source_encryption_algorithm", None]),
                st.one_of(junk, names),
            ),
            "base64": _rare(st.just(False)),
            **_common(world),
        },
    )
    return st.builds(lambda c, m: {**c, **m}, call, modes)


# -- checks --------------------------------------------------------------


def _prepared(call: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    if call.get("journal_dir") is True:
        call["journal_dir"] = tmp_path / f"journal-{next(_PLACES)}"
    return call


def _refused_at_call(
    error: KmsReEncryptError, local_kms: Any, before: int
) -> None:
    """A refusal at the call: documented, named, and nothing sent."""
    _check_error(error)
    at_fault = getattr(error, "option", None) or getattr(
        error, "parameter", None
    )
    assert isinstance(at_fault, str)
    assert at_fault
    assert before == local_kms.stats.total_requests, "a refused call sent"
    event(f"refused: {at_fault}")


#: What computing may raise besides RotationStoppedError: a worker that
#: cannot build its client, or a journal directory it cannot use.
COMPUTE_OPTIONS = frozenset(
    {"region_name", "endpoint_url", "profile_name", "journal_dir"}
)


def _computed(rotated: Any, scheduler: str = "sync") -> Any:
    """The computed collection, or None when computing raised one of the
    errors it may raise."""
    refused: ConfigurationError | None = None
    try:
        return rotated.compute(scheduler=scheduler)
    except RotationStoppedError as error:
        _check_error(error)
        event("stopped")
    except ConfigurationError as error:
        refused = error
    if refused is not None:
        _check_error(refused)
        assert refused.option in COMPUTE_OPTIONS, (
            refused.option,
            str(refused),
        )
        event(f"computing refused: {refused.option}")
    return None


#: Dask's local schedulers: this thread, or a pool of threads.
schedulers = st.sampled_from(["sync", "threads"])


def _check_results(
    results: list[dict[str, Any]],
    names: tuple[str, str, str, str, str],
    *,
    dry_run: bool,
    b64: bool,
) -> None:
    """Each row's added fields: a status, and what goes with it."""
    ciphertext, key_id, status, error, message = names
    for result in results:
        assert result[status] in STATUSES, result[status]
        event(result[status])
        if result[status] == "ok":
            assert not dry_run
            assert isinstance(result[ciphertext], str if b64 else bytes)
            assert result[key_id].startswith("arn:aws:kms:")
            assert result[error] is None
        elif result[status] == "failed":
            assert result[error] in DOCUMENTED_CODES, result[error]
            assert isinstance(result[message], str)
            assert result[message]
            assert result[ciphertext] is None
            event(f"failed: {result[error]}")
        else:
            assert dry_run
            assert result[ciphertext] is None


def _check_rerun(
    rotated: Any,
    first: pd.DataFrame,
    names: tuple[str, str, str, str, str],
    local_kms: Any,
) -> None:
    """Computed again, a rotation with a journal gives every row the
    same status, an ok row the same new ciphertext, and sends nothing
    for the rows that were ok."""
    sent = _sent(local_kms)
    again = _computed(rotated)
    assert again is not None
    ciphertext, _, status, _, _ = names
    assert list(first[status]) == list(again[status])
    ok = first[status] == "ok"
    assert list(first[ciphertext][ok]) == list(again[ciphertext][ok])
    assert _sent(local_kms) - sent <= int((~ok).sum())
    event("rerun from the journal")


# -- rotate_dataframe and rotate_bag -------------------------------------


@hostile(150)
@given(data=st.data())
def test_rotate_dataframe_rotates_every_row_or_refuses_the_call(
    local_kms: Any,
    world: dict[str, Any],
    aws_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    data: st.DataObject,
) -> None:
    """``rotate_dataframe`` with any frame and any option values either
    refuses the call (ConfigurationError, RequestValidationError) having
    sent nothing, or computes one row per input row, in order, with
    every original column as it was and a status: ok with a new
    ciphertext, failed with a documented code, or dry-run in a dry run.
    Computing may raise only RotationStoppedError, or ConfigurationError
    for a worker's client or the journal directory."""
    monkeypatch.chdir(tmp_path)
    call = _prepared(
        _drawn("dataframe", lambda: _dataframe_call(world), data), tmp_path
    )
    frame = call.pop("frame")
    before = local_kms.stats.total_requests

    try:
        rotated = rotate_dataframe(frame, **call)
    except (ConfigurationError, RequestValidationError) as error:
        _refused_at_call(error, local_kms, before)
        return
    sent = _sent(local_kms)
    result = _computed(rotated, data.draw(schedulers))
    if result is None:
        return

    given_rows = frame.compute(scheduler="sync")
    assert len(given_rows) == len(result)
    assert list(given_rows.columns) == list(result.columns)[:-5]
    for name in given_rows.columns:
        assert all(
            _same(a, b)
            for a, b in zip(given_rows[name], result[name], strict=True)
        ), name
    names = OutputNames(prefix=call.get("prefix", "rotation_")).all()
    dry_run = call.get("dry_run", False)
    _check_results(
        result[list(names)].to_dict("records"),
        names,
        dry_run=dry_run,
        b64=False,
    )
    ok = int((result[names[2]] == "ok").sum())
    assert ok <= _sent(local_kms) - sent
    if dry_run:
        assert sent == _sent(local_kms), "a dry run sent"
    if call.get("journal_dir") is not None:
        _check_rerun(rotated, result, names, local_kms)


@hostile(120)
@given(data=st.data())
def test_rotate_bag_returns_a_record_per_element_or_refuses_the_call(
    local_kms: Any,
    world: dict[str, Any],
    aws_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    data: st.DataObject,
) -> None:
    """``rotate_bag`` with any elements (records with fields of any type,
    RotationItems, and elements that are not records) and any option
    values: refused at the call having sent nothing, or one dict per
    element, in order, holding the record's own fields and a status (an
    element that is not a record is a failed one)."""
    monkeypatch.chdir(tmp_path)
    call = _prepared(_drawn("bag", lambda: _bag_call(world), data), tmp_path)
    bag = call.pop("bag")
    before = local_kms.stats.total_requests

    try:
        rotated = rotate_bag(bag, **call)
    except (ConfigurationError, RequestValidationError) as error:
        _refused_at_call(error, local_kms, before)
        return
    sent = _sent(local_kms)
    result = _computed(rotated, data.draw(schedulers))
    if result is None:
        return

    elements = bag.compute(scheduler="sync")
    names = OutputNames(prefix=call.get("prefix", "rotation_")).all()
    assert len(elements) == len(result)
    for element, record in zip(elements, result, strict=True):
        assert isinstance(record, dict)
        assert set(names) <= set(record)
        if isinstance(element, dict):
            for key, value in element.items():
                if key not in names:
                    assert _same(value, record[key]), key
        elif not isinstance(element, RotationItem):
            assert set(names) == set(record)
            assert "failed" == record[names[2]]
            assert "ParameterTypeError" == record[names[3]]
    _check_results(
        result, names, dry_run=call.get("dry_run", False), b64=False
    )
    if call.get("dry_run", False):
        assert sent == _sent(local_kms), "a dry run sent"


# -- the public classes --------------------------------------------------

outcomes = st.builds(
    RotationOutcome,
    id=_mixed(st.sampled_from(["a", "b", "\ud800", "n\x00l", HUGE_TEXT])),
    status=_mixed(st.sampled_from(RotationStatus)),
    ciphertext_blob=_mixed(st.binary(max_size=40)),
    key_id=_mixed(st.sampled_from(["arn:aws:kms:us-east-1:1:key/k", None])),
)


@hostile(60)
@given(data=st.data())
def test_partition_journal_keeps_what_it_recorded_or_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: st.DataObject
) -> None:
    """``PartitionJournal`` with any arguments refuses them with
    ConfigurationError, or records any outcomes (refusing those that are
    not outcomes, or ok ones without their parts) and, opened again with
    the same arguments, gives back exactly the ok outcomes it kept."""
    place = tmp_path / f"place-{next(_PLACES)}"
    place.mkdir()
    monkeypatch.chdir(place)
    (place / "a-file").write_text("not a directory\n")
    arguments = data.draw(
        st.fixed_dictionaries(
            {
                "root": _mixed(
                    st.sampled_from(["journal", "nested/journal"]).map(Path),
                    st.one_of(junk, st.sampled_from(["a-file", "", "a\x00b"])),
                ),
                "partition": _mixed(
                    st.integers(0, 10**6), st.one_of(junk, st.just(True))
                ),
                "destination_key_id": _mixed(st.just("alias/new")),
                "fingerprint": _mixed(st.just("f1")),
            },
            optional={
                "commit_every": _mixed(st.integers(1, 3)),
                "commit_interval": _mixed(st.sampled_from([0, 0.0, 10.0])),
                "clock": _mixed(st.just(lambda: 5.0)),
            },
        )
    )

    try:
        journal = PartitionJournal(**arguments)
    except ConfigurationError as error:
        _check_error(error)
        event(f"refused: {error.option}")
        return
    assert repr(journal).startswith("PartitionJournal(")
    kept: dict[str, tuple[bytes, str | None]] = {}
    for outcome in data.draw(st.lists(_mixed(outcomes), max_size=5)):
        refused = None
        try:
            journal.record(outcome)
        except ConfigurationError as error:
            refused = error
        if refused is not None:
            _check_error(refused)
            assert "outcome" == refused.option
            event("outcome refused")
            continue
        if outcome.status is RotationStatus.OK and outcome.id is not None:
            kept.setdefault(
                outcome.id, (outcome.ciphertext_blob, outcome.key_id)
            )
    for item_id in data.draw(st.lists(junk, max_size=3)):
        assert journal.done(item_id) is None
    journal.close()
    journal.close()

    again = PartitionJournal(**arguments)
    assert kept == {
        item_id: again.done(item_id) for item_id in again.done_ids()
    }
    assert again.resumed == bool(kept)
    again.close()


@hostile(80)
@given(
    rate=_mixed(st.one_of(st.none(), st.floats(0.001, 1e9))),
    leases=st.lists(
        st.tuples(
            _mixed(st.integers(-5, 10**6), st.just(10**100)),
            _mixed(st.sampled_from(["t1", "t2", ""])),
            st.booleans(),
        ),
        max_size=6,
    ),
)
def test_token_bucket_leases_bounded_slots_or_refuses(
    rate: Any, leases: list[tuple[Any, Any, bool]]
) -> None:
    """``TokenBucket`` with any rate, and leases of any size for any
    task, with throttles between them: ConfigurationError, or 1 to
    MAX_LEASE slots with a finite wait; its stats are JSON; out of a Dask
    worker, ``address()`` is a ConfigurationError."""
    refused: ConfigurationError | None = None
    try:
        bucket = TokenBucket(rate)
    except ConfigurationError as error:
        refused = error
    if refused is not None:
        _check_error(refused)
        assert "rate" == refused.option
        return
    for wanted, task, throttle in leases:
        try:
            granted, wait, interval = bucket.lease(wanted, task)
        except ConfigurationError as error:
            refused = error
        if refused is not None:
            _check_error(refused)
            assert refused.option in ("wanted", "task")
            refused = None
            continue
        assert type(granted) is int
        assert 1 <= granted <= MAX_LEASE
        assert 0 <= wait < math.inf
        assert 0 <= interval < math.inf
        if throttle:
            bucket.throttled()
    json.dumps(bucket.stats())
    with pytest.raises(ConfigurationError, match="no Dask worker"):
        bucket.address()


@hostile(100)
@given(prefix=st.one_of(junk, any_text))
def test_output_names_are_five_distinct_texts_or_refused(prefix: Any) -> None:
    """``OutputNames`` with any prefix: ConfigurationError, or five
    distinct names, each the prefix and a fixed suffix."""
    refused: ConfigurationError | None = None
    try:
        names = OutputNames(prefix=prefix)
    except ConfigurationError as error:
        refused = error
    if refused is not None:
        _check_error(refused)
        assert "prefix" == refused.option
        return
    assert 5 == len(set(names.all()))
    for name in names.all():
        assert name.startswith(prefix)
        name.encode("utf-8")
        assert "\x00" not in name
    assert names.status == f"{prefix}status"


# -- the rotate-parquet command line -------------------------------------


class ClusterStarted(Exception):
    """The command got past its checks and asked for a local cluster."""


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """One in-process cluster for the module's command lines; no client
    of this process is connected to it (the commands connect their own)."""
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        protocol="tcp://",  # an address the command accepts
        host="127.0.0.1",
        dashboard_address=None,
        # Its HTTP server on loopback, on a free port.
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def clusters(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """The clusters a command started and the clients it connected."""
    seen: dict[str, list[Any]] = {"started": [], "connected": []}
    real_client = distributed.Client

    def start(*args: Any, **kwargs: Any) -> Any:
        seen["started"].append(kwargs)
        raise ClusterStarted

    class Recording(real_client):  # type: ignore[misc, valid-type]
        # A subclass: Dask looks its class methods up on it.
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            seen["connected"].append(args)

    monkeypatch.setattr(distributed, "LocalCluster", start)
    monkeypatch.setattr(distributed, "Client", Recording)
    return seen


@pytest.fixture(scope="module")
def dataset(world: dict[str, Any], tmp_path_factory: Any) -> Path:
    """A directory ``in`` of two Parquet files (rows with the world's
    ciphertexts, as binary and as base64 text, their context as JSON and
    as two columns, their source key), a one-file dataset and a text
    file: copied into a fresh directory for each command line."""
    root = tmp_path_factory.mktemp("parquet-template")
    blobs = world["blobs"]
    table = pa.table(
        {
            "id": [f"row-{n}" for n in range(4)],
            "blob": pa.array([blobs[n % 3] for n in range(4)], pa.binary()),
            "b64": [_b64(blobs[n % 3]) for n in range(4)],
            "ctx": [json.dumps(world["context"])] * 4,
            "tenant": ["acme"] * 4,
            "u": ["ß"] * 4,
            "src": [world["source"]] * 4,
            "old_status": ["ok"] * 4,  # --prefix old_ would clash
        }
    )
    (root / "in").mkdir()
    pq.write_table(table.slice(0, 2), root / "in" / "a.parquet")
    pq.write_table(table.slice(2), root / "in" / "b.parquet")
    pq.write_table(table, root / "file.parquet")
    (root / "notes.txt").write_text("not parquet\n")
    return root


PARQUET_PATHS = [
    "in",
    "file.parquet",
    "in/*.parquet",
    "missing",
    "notes.txt",
    "out",
    "out.journal",
    "in/a.parquet",
    "nodir/x",
    "r.json",
    "",
    "a\x00b",
    "\udcff",
    "-",
]
PARQUET_VALUES = [
    *PARQUET_PATHS,
    "id",
    "blob",
    "b64",
    "ctx",
    "tenant=tenant",
    "ü=u",
    "=x",
    "k=",
    "0",
    "1",
    "-1",
    "nan",
    "inf",
    "5%",
    "2.5",
    '{"a": "b"}',
    "[1]",
    '{"a": "\\ud800"}',
    "x",
    "tcp://",
    "inproc://x",
    "ucx://127.0.0.1:1",
    "http://127.0.0.1:9",
    "alias/missing",
    "alias/aws/s3",
    "arn:aws:kms:eu-west-1:111122223333:key/x",
    "us east 1",
]
PARQUET_OPTIONS = [
    "--to",
    "--input",
    "--output",
    "--column",
    "--id-column",
    "--context-column",
    "--context-field",
    "--source-key-id-column",
    "--base64",
    "--prefix",
    "--dask-scheduler",
    "--journal-dir",
    "--dry-run",
    "--rate",
    "--workers",
    "--max-failures",
    "--destination-context",
    "--no-destination-context",
    "--endpoint-url",
    "--region",
    "--profile",
    "--local",
    "--report",
    "--help",
    "--bogus",
]


def _parquet_argv(
    world: dict[str, Any], local_kms: Any, scheduler: str
) -> st.SearchStrategy[list[str]]:
    """``rotate-parquet`` with its usual arguments (on the module's
    cluster) and options with plausible or wrong values; or a soup."""
    value = st.one_of(
        st.sampled_from(PARQUET_VALUES),
        st.sampled_from([world["destination"], local_kms.endpoint_url]),
        shared.free_text,
    )

    def pick(good: list[str], bad: list[str]) -> st.SearchStrategy[str]:
        return _mixed(st.sampled_from(good), st.sampled_from(bad))

    columns = ["id", "blob", "b64", "ctx", "missing", "", "\udcff"]
    typed = {
        "--to": pick([world["destination"], world["alias"]], ["alias/x"]),
        "--input": pick(["in", "file.parquet", "in/*.parquet"], PARQUET_PATHS),
        "--output": pick(["out", "out2"], PARQUET_PATHS),
        "--column": pick(["blob"], columns),
        "--id-column": pick(["id"], columns),
        "--context-column": pick(["ctx"], columns),
        "--context-field": pick(["tenant=tenant", "ü=u"], ["k=missing"]),
        "--source-key-id-column": pick(["src"], columns),
        "--prefix": pick(["r_", "rotation_"], ["", "old_", "\udcff", "a\x00"]),
        "--dask-scheduler": pick(
            [scheduler],
            ["x", "tcp://127.0.0.1:1", "\udcff", "ucx://127.0.0.1:1"],
        ),
        "--journal-dir": pick(["j"], PARQUET_PATHS),
        "--rate": pick(["500"], ["0", "-1", "nan", "inf", "1e400"]),
        "--workers": pick(["1", "2"], ["0", "2000", "1.5"]),
        "--max-failures": pick(["0", "3", "5%", "0.5"], ["2.5", "-1"]),
        "--destination-context": pick(
            [json.dumps(world["context"])], ['{"a": 1}', "[]"]
        ),
        "--endpoint-url": pick([local_kms.endpoint_url], ["not a url"]),
        "--region": pick([local_kms.region], ["eu-west-1", "x y"]),
        "--profile": pick(["missing-profile"], ["missing-profile"]),
        "--report": pick(["r.json"], PARQUET_PATHS),
    }
    flags = ["--base64", "--dry-run", "--no-destination-context", "--local"]
    flags += ["-v"]

    def option(name: str) -> st.SearchStrategy[list[str]]:
        if name in flags:
            return st.just([name])
        return _mixed(typed[name], value, odds=8).map(lambda v: [name, v])

    options = st.sampled_from([*typed, *flags]).flatmap(option)
    usual = [
        "rotate-parquet",
        "--to",
        world["destination"],
        "--input",
        "in",
        "--output",
        "out",
        "--column",
        "blob",
        "--id-column",
        "id",
        "--endpoint-url",
        local_kms.endpoint_url,
        "--context-column",
        "ctx",
        "--dask-scheduler",
        scheduler,
    ]
    command = st.lists(options, max_size=4).map(
        lambda chosen: [*usual, *itertools.chain.from_iterable(chosen)]
    )
    soup = st.builds(
        lambda name, rest: [name, *rest],
        st.sampled_from(["rotate-parquet", "rotate-parquet", "rotate"]),
        st.lists(
            st.one_of(st.sampled_from(PARQUET_OPTIONS), value), max_size=12
        ),
    )
    return st.one_of(command, command, command, command, soup)


def _under(path: Path, roots: set[Path]) -> bool:
    """``path`` is one of ``roots``, inside one, or matches one given as
    a pattern (``in/*.parquet``)."""
    return any(
        path == root
        or root in path.parents
        or fnmatch.fnmatchcase(str(path), str(root))
        for root in roots
    )


def _named(argv: list[str], work: Path, options: tuple[str, ...]) -> set[Path]:
    """The paths a command line gives to any of ``options``."""
    return {
        Path(os.path.normpath(work / value))
        for option, value in itertools.pairwise(argv)
        if option in options
    }


def _tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


@hostile(80)
@given(data=st.data())
def test_any_rotate_parquet_command_line_exits_with_a_documented_status(
    local_kms: Any,
    world: dict[str, Any],
    aws_env: None,
    scheduler: str,
    clusters: dict[str, list[Any]],
    dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    data: st.DataObject,
) -> None:
    """``kms-reencrypt rotate-parquet`` with random arguments: exit status
    0 to 3, argparse's SystemExit (2, or 0 for --help), or, for a valid
    command without ``--dask-scheduler``, the start of a local cluster
    (stopped there by the stand-in). A status of 2 printed an error,
    sent nothing, started and connected no cluster and created no file
    or directory; the input is never changed."""
    work = tmp_path / f"run-{next(_PLACES)}"
    shutil.copytree(dataset, work)
    monkeypatch.chdir(work)
    argv = _drawn(
        "parquet-argv",
        lambda: _parquet_argv(world, local_kms, scheduler),
        data,
    )
    before_tree = _tree(work)
    # Every Parquet file but those the command is told to write (a
    # --report naming one overwrites it, as asked), the input always.
    written = _named(argv, work, ("--report", "--output", "--journal-dir"))
    given = _named(argv, work, ("--input",))
    inputs = {
        path: path.read_bytes()
        for path in work.rglob("*.parquet")
        if _under(path, given) or not _under(path, written)
    }
    clusters["started"].clear()
    clusters["connected"].clear()
    capsys.readouterr()
    before = local_kms.stats.total_requests

    try:
        with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
            status: object = main(argv)
    except SystemExit as exit_:
        status = exit_.code or 0
    except ClusterStarted:
        status = "local cluster"
    err = capsys.readouterr().err

    event(f"status {status}")
    assert status in (0, 1, 2, 3, "local cluster"), status
    assert inputs == {p: p.read_bytes() for p in inputs}
    if status == "local cluster":
        assert "--dask-scheduler" not in argv or "" in argv
    if status == 2:
        assert "error:" in err
        assert before == local_kms.stats.total_requests, "status 2 sent"
        assert [] == clusters["started"]
        assert [] == clusters["connected"]
        assert before_tree == _tree(work)


# -- what the fuzzing found: each escape, fixed --------------------------


@pytest.fixture
def small(world: dict[str, Any]) -> dict[str, Any]:
    """A valid rotate_dataframe call on three good rows, and a valid
    rotate_bag call on the same rows as records."""
    rows = [
        {
            "id": f"row-{n}",
            "blob": blob,
            "ctx": json.dumps(world["context"]),
            "tenant": "acme",
            "u": "ß",
            "src": world["source"],
        }
        for n, blob in enumerate(world["blobs"])
    ]
    records = [
        {
            "id": row["id"],
            "ciphertext_blob": row["blob"],
            "encryption_context": world["context"],
        }
        for row in rows
    ]
    return {
        "frame": dd.from_pandas(_pandas(rows, True), npartitions=2),
        "bag": db.from_sequence(records, npartitions=2),
        "rows": rows,
        "records": records,
        "common": {
            "destination_key_id": world["destination"],
            "client": world["settings"],
        },
        "columns": {
            "id_column": "id",
            "ciphertext_column": "blob",
            "context_column": "ctx",
        },
    }


OTHER_REGION_KEY = (
    "arn:aws:kms:eu-west-1:111122223333:key/"
    "1234abcd-12ab-34cd-56ef-1234567890ab"
)
#: (which call, the wrong argument, the class refusing it, what it names)
REFUSED: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("frame", {"frame": 5}, ConfigurationError, "frame"),
    ("frame", {"frame": "pandas"}, ConfigurationError, "frame"),
    ("bag", {"bag": "records"}, ConfigurationError, "bag"),
    ("frame", {"id_column": ["id"]}, ConfigurationError, "id_column"),
    (
        "frame",
        {"source_key_id_column": {"a": 1}},
        ConfigurationError,
        "source_key_id_column",
    ),
    ("bag", {"id_field": ["id"]}, ConfigurationError, "id_field"),
    ("bag", {"context_field": 7}, ConfigurationError, "context_field"),
    ("frame", {"id_column": "blob"}, ConfigurationError, "id_column"),
    ("frame", {"prefix": 5}, ConfigurationError, "prefix"),
    ("bag", {"prefix": "\ud800"}, ConfigurationError, "prefix"),
    (
        "frame",
        {"destination_encryption_context": 5},
        ConfigurationError,
        "destination_encryption_context",
    ),
    (
        "bag",
        {"destination_encryption_context": {"a": "\ud800"}},
        RequestValidationError,
        "DestinationEncryptionContext",
    ),
    (
        "frame",
        {"destination_encryption_algorithm": 5},
        RequestValidationError,
        "DestinationEncryptionAlgorithm",
    ),
    ("frame", {"dry_run": "no"}, ConfigurationError, "dry_run"),
    ("bag", {"grant_tokens": 5}, ConfigurationError, "grant_tokens"),
    (
        "frame",
        {"grant_tokens": ["t" * 9000]},
        RequestValidationError,
        "GrantTokens",
    ),
    ("frame", {"journal_dir": 5}, ConfigurationError, "journal_dir"),
    ("bag", {"journal_dir": "a\x00b"}, ConfigurationError, "journal_dir"),
    ("frame", {"journal_dir": "s3://b/j"}, ConfigurationError, "journal_dir"),
    (
        "frame",
        {"client": ClientSettings(region_name=["us-east-1"])},  # type: ignore[arg-type]
        ConfigurationError,
        "client",
    ),
    (
        "bag",
        {"destination_key_id": OTHER_REGION_KEY},
        RequestValidationError,
        "DestinationKeyId",
    ),
    (
        "frame",
        {"destination_key_id": "alias/aws/s3"},
        RequestValidationError,
        "DestinationKeyId",
    ),
    ("frame", {"rate": 10**400}, ConfigurationError, "rate"),
]


@pytest.mark.parametrize(
    ("kind", "wrong", "refusal", "named"),
    REFUSED,
    ids=lambda v: ascii(v)[:40] if isinstance(v, dict) else None,
)
def test_a_wrong_argument_is_refused_at_the_call_naming_it(
    local_kms: Any,
    small: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    wrong: dict[str, Any],
    refusal: type[Exception],
    named: str,
) -> None:
    """Arguments that escaped as TypeError or AttributeError at the call
    (a frame or bag of another kind, unhashable names), or that every
    task of the computation refused, or mishandled (an iterator of grant
    tokens, a URL journal made a local directory "s3:"), or a name that
    would put ciphertexts in the id column: each is refused at the call,
    naming the argument, having sent nothing and created nothing."""
    monkeypatch.chdir(tmp_path)
    call = {**small["common"], **wrong}
    if kind == "frame":
        call = {**small["common"], **small["columns"], **wrong}
    if wrong.get("frame") == "pandas":
        call["frame"] = _pandas(small["rows"], False)
    if wrong.get("bag") == "records":
        call["bag"] = small["records"]
    before = local_kms.stats.total_requests

    if kind == "frame":
        collection, rotate = (
            call.pop("frame", small["frame"]),
            rotate_dataframe,
        )
    else:
        collection, rotate = call.pop("bag", small["bag"]), rotate_bag
    with pytest.raises(refusal) as raised:
        rotate(collection, **call)

    error: Any = raised.value
    assert named == getattr(error, "option", None) or named == getattr(
        error, "parameter", None
    )
    _check_error(error)
    assert before == local_kms.stats.total_requests
    assert [] == list(tmp_path.iterdir())


def test_rows_that_escaped_while_computing_are_failed_rows(
    local_kms: Any, world: dict[str, Any], small: dict[str, Any]
) -> None:
    """A context of 100,000 nested brackets (RecursionError), a context
    column holding a dict (made into the text of its repr) and an id of
    5,000 digits (ValueError) each fail their row alone; the other rows
    are rotated."""
    rows = [dict(row) for row in small["rows"]]
    rows[0]["ctx"] = "[" * 100_000
    frame = dd.from_pandas(_pandas(rows, True), npartitions=1)
    rotated = rotate_dataframe(
        frame, **small["common"], **small["columns"]
    ).compute(scheduler="sync")
    rows = [dict(row) for row in small["rows"]]
    rows[1]["tenant"] = {"not": "text"}
    by_columns = rotate_dataframe(
        dd.from_pandas(_pandas(rows, True), npartitions=1),
        **small["common"],
        id_column="id",
        ciphertext_column="blob",
        context_columns={"tenant": "tenant", "ü": "u"},
    ).compute(scheduler="sync")
    records = [dict(record) for record in small["records"]]
    records[2]["id"] = 10**5000
    bag = db.from_delayed([dask.delayed(lambda: records)()])
    from_bag = rotate_bag(bag, **small["common"]).compute(scheduler="sync")

    for result, bad in ((rotated, 0), (by_columns, 1)):
        expected = ["ok"] * 3
        expected[bad] = "failed"
        assert expected == list(result["rotation_status"])
        assert "ParameterTypeError" == result["rotation_error"][bad]
    assert ["ok", "ok", "failed"] == [r["rotation_status"] for r in from_bag]
    assert "ParameterTypeError" == from_bag[2]["rotation_error"]


def test_elements_that_are_not_records_are_failed_records(
    local_kms: Any, small: dict[str, Any]
) -> None:
    """A Bag element that is not a mapping used to stop the whole
    computation with ConfigurationError; it is a failed record of its
    own now, holding only the five added fields, and the records around
    it are rotated."""
    elements = [
        small["records"][0],
        ["a", "list"],
        "text",
        small["records"][1],
    ]

    result = rotate_bag(
        db.from_sequence(elements, npartitions=1), **small["common"]
    ).compute(scheduler="sync")

    names = OutputNames().all()
    statuses = [r["rotation_status"] for r in result]
    assert ["ok", "failed", "failed", "ok"] == statuses
    for record in result[1:3]:
        assert set(names) == set(record)
        assert "ParameterTypeError" == record["rotation_error"]
        assert "not a mapping" in record["rotation_error_message"]


def test_grant_tokens_given_as_an_iterator_are_sent(
    local_kms: Any, small: dict[str, Any]
) -> None:
    """The check of ``grant_tokens`` used up an iterator, and the rows
    were sent with no token at all; the tokens are listed once now, and
    a token KMS does not know fails each row."""
    result = rotate_dataframe(
        small["frame"],
        **small["common"],
        **small["columns"],
        grant_tokens=iter(["not-a-grant-token"]),
    ).compute(scheduler="sync")

    assert {"InvalidGrantTokenException"} == set(result["rotation_error"])


def test_journal_and_bucket_misuse_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    """What escaped from ``PartitionJournal`` and ``TokenBucket``: an
    OSError for a root that is a file, an AttributeError for a record
    that is no outcome, an AssertionError for an ok outcome without its
    ciphertext, a TypeError for a rate of text, a lease of 10**100 slots
    that never returned when uncapped, and a ValueError for the address
    out of a worker."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigurationError, match="cannot be created"):
        PartitionJournal(
            tmp_path / "file",
            partition=0,
            destination_key_id="alias/new",
            fingerprint="f",
        )
    journal = PartitionJournal(
        tmp_path, partition=0, destination_key_id="alias/new", fingerprint="f"
    )
    with pytest.raises(ConfigurationError, match="RotationOutcome"):
        journal.record(5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="needs a str id"):
        journal.record(RotationOutcome(id="a", status=RotationStatus.OK))
    assert journal.done(["a"]) is None  # type: ignore[arg-type]
    journal.close()
    with pytest.raises(ConfigurationError, match="rate"):
        TokenBucket("100")  # type: ignore[arg-type]
    granted, wait, _ = TokenBucket(None).lease(10**100, "t")
    assert (MAX_LEASE, 0.0) == (granted, wait)
    with pytest.raises(ConfigurationError, match="no Dask worker"):
        TokenBucket(1.0).address()


PARQUET_MISUSE: list[list[str]] = [
    ["--dask-scheduler", "x"],
    ["--dask-scheduler", "\udcff"],
    ["--dask-scheduler", "inproc://x"],
    ["--dask-scheduler", "ucx://127.0.0.1:1"],
    ["--dask-scheduler", "tcp://127.0.0.1:1"],
    ["--column", "missing"],
    ["--id-column", "blob"],
    ["--prefix", "old_"],
    ["--prefix", "\udcff"],
    ["--region", "{region}", "--to", OTHER_REGION_KEY],
    ["--input", "http://127.0.0.1:9/in"],
    ["--output", "inproc://x/out"],
    ["--output", "http://127.0.0.1:9/out"],
    ["--output", "in/*.parquet"],
    ["--output", "out-?"],
    ["--journal-dir", "s3://bucket/journal"],
]


@pytest.mark.parametrize("misuse", PARQUET_MISUSE, ids=ascii)
def test_rotate_parquet_misuse_found_late_or_not_at_all_is_a_usage_error(
    local_kms: Any,
    world: dict[str, Any],
    aws_env: None,
    scheduler: str,
    clusters: dict[str, list[Any]],
    dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    misuse: list[str],
) -> None:
    """A scheduler address that is none (ValueError, TypeError, an
    AssertionError after 10 s) or that nothing answers (OSError); a
    column the input lacks, an id column that is the ciphertexts, a
    prefix that clashes or cannot be a column name and a destination in
    another Region (found only once a cluster ran); an input on a file
    system whose package is missing (ImportError); an output on a file
    system that cannot be used (found when the workers wrote); an output
    holding "*", which Dask writes as a file number (in/*.parquet went
    into the input; or an AssertionError), or "?", which it reads back
    for the summary as a pattern; a journal URL (made a local directory
    "s3:"): each is exit status 2 with an error, having sent nothing,
    started or connected no cluster, and created nothing."""
    work = tmp_path / "work"
    shutil.copytree(dataset, work)
    monkeypatch.chdir(work)
    names = {"{region}": local_kms.region}
    argv = [
        "rotate-parquet",
        "--to",
        world["destination"],
        "--input",
        "in",
        "--output",
        "out",
        "--column",
        "blob",
        "--id-column",
        "id",
        "--context-column",
        "ctx",
        "--endpoint-url",
        local_kms.endpoint_url,
        "--dask-scheduler",
        scheduler,
        "--report",
        "r.json",
        *(names.get(part, part) for part in misuse),
    ]
    tree = _tree(work)
    capsys.readouterr()
    before = local_kms.stats.total_requests

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        status = main(argv)
    err = capsys.readouterr().err

    assert 2 == status, err
    assert "error:" in err
    assert before == local_kms.stats.total_requests
    assert {"started": [], "connected": []} == clusters
    assert tree == _tree(work)


@pytest.mark.parametrize(
    "address",
    [
        "tcp://scheduler:8786",
        "dask_scheduler:8786",
        "tls://10.0.0.5:8786",
        "tcp://[::1]:8786",
        "scheduler.example.internal:65535",
    ],
)
def test_a_scheduler_address_of_any_usual_form_is_accepted(
    address: str,
) -> None:
    """The pattern that refuses what is no address takes the forms
    users give, host names with underscores (Docker Compose service
    names) among them."""
    from kms_reencrypt._rotate_parquet_cli import _SCHEDULER_ADDRESS

    assert _SCHEDULER_ADDRESS.fullmatch(address)
