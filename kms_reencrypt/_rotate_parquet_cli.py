"""``kms-reencrypt rotate-parquet``: rotate an encrypted column of a
Parquet dataset on a Dask cluster.

The workers read the input dataset, rotate each partition through the
engine (``kms_reencrypt.dask.rotate_dataframe``) and write the output
dataset themselves: no row passes through this process, which only
builds the graph, waits, and reads the status column back for the
summary. Without ``--dask-scheduler`` a local cluster of this machine's
cores runs it.

Resuming. With a journal directory (``OUTPUT.journal`` by default when
the output is a local path), running the same command again after a
failure, Ctrl-C or a lost driver rewrites the whole output from the
journal and rotates only what no attempt finished.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import glob
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from ._exceptions import ConfigurationError, RotationStoppedError
from ._rotate import (
    DEFAULT_WORKERS,
    SAME_CONTEXT,
    ClientSettings,
    DestinationContext,
)
from ._rotate_cli import (
    _count,
    _max_failures,
    _per_second,
    _same_file,
    add_client_arguments,
    add_destination_argument,
    check_writable_file,
    client_settings,
    parse_context,
    usable_path,
)

__all__ = ["add_arguments", "run"]


def _context_field(text: str) -> tuple[str, str]:
    key, sep, column = text.partition("=")
    if not sep or not key or not column:
        raise argparse.ArgumentTypeError(
            f"takes KEY=COLUMN, such as tenant=tenant_id; got {text!r}"
        )
    return key, column


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``rotate-parquet`` to its sub-command parser.

    Args:
        parser: The sub-command's parser.
    """
    add_destination_argument(parser)
    parser.add_argument(
        "--input",
        required=True,
        metavar="PATH",
        help="the Parquet dataset to read (a directory, file, glob or "
        "URL the workers can read)",
    )
    parser.add_argument(
        "--output",
        required=True,
        metavar="PATH",
        help="where the workers write the rotated dataset",
    )
    parser.add_argument(
        "--column",
        required=True,
        metavar="COLUMN",
        help="the column of ciphertexts (binary, or base64 text with "
        "--base64)",
    )
    parser.add_argument(
        "--id-column",
        required=True,
        metavar="COLUMN",
        help="the column identifying each row (unique in each partition)",
    )
    context = parser.add_mutually_exclusive_group()
    context.add_argument(
        "--context-column",
        metavar="COLUMN",
        help="a column holding each row's encryption context (a map, a "
        "struct or JSON text)",
    )
    context.add_argument(
        "--context-field",
        action="append",
        type=_context_field,
        metavar="KEY=COLUMN",
        help="build each row's encryption context from columns; repeat "
        "for each key",
    )
    parser.add_argument(
        "--source-key-id-column",
        metavar="COLUMN",
        help="a column naming each row's source key",
    )
    parser.add_argument(
        "--base64",
        action="store_true",
        help="the ciphertexts are base64 text; the new ones are too",
    )
    parser.add_argument(
        "--prefix",
        default="rotation_",
        help="put before the names of the added columns (default rotation_)",
    )
    parser.add_argument(
        "--dask-scheduler",
        metavar="ADDRESS",
        help="the Dask scheduler to run on, such as tcp://host:8786 "
        "(default: a local cluster of this machine's cores)",
    )
    parser.add_argument(
        "--journal-dir",
        metavar="DIR",
        help="per-partition journals, on storage every worker shares "
        "(default: OUTPUT.journal for a local output)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check every row offline, send nothing, write nothing",
    )
    parser.add_argument(
        "--rate",
        type=_per_second,
        metavar="PER_SECOND",
        help="cap on KMS calls per second for the whole cluster",
    )
    parser.add_argument(
        "--workers",
        type=_count(1),
        default=DEFAULT_WORKERS,
        metavar="N",
        help=f"engine threads per partition task (default {DEFAULT_WORKERS})",
    )
    parser.add_argument(
        "--max-failures",
        type=_max_failures,
        metavar="N|FRACTION",
        help="stop a partition once more of its items failed than N, or "
        "than a fraction such as 0.05 or 5%%",
    )
    destination = parser.add_mutually_exclusive_group()
    destination.add_argument(
        "--destination-context",
        metavar="JSON",
        help="bind every new ciphertext to this encryption context "
        "(default: each row's own context)",
    )
    destination.add_argument(
        "--no-destination-context",
        action="store_true",
        help="bind the new ciphertexts to no encryption context",
    )
    add_client_arguments(parser)
    parser.add_argument(
        "--report",
        metavar="FILE",
        help="write the run's counts and failed rows as JSON to FILE",
    )


def _is_local(path: str) -> bool:
    return "://" not in path


