"""``rotate_dataframe`` and ``rotate_bag``: the graph side of a Dask
rotation, run in the process that builds the collections."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .._exceptions import ConfigurationError
from .._rotate import (
    SAME_CONTEXT,
    ClientSettings,
    DestinationContext,
    RotationConfig,
)
from .._validation import (
    check_algorithm,
    check_context,
    check_grant_tokens,
    check_key_identifier,
    refuse_aws_managed_destination,
)
from ._journal import directory_path
from ._partition import (
    Fields,
    OutputNames,
    PartitionJob,
    rotate_records,
)
from ._ratecap import BucketRef, start_bucket

if TYPE_CHECKING:
    import dask.bag
    import dask.dataframe
    import pandas

__all__ = ["rotate_bag", "rotate_dataframe"]


def rotate_dataframe(
    frame: dask.dataframe.DataFrame,
    *,
    destination_key_id: str,
    id_column: str,
    ciphertext_column: str,
    client: ClientSettings | None = None,
    context_column: str | None = None,
    context_columns: Mapping[str, str] | None = None,
    source_key_id_column: str | None = None,
    source_encryption_algorithm_column: str | None = None,
    base64: bool = False,
    prefix: str = "rotation_",
    destination_encryption_context: DestinationContext = SAME_CONTEXT,
    destination_encryption_algorithm: str | None = None,
    grant_tokens: Iterable[str] | None = None,
    dry_run: bool = False,
    journal_dir: str | os.PathLike[str] | None = None,
    rate: float | None = None,
    workers: int | None = None,
    max_failures: int | float | None = None,
    config: RotationConfig | None = None,
) -> dask.dataframe.DataFrame:
    """Rotate a column of ciphertexts, partition by partition, on Dask.

    Nothing runs until the result is computed (or written). Each
    partition goes through the same engine as ``rotate`` on the worker
    that holds it, and the result has every original column plus five:
    ``{prefix}ciphertext`` (the new one when ok), ``{prefix}key_id``,
    ``{prefix}status`` (``ok``, ``failed`` or ``dry-run``),
    ``{prefix}error`` (the error code) and ``{prefix}error_message``.

    With a ``distributed`` client, the cap is one token bucket for the
    whole cluster (see docs/dask.md); with the local schedulers, the
    partitions of each process share one cap.

    Args:
        frame: The data; ids unique within each partition.
        destination_key_id: The key to re-encrypt under.
        id_column: Identifies each row (str, or integers).
        ciphertext_column: The ciphertexts: bytes, or base64 text with
            ``base64=True``.
        client: How each worker builds its KMS client; None for the
            standard AWS configuration of each worker. Never a client
            object: it cannot travel to the workers.
        context_column: A column holding each row's encryption context
            (a mapping, its JSON text, or a map column).
        context_columns: Builds each row's context from columns instead:
            ``{context key: column}``; null cells are left out.
        source_key_id_column: A column naming each row's source key.
        source_encryption_algorithm_column: A column naming each row's
            source algorithm (asymmetric sources).
        base64: The ciphertexts are base64 text, and the new ones are
            written as base64 text too.
        prefix: Put before the names of the added columns.
        destination_encryption_context: As for ``rotate``.
        destination_encryption_algorithm: As for ``rotate``.
        grant_tokens: As for ``rotate``; they travel in the task graph.
        dry_run: Check each item offline, send nothing.
        journal_dir: A directory for the per-partition journals, on
            storage every worker shares; a rerun with it skips what
            finished. None keeps no journal.
        rate: Cap on KMS calls per second for the whole cluster.
        workers: Engine threads per partition task.
        max_failures: As for ``rotate``, judged per partition.
        config: A ``RotationConfig`` for each partition; the three
            arguments above override it.

    Computing the result raises, in the caller, ``RotationStoppedError``
    when a partition stopped early (an unusable destination, rejected
    credentials, ``max_failures``), and ``ConfigurationError`` when a
    worker cannot build a client from ``client`` (a bad Region, endpoint
    or profile) or ``journal_dir`` cannot be used or holds another
    rotation's journal. A row that cannot be rotated (no id, a
    ciphertext or context of the wrong type, a duplicate id, ...) is a
    failed row, never an error.

    Returns:
        The rotated collection, with the same partitions and divisions.

    Raises:
        ConfigurationError: Contradictory options, an option of the
            wrong type or out of range (the error names it), a client
            object, a missing column or a name clash with the added
            columns.
        RequestValidationError: ``destination_key_id`` is not a key
            identifier (or names an AWS managed key, or a key in another
            Region than ``client``'s), or
            ``destination_encryption_context``,
            ``destination_encryption_algorithm`` or ``grant_tokens``
            could not be sent with any row; nothing was sent.
    """
    import dask.dataframe as dd
    import pandas as pd

    given: object = frame  # any object, whatever the annotation says
    if not isinstance(given, dd.DataFrame):
        hint = ""
        if isinstance(given, pd.DataFrame):
            hint = " (dd.from_pandas(frame, npartitions=...) makes one)"
        raise ConfigurationError(
            "frame must be a Dask DataFrame, got a "
            f"{type(given).__name__}{hint}.",
            option="frame",
        )
    columns = list(frame.columns)
    fields = _fields(
        id_field=id_column,
        ciphertext_field=ciphertext_column,
        context_field=context_column,
        context_fields=context_columns,
        source_key_id_field=source_key_id_column,
        source_encryption_algorithm_field=source_encryption_algorithm_column,
        base64=base64,
        option_suffix="column",
    )
    missing = [name for name in fields.names() if name not in columns]
    if missing:
        raise ConfigurationError(
            f"the frame has no column {', '.join(map(repr, missing))}.",
            option="columns",
        )
    output = OutputNames(prefix=prefix)
    clash = [name for name in output.all() if name in columns]
    if clash:
        raise ConfigurationError(
            f"the frame already has a column {clash[0]!r}; choose another "
            "prefix for the rotation's columns.",
            option="prefix",
        )
    job = _job(
        destination_key_id=destination_key_id,
        client=client,
        fields=fields,
        output=output,
        destination_encryption_context=destination_encryption_context,
        destination_encryption_algorithm=destination_encryption_algorithm,
        grant_tokens=grant_tokens,
        dry_run=dry_run,
        journal_dir=journal_dir,
        rate=rate,
        workers=workers,
        max_failures=max_failures,
        config=config,
    )

    dtypes = _output_dtypes(base64)
    meta = frame._meta.assign(
        **{
            name: pd.Series(dtype=dtype)
            for name, dtype in zip(output.all(), dtypes, strict=True)
        }
    )

    map_partitions: Any = frame.map_partitions
    rotated: dask.dataframe.DataFrame = map_partitions(
        _rotate_frame,
        job=job,
        meta=meta,
        token="kms-reencrypt-rotate",  # noqa: S106 (a task name)
    )

    return rotated


def rotate_bag(
    bag: dask.bag.Bag,
    *,
    destination_key_id: str,
    client: ClientSettings | None = None,
    id_field: str = "id",
    ciphertext_field: str = "ciphertext_blob",
    context_field: str | None = "encryption_context",
    context_fields: Mapping[str, str] | None = None,
    source_key_id_field: str | None = "source_key_id",
    source_encryption_algorithm_field: str | None = (
        "source_encryption_algorithm"
    ),
    base64: bool = False,
    prefix: str = "rotation_",
    destination_encryption_context: DestinationContext = SAME_CONTEXT,
    destination_encryption_algorithm: str | None = None,
    grant_tokens: Iterable[str] | None = None,
    dry_run: bool = False,
    journal_dir: str | os.PathLike[str] | None = None,
    rate: float | None = None,
    workers: int | None = None,
    max_failures: int | float | None = None,
    config: RotationConfig | None = None,
) -> dask.bag.Bag:
    """Rotate a Bag of records, partition by partition, on Dask.

    Each element is a mapping (by default with the keys of a
    ``RotationItem``: ``id``, ``ciphertext_blob``, ``encryption_context``,
    ...). The result holds, in the same partitions and order, a new dict
    per element: its keys plus the five fields ``rotate_dataframe`` adds,
    which replace a record's own fields of those names (choose a
    ``prefix`` no record uses; one naming a field the rotation reads is
    refused).

    Args:
        bag: The records; ids unique within each partition.
        destination_key_id: The key to re-encrypt under.
        client: How each worker builds its KMS client; None for the
            standard AWS configuration of each worker.
        id_field: The key of each record's id.
        ciphertext_field: The key of its ciphertext (bytes, or base64
            text with ``base64=True``).
        context_field: The key of its encryption context, or None.
        context_fields: Builds each context from other keys instead:
            ``{context key: record key}``.
        source_key_id_field: The key of its source key id, or None.
        source_encryption_algorithm_field: The key of its source
            algorithm, or None.
        base64: The ciphertexts are base64 text, and the new ones too.
        prefix: Put before the names of the added fields.
        destination_encryption_context: As for ``rotate``.
        destination_encryption_algorithm: As for ``rotate``.
        grant_tokens: As for ``rotate``; they travel in the task graph.
        dry_run: Check each item offline, send nothing.
        journal_dir: The per-partition journals' directory, on shared
            storage; None keeps no journal.
        rate: Cap on KMS calls per second for the whole cluster.
        workers: Engine threads per partition task.
        max_failures: As for ``rotate``, judged per partition.
        config: A ``RotationConfig`` for each partition; the three
            arguments above override it.

    Computing the result raises what computing ``rotate_dataframe``'s
    raises. An element that is not a mapping (nor an attrs instance) is
    a failed record holding only the five added fields, with the error
    ``ParameterTypeError``.

    Returns:
        The rotated Bag.

    Raises:
        ConfigurationError: Contradictory options, an option of the
            wrong type or out of range (the error names it), a client
            object, or a ``prefix`` making an added field's name one of
            the fields read from each record.
        RequestValidationError: ``destination_key_id`` is not a key
            identifier (or names an AWS managed key, or a key in another
            Region than ``client``'s), or
            ``destination_encryption_context``,
            ``destination_encryption_algorithm`` or ``grant_tokens``
            could not be sent with any record; nothing was sent.
    """
    import dask.bag
    from dask.delayed import delayed

    if not isinstance(bag, dask.bag.Bag):
        raise ConfigurationError(
            f"bag must be a Dask Bag, got a {type(bag).__name__} "
            "(dask.bag.from_sequence(records, npartitions=...) makes one).",
            option="bag",
        )
    fields = _fields(
        id_field=id_field,
        ciphertext_field=ciphertext_field,
        context_field=None if context_fields else context_field,
        context_fields=context_fields,
        source_key_id_field=source_key_id_field,
        source_encryption_algorithm_field=source_encryption_algorithm_field,
        base64=base64,
        option_suffix="field",
    )
    output = OutputNames(prefix=prefix)
    # A record's own field of an added name is replaced in the result;
    # one the rotation reads would lose its input that way, so refuse it.
    # (A frame's columns are known, and every clash refused; a Bag's
    # records are not known before they are computed.)
    read = [id_field, ciphertext_field, context_field, source_key_id_field]
    read += [source_encryption_algorithm_field]
    read += list(dict(context_fields or {}).values())
    clash = [name for name in output.all() if name in read]
    if clash:
        raise ConfigurationError(
            f"the field {clash[0]!r} is read from each record and would be "
            "replaced by the field of that name the rotation adds; choose "
            "another prefix.",
            option="prefix",
        )
    job = _job(
        destination_key_id=destination_key_id,
        client=client,
        fields=fields,
        output=output,
        destination_encryption_context=destination_encryption_context,
        destination_encryption_algorithm=destination_encryption_algorithm,
        grant_tokens=grant_tokens,
        dry_run=dry_run,
        journal_dir=journal_dir,
        rate=rate,
        workers=workers,
        max_failures=max_failures,
        config=config,
    )

    to_delayed: Any = bag.to_delayed
    from_delayed: Any = dask.bag.from_delayed
    name = f"kms-reencrypt-rotate-bag-{job.bucket.name.rsplit('-', 1)[1]}"
    parts = [
        delayed(_rotate_bag_partition, pure=True)(
            part, job, number, dask_key_name=(name, number)
        )
        for number, part in enumerate(to_delayed())
    ]
    rotated: dask.bag.Bag = from_delayed(parts)

    return rotated


def _fields(
    *,
    id_field: str,
    ciphertext_field: str,
    context_field: str | None,
    context_fields: Mapping[str, str] | None,
    source_key_id_field: str | None,
    source_encryption_algorithm_field: str | None,
    base64: bool,
    option_suffix: str,
) -> Fields:
    for name, value, required in (
        ("id", id_field, True),
        ("ciphertext", ciphertext_field, True),
        ("context", context_field, False),
        ("source_key_id", source_key_id_field, False),
        (
            "source_encryption_algorithm",
            source_encryption_algorithm_field,
            False,
        ),
    ):
        if not (isinstance(value, str) or (value is None and not required)):
            option = f"{name}_{option_suffix}"
            kind = "a str" if required else "a str or None"
            raise ConfigurationError(
                f"{option} must be {kind} naming a {option_suffix}, got a "
                f"{type(value).__name__}.",
                option=option,
            )
    if id_field == ciphertext_field:
        raise ConfigurationError(
            f"id_{option_suffix} and ciphertext_{option_suffix} are both "
            f"{id_field!r}; the ids must be another {option_suffix} than "
            "the ciphertexts.",
            option=f"id_{option_suffix}",
        )
    if context_field is not None and context_fields:
        raise ConfigurationError(
            f"give context_{option_suffix} or context_{option_suffix}s, "
            "not both.",
            option=f"context_{option_suffix}s",
        )
    pairs: tuple[tuple[str, str], ...] = ()
    if context_fields:
        if not isinstance(context_fields, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str)
            for k, v in context_fields.items()
        ):
            raise ConfigurationError(
                f"context_{option_suffix}s maps context keys to "
                f"{option_suffix} names, all str.",
                option=f"context_{option_suffix}s",
            )
        pairs = tuple(sorted(context_fields.items()))
    if type(base64) is not bool:
        raise ConfigurationError(
            "base64 must be True or False.", option="base64"
        )

    return Fields(
        id=id_field,
        ciphertext=ciphertext_field,
        encryption_context=context_field,
        context_fields=pairs,
        source_key_id=source_key_id_field,
        source_encryption_algorithm=source_encryption_algorithm_field,
        base64=base64,
    )


def _job(
    *,
    destination_key_id: str,
    client: ClientSettings | None,
    fields: Fields,
    output: OutputNames,
    destination_encryption_context: DestinationContext,
    destination_encryption_algorithm: str | None,
    grant_tokens: Iterable[str] | None,
    dry_run: bool,
    journal_dir: str | os.PathLike[str] | None,
    rate: float | None,
    workers: int | None,
    max_failures: int | float | None,
    config: RotationConfig | None,
) -> PartitionJob:
    if client is None:
        client = ClientSettings()
    if not isinstance(client, ClientSettings):
        raise ConfigurationError(
            "a client object cannot travel to Dask workers, and its "
            "credentials must not: pass client=ClientSettings("
            "region_name=..., endpoint_url=..., profile_name=...) and "
            "each worker builds its own client.",
            option="client",
        )
    _check_settings(client)
    # Each task's engine checks these too; checked here, a bad value is
    # refused at the call rather than by every task of the computation.
    destination = check_key_identifier(
        destination_key_id, "DestinationKeyId", region_name=client.region_name
    )
    if destination.is_aws_managed:
        refuse_aws_managed_destination(destination)
    if destination_encryption_context is not SAME_CONTEXT and (
        destination_encryption_context is not None
    ):
        if not isinstance(destination_encryption_context, Mapping):
            raise ConfigurationError(
                "destination_encryption_context must be a mapping, None or "
                "SAME_CONTEXT.",
                option="destination_encryption_context",
            )
        destination_encryption_context = check_context(
            destination_encryption_context, "DestinationEncryptionContext"
        )
    if destination_encryption_algorithm is not None:
        destination_encryption_algorithm = check_algorithm(
            destination_encryption_algorithm, "DestinationEncryptionAlgorithm"
        )
    if type(dry_run) is not bool:
        raise ConfigurationError(
            "dry_run must be True or False.", option="dry_run"
        )
    if config is not None and not isinstance(config, RotationConfig):
        raise ConfigurationError(
            "config must be a RotationConfig or None.", option="config"
        )
    config = config or RotationConfig()
    if config.processes > 1:
        raise ConfigurationError(
            "each partition task runs in its worker's process; add Dask "
            "workers rather than processes.",
            option="processes",
        )
    if dry_run and journal_dir is not None:
        raise ConfigurationError(
            "a dry run rotates nothing, so it keeps no journal; leave "
            "journal_dir out.",
            option="journal_dir",
        )
    tokens = None
    if grant_tokens is not None:
        # Listed once: an iterator must not be used up by the check.
        listed = (
            None
            if isinstance(grant_tokens, str | bytes | bytearray | Mapping)
            or not isinstance(grant_tokens, Iterable)
            else list(grant_tokens)
        )
        if listed is None or not all(isinstance(t, str) for t in listed):
            raise ConfigurationError(
                "grant_tokens must be a list of str tokens or None.",
                option="grant_tokens",
            )
        tokens = tuple(check_grant_tokens(listed))
    journal = None if journal_dir is None else _journal_path(journal_dir)
    if rate is None:
        rate = config.rate
    # RotationConfig validates workers, max_failures and rate (the bucket's
    # check_rate is the same rule).
    config = attrs.evolve(
        config,
        workers=config.workers if workers is None else workers,
        max_failures=(
            config.max_failures if max_failures is None else max_failures
        ),
        rate=rate,
    )
    config = attrs.evolve(config, rate=None)
    if dry_run:
        # Nothing to cap; the name still makes the graph's keys unique.
        bucket = BucketRef(f"kms-reencrypt-dry-run-{uuid.uuid4().hex}", None)
    else:
        bucket = start_bucket(rate)

    return PartitionJob(
        destination_key_id=destination_key_id,
        settings=client,
        fields=fields,
        output=output,
        destination_encryption_context=destination_encryption_context,
        destination_encryption_algorithm=destination_encryption_algorithm,
        grant_tokens=tokens,
        dry_run=dry_run,
        config=config,
        journal_dir=journal,
        bucket=bucket,
    )


def _check_settings(settings: ClientSettings) -> None:
    # Built on each worker, and a key of its cache of clients: members of
    # the wrong type would fail every task, or not hash.
    for name in ("region_name", "endpoint_url", "profile_name"):
        value = getattr(settings, name)
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(
                f"client={type(settings).__name__}(...): {name} must be a "
                f"str or None, got a {type(value).__name__}.",
                option="client",
            )
    if type(settings.local) is not bool:
        raise ConfigurationError(
            f"client={type(settings).__name__}(...): local must be True "
            "or False.",
            option="client",
        )


def _journal_path(journal_dir: str | os.PathLike[str]) -> str:
    path = directory_path(journal_dir, "journal_dir")
    if "://" in path:
        raise ConfigurationError(
            f"journal_dir {path!r} is a URL; the journal is written with "
            "file operations: give a directory path on storage every "
            "worker shares.",
            option="journal_dir",
        )
    return path


def _output_dtypes(base64: bool) -> list[Any]:
    import pandas as pd
    import pyarrow as pa

    text = pd.ArrowDtype(pa.string())
    ciphertext = text if base64 else pd.ArrowDtype(pa.binary())

    return [ciphertext, text, text, text, text]


def _rotate_frame(
    frame: pandas.DataFrame,
    job: PartitionJob,
    partition_info: dict[str, Any] | None = None,
) -> pandas.DataFrame:
    """The task of one DataFrame partition."""
    import pandas as pd

    number = 0 if partition_info is None else partition_info["number"]
    names = job.fields.names()
    values = [frame[name].tolist() for name in names]
    records = [
        dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)
    ]
    results = rotate_records(records, job, partition=number)

    columns = list(zip(*results, strict=True)) if results else [()] * 5
    dtypes = _output_dtypes(job.fields.base64)
    added = {
        name: pd.array(list(column), dtype=dtype)
        for name, column, dtype in zip(
            job.output.all(), columns, dtypes, strict=True
        )
    }

    return frame.assign(**added)


def _rotate_bag_partition(
    records: Iterable[Any], job: PartitionJob, number: int
) -> list[dict[str, Any]]:
    """The task of one Bag partition."""
    elements = [_as_record(element) for element in records]
    results = rotate_records(elements, job, partition=number)
    names = job.output.all()

    # An element that is not a record is a failed row of its own, with
    # only the added fields.
    return [
        {
            **(element if isinstance(element, dict) else {}),
            **dict(zip(names, result, strict=True)),
        }
        for element, result in zip(elements, results, strict=True)
    ]


def _as_record(element: Any) -> Any:
    if isinstance(element, Mapping):
        return dict(element)
    if attrs.has(type(element)):
        return {
            field.name: getattr(element, field.name)
            for field in attrs.fields(type(element))
        }
    return element