def _journal_dir(args: argparse.Namespace) -> str | None:
    if args.journal_dir is not None:
        return str(args.journal_dir)
    if args.dry_run or not _is_local(args.output):
        return None
    return f"{args.output.rstrip(os.sep)}.journal"


def _has_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def _inside(path: str, directory: str) -> bool:
    """Whether ``path`` is ``directory`` or somewhere under it."""
    if _same_file(path, directory):
        return True
    inner, outer = os.path.realpath(path), os.path.realpath(directory)
    try:
        return os.path.commonpath([inner, outer]) == outer
    except ValueError:
        return False


#: A scheduler's address: an optional scheme, a host (an IPv6 one in
#: brackets; underscores allowed, as in Docker Compose service names)
#: and a port.
_SCHEDULER_ADDRESS = re.compile(
    r"(?:(?:tcp|tls|ws|wss|ucx)://)?"
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)"
    r":(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}"
    r"|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
)


def _check(args: argparse.Namespace, journal_dir: str | None) -> None:
    if args.dask_scheduler is not None and not _SCHEDULER_ADDRESS.fullmatch(
        args.dask_scheduler
    ):
        raise ConfigurationError(
            f"--dask-scheduler {args.dask_scheduler!r} is not a scheduler "
            "address: give one such as tcp://scheduler:8786, or leave the "
            "option out for a local cluster.",
            option="--dask-scheduler",
        )
    if args.local and args.dask_scheduler:
        raise ConfigurationError(
            "--local runs the local KMS in this process, which a remote "
            "cluster cannot reach; leave --dask-scheduler out to use a "
            "local cluster.",
            option="--local",
        )
    if args.local and (args.endpoint_url or args.region or args.profile):
        raise ConfigurationError(
            "--local cannot be combined with --endpoint-url, --region or "
            "--profile.",
            option="--local",
        )
    if args.dry_run and args.journal_dir:
        raise ConfigurationError(
            "--dry-run rotates nothing and keeps no journal; leave "
            "--journal-dir out.",
            option="--journal-dir",
        )
    for option, path in (
        ("--input", args.input),
        ("--output", args.output),
        ("--journal-dir", args.journal_dir),
        ("--report", args.report),
    ):
        if path is not None and not usable_path(path):
            raise ConfigurationError(
                f"{option} {path!r} is not a usable path: give a name "
                "without NUL bytes or lone surrogates.",
                option=option,
            )
    if _is_local(args.input) and not os.path.exists(args.input):
        if not _has_glob(args.input):
            raise ConfigurationError(
                f"the input {args.input} does not exist.", option="--input"
            )
        if not glob.glob(args.input):
            raise ConfigurationError(
                f"--input {args.input!r} matches no file; give a Parquet "
                "dataset that exists.",
                option="--input",
            )
    _check_output(args, journal_dir)
    _check_journal(args, journal_dir)
    _check_report(args, journal_dir)


def _check_output(args: argparse.Namespace, journal_dir: str | None) -> None:
    if _has_glob(args.output):
        # Dask writes "*" as a file number, and reads the output back for
        # the summary as a pattern: the rows could land, and be counted,
        # anywhere.
        raise ConfigurationError(
            f"--output {args.output!r} holds *, ? or [, which Dask takes "
            "as a pattern; give the output dataset's directory by its "
            "name.",
            option="--output",
        )
    if not _is_local(args.output):
        _check_file_system("--output", args.output)
        return
    if _is_local(args.input) and _same_file(args.output, args.input):
        raise ConfigurationError(
            "--output must not be the input dataset: the input stays as "
            "it is until the output is complete.",
            option="--output",
        )
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise ConfigurationError(
            f"--output {args.output!r} is a file; the output is a "
            "dataset directory: give a new or empty directory.",
            option="--output",
        )
    resuming = journal_dir is not None and os.path.isdir(journal_dir)
    if os.path.isdir(args.output) and os.listdir(args.output) and not resuming:
        raise ConfigurationError(
            f"the output {args.output} is not empty and no journal says "
            "it is this rotation's; choose another output or remove it.",
            option="--output",
        )


def _check_file_system(option: str, url: str) -> None:
    """Refuse a URL whose file system fsspec does not know, or cannot use
    without a package that is not installed."""
    import fsspec  # type: ignore[import-untyped]

    try:
        fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ConfigurationError(
            f"{option} {url!r} names a file system that cannot be used "
            f"here ({reason}); give a path, or a URL of an installed "
            "file system.",
            option=option,
        ) from None


def _check_journal(args: argparse.Namespace, journal_dir: str | None) -> None:
    if journal_dir is None:
        return
    if not _is_local(journal_dir):
        raise ConfigurationError(
            f"--journal-dir {journal_dir!r} is a URL; the journal is "
            "written with file operations: give a directory every worker "
            "can reach as a path (a shared mount).",
            option="--journal-dir",
        )
    for option, other in (("--input", args.input), ("--output", args.output)):
        if _is_local(other) and _same_file(journal_dir, other):
            raise ConfigurationError(
                f"--journal-dir {journal_dir!r} is the {option[2:]}; give "
                "the journal a directory of its own.",
                option="--journal-dir",
            )
    if os.path.exists(journal_dir) and not os.path.isdir(journal_dir):
        raise ConfigurationError(
            f"--journal-dir {journal_dir!r} exists and is not a directory; "
            "give a new directory or the journal of an earlier run.",
            option="--journal-dir",
        )


def _check_report(args: argparse.Namespace, journal_dir: str | None) -> None:
    # The report is written last: it must not land on (or in) a dataset
    # or journal, nor fail to open after every row was rotated.
    report = args.report
    if report is None:
        return
    if _is_local(args.input):
        inputs = [args.input]
        if _has_glob(args.input):
            inputs += glob.glob(args.input)
            if fnmatch.fnmatchcase(
                os.path.abspath(report), os.path.abspath(args.input)
            ):
                inputs.append(report)
        if any(_inside(report, path) for path in inputs):
            raise ConfigurationError(
                f"--report {report!r} is the input or inside the input "
                "dataset, which it would overwrite or join; write the "
                "report elsewhere.",
                option="--report",
            )
    for option, directory in (
        ("--output", args.output),
        ("--journal-dir", journal_dir),
    ):
        if (
            directory is not None
            and _is_local(directory)
            and _inside(report, directory)
        ):
            raise ConfigurationError(
                f"--report {report!r} is the {option[2:]} or inside it; "
                f"write the report outside {directory!r}.",
                option="--report",
            )
    check_writable_file("--report", report)


#: The command's client options, by the option name ClientSettings uses.
_CLIENT_OPTIONS = {
    "region_name": "--region",
    "endpoint_url": "--endpoint-url",
    "profile_name": "--profile",
}


def _check_client(args: argparse.Namespace) -> None:
    # The workers build their own clients from these settings; building
    # one here (nothing is sent) makes a bad endpoint, Region or profile
    # a usage error before a cluster starts or a directory is created.
    if args.local:
        return
    try:
        ClientSettings(
            region_name=args.region,
            endpoint_url=args.endpoint_url,
            profile_name=args.profile,
        ).build(max_pool_connections=1)
    except ConfigurationError as error:
        option = _CLIENT_OPTIONS.get(error.option)
        if option is None:
            raise
        if option == "--region" and args.region is None:
            message = (
                "no AWS Region is configured: pass --region or set "
                "AWS_DEFAULT_REGION."
            )
        else:
            message = f"{option}: {error}"
        raise ConfigurationError(message, option=option) from None


#: The prefix dask puts before the reader's own message.
_DASK_PREFIX = "Original Message:"


def _read_input(args: argparse.Namespace) -> Any:
    # Read the dataset's metadata here, before a cluster starts: the
    # frame is lazy, and the workers read the rows.
    import dask.dataframe as dd
    import pyarrow as pa

    try:
        frame: Any = dd.read_parquet(args.input, dtype_backend="pyarrow")
        columns = list(frame.columns)
    except (
        ValueError,
        OSError,
        KeyError,
        ImportError,  # a URL whose file system needs a package
        pa.ArrowException,
    ) as error:
        reason = " ".join(str(error).split())
        reason = reason.rpartition(_DASK_PREFIX)[2].strip() or (
            type(error).__name__
        )
        raise ConfigurationError(
            f"--input {args.input!r} cannot be read as a Parquet dataset "
            f"({reason}); give a Parquet file, or a directory or glob of "
            ".parquet files.",
            option="--input",
        ) from None
    if not columns:
        raise ConfigurationError(
            f"--input {args.input!r} holds no Parquet data (no file, or "
            "no columns); give a Parquet dataset with the ciphertext and "
            "id columns.",
            option="--input",
        )
    return frame


def _context(args: argparse.Namespace) -> DestinationContext:
    if args.no_destination_context:
        return None
    if args.destination_context is not None:
        return parse_context(args.destination_context, "--destination-context")
    return SAME_CONTEXT


@contextlib.contextmanager
def _dask_client(args: argparse.Namespace) -> Iterator[Any]:
    import distributed

    # distributed's constructors are not annotated.
    client_class: Any = distributed.Client
    cluster_class: Any = distributed.LocalCluster
    if args.dask_scheduler:
        try:
            client = client_class(args.dask_scheduler)
        except (OSError, ValueError, TypeError) as error:
            # Unreachable (OSError), or a scheme this installation cannot
            # speak without more configuration (tls, ucx).
            reason = " ".join(str(error).split()) or type(error).__name__
            raise ConfigurationError(
                f"--dask-scheduler {args.dask_scheduler!r}: cannot connect "
                f"({reason}); give the address of a running scheduler.",
                option="--dask-scheduler",
            ) from None
        with client:
            yield client
        return
    with (
        cluster_class(
            n_workers=os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # Its HTTP server on loopback, on a free port.
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        ) as cluster,
        client_class(cluster) as client,
    ):
        yield client


def run(args: argparse.Namespace) -> int:
    """Run ``rotate-parquet``.

    Args:
        args: The parsed options.

    Returns:
        0 when every row is ok, 1 when some failed, 3 when a partition
        stopped early.

    Raises:
        ConfigurationError: Contradictory options; a missing or
            unreadable input; a column the input does not have; an
            unusable path; a report, output or journal on the input or
            on one another; a non-empty output; bad client settings; a
            scheduler address that is not one, or that cannot be
            reached; or a journal made for another run (exit status 2).
    """
    journal_dir = _journal_dir(args)
    _check(args, journal_dir)
    context = _context(args)
    _check_client(args)
    frame = _read_input(args)
    started = time.monotonic()

    with contextlib.ExitStack() as stack:
        settings = stack.enter_context(client_settings(args))

        import dask.dataframe as dd

        from .dask import rotate_dataframe

        options: dict[str, Any] = {
            "destination_key_id": args.destination,
            "id_column": args.id_column,
            "ciphertext_column": args.column,
            "client": settings,
            "context_column": args.context_column,
            "context_columns": dict(args.context_field or ()) or None,
            "source_key_id_column": args.source_key_id_column,
            "base64": args.base64,
            "prefix": args.prefix,
            "destination_encryption_context": context,
            "rate": args.rate,
            "workers": args.workers,
            "max_failures": args.max_failures,
        }
        # The columns, the prefix and the destination judged before a
        # cluster starts: a dry run's graph starts nothing, where the real
        # call submits the rate bucket to the cluster, so it needs one.
        rotate_dataframe(frame, **options, dry_run=True)
        stack.enter_context(_dask_client(args))
        rotated = rotate_dataframe(
            frame, **options, dry_run=args.dry_run, journal_dir=journal_dir
        )
        status = f"{args.prefix}status"
        error = f"{args.prefix}error"
        try:
            if args.dry_run:
                checked = rotated[[args.id_column, status, error]].compute()
            else:
                write: Any = rotated.to_parquet
                write(args.output, write_index=frame.index.name is not None)
                checked = dd.read_parquet(
                    args.output, columns=[args.id_column, status, error]
                ).compute()
        except RotationStoppedError as stopped:
            _stopped(stopped, journal_dir)
            return 3

    counts = Counter(checked[status].tolist())
    failed = checked[checked[status] == "failed"]
    failed_items = [
        {"id": str(item_id), "code": code}
        for item_id, code in zip(
            failed[args.id_column].tolist(),
            failed[error].tolist(),
            strict=True,
        )
    ]
    report = {
        "ok": counts.get("ok", 0),
        "failed": counts.get("failed", 0),
        "dry_run": counts.get("dry-run", 0),
        "failures_by_code": dict(
            sorted(Counter(item["code"] for item in failed_items).items())
        ),
        "failed_items": failed_items,
        "partitions": frame.npartitions,
        "elapsed_seconds": round(time.monotonic() - started, 3),
    }
    _summarize(report)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as stream:
            json.dump(report, stream, indent=2)
            stream.write("\n")

    return 1 if report["failed"] else 0


def _stopped(error: RotationStoppedError, journal_dir: str | None) -> None:
    lines = [f"kms-reencrypt rotate-parquet: stopped early: {error.reason}"]
    if journal_dir is not None:
        lines.append(
            f"  what finished is in the journal {journal_dir}; fix the "
            "cause and run the same command again to finish."
        )
    print("\n".join(lines), file=sys.stderr)


def _summarize(report: dict[str, Any]) -> None:
    codes = ", ".join(
        f"{code} {count}" for code, count in report["failures_by_code"].items()
    )
    parts = [f"{report['ok']} ok", f"{report['failed']} failed"]
    if codes:
        parts[-1] += f" ({codes})"
    if report["dry_run"]:
        parts.append(f"{report['dry_run']} dry-run")
    print(
        "kms-reencrypt rotate-parquet: "
        + ", ".join(parts)
        + f" in {report['partitions']} partitions, "
        f"{report['elapsed_seconds']:.1f} s",
        file=sys.stderr,
    )
