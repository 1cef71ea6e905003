"""``kms-reencrypt rotate``: rotate a JSON Lines file of ciphertexts.

The journal is the source of truth and the output file its projection:
each output line is appended only after the journal committed its
outcome, and a new run with the same journal repairs the output (see
``_jsonl``) and skips what is done, so after a crash, Ctrl-C or
``kill -9`` running the same command again finishes the job with every
item exactly once in the output. When the output is a file the journal
defaults to ``OUTPUT.journal``; writing to standard output keeps no
journal unless ``--journal`` is given, and then cannot be repaired.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from typing import IO

import attrs

from ._client import ReEncryptClient
from ._exceptions import (
    ConfigurationError,
    RotationStoppedError,
    WriteBackError,
)
from ._rotate import (
    DEFAULT_WORKERS,
    MAX_PROCESSES,
    MAX_WORKERS,
    SAME_CONTEXT,
    SLOWEST_RATE,
    ClientSettings,
    DestinationContext,
    RotationConfig,
    RotationReport,
    RotationStatus,
)

__all__ = ["add_arguments", "run"]

_FINGERPRINT_BYTES = 65536
#: Failed input line numbers listed in the summary on standard error.
_LINES_SHOWN = 20
# Ctrl-C: the stop code in the report, and the shell's status for SIGINT.
_INTERRUPTED = "KeyboardInterrupt"
_EXIT_INTERRUPTED = 130


def add_destination_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--to`` (also spelled ``--destination-key-id``, as in the AWS
    CLI), shared by ``rotate`` and ``re-encrypt``.

    Args:
        parser: The sub-command's parser.
    """
    parser.add_argument(
        "--to",
        "--destination-key-id",
        dest="destination",
        required=True,
        type=_key_identifier,
        metavar="KEY",
        help="the key to re-encrypt under (key ID, ARN, alias)",
    )


def _key_identifier(text: str) -> str:
    from ._exceptions import RequestValidationError
    from ._keyid import parse_key_id

    try:
        parse_key_id(text, parameter="the destination key")
    except RequestValidationError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _count(low: int, high: float = math.inf) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number, got {text!r}"
            ) from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {low} or more")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be {high} or less")
        return value

    parse.__name__ = "count"
    return parse


def _per_second(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number, got {text!r}"
        ) from None
    if not 0.0 < value < math.inf:
        raise argparse.ArgumentTypeError(
            "must be a positive number (leave --rate out for no cap)"
        )
    if value < SLOWEST_RATE:
        raise argparse.ArgumentTypeError(
            f"must be at least {SLOWEST_RATE:.3g}, one call a day"
        )
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``rotate`` to its sub-command parser.

    Args:
        parser: The sub-command's parser.
    """
    add_destination_argument(parser)
    parser.add_argument(
        "--input",
        default="-",
        metavar="FILE",
        help="JSON Lines input, '-' for standard input (default)",
    )
    parser.add_argument(
        "--output",
        default="-",
        metavar="FILE",
        help="JSON Lines output, '-' for standard output (default)",
    )
    parser.add_argument(
        "--journal",
        metavar="FILE",
        help="SQLite journal to resume from (default: OUTPUT.journal when "
        "the output is a file)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check every item offline and send nothing",
    )
    parser.add_argument(
        "--server-dry-run",
        type=_count(0),
        default=0,
        metavar="N",
        help="with --dry-run, also ask KMS (DryRun) about the first N items",
    )
    parser.add_argument(
        "--rate",
        type=_per_second,
        metavar="PER_SECOND",
        help="cap on KMS calls per second for the whole run",
    )
    parser.add_argument(
        "--workers",
        type=_count(1, MAX_WORKERS),
        default=DEFAULT_WORKERS,
        metavar="N",
        help=f"threads per process (default {DEFAULT_WORKERS})",
    )
    parser.add_argument(
        "--processes",
        type=_count(1, MAX_PROCESSES),
        default=1,
        metavar="N",
        help="worker processes, each with its own client (default 1)",
    )
    parser.add_argument(
        "--max-failures",
        type=_max_failures,
        metavar="N|FRACTION",
        help="stop once more items failed than N, or than a fraction "
        "such as 0.05 or 5%%",
    )
    context = parser.add_mutually_exclusive_group()
    context.add_argument(
        "--destination-context",
        metavar="JSON",
        help="bind every new ciphertext to this encryption context "
        "(default: each item's own context)",
    )
    context.add_argument(
        "--no-destination-context",
        action="store_true",
        help="bind the new ciphertexts to no encryption context",
    )
    add_client_arguments(parser)
    parser.add_argument(
        "--report",
        metavar="FILE",
        help="write the run's report as JSON to FILE",
    )


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--endpoint-url``, ``--region``, ``--profile`` and ``--local``.

    Args:
        parser: A sub-command's parser.
    """
    parser.add_argument("--endpoint-url", metavar="URL")
    parser.add_argument("--region", metavar="REGION")
    parser.add_argument("--profile", metavar="PROFILE")
    parser.add_argument(
        "--local",
        action="store_true",
        help="start the embedded local KMS in this process and use it",
    )


def parse_context(text: str, option: str) -> dict[str, str]:
    """Parse an encryption context given as a JSON object of strings.

    Args:
        text: The option's value.
        option: The option's name, for the message.

    Returns:
        The context.

    Raises:
        ConfigurationError: Not a JSON object of strings.
    """
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # deep nesting: not a context
        value = None
    if not isinstance(value, dict) or not all(
        isinstance(v, str) for v in value.values()
    ):
        raise ConfigurationError(
            f"{option} takes a JSON object of strings, such as "
            '\'{"tenant": "acme"}\'.',
            option=option,
        )
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(
            f"{option} holds a lone surrogate (\\ud800-\\udfff), which is "
            "not text.",
            option=option,
        ) from None

    return value


def _max_failures(text: str) -> int | float:
    try:
        value: int | float
        if text.endswith("%"):
            value = float(text[:-1]) / 100.0
        elif "." in text:
            value = float(text)
        else:
            value = int(text)
        RotationConfig(max_failures=value)
    except ValueError as error:  # ConfigurationError is a ValueError too
        raise argparse.ArgumentTypeError(
            str(error)
            if isinstance(error, ConfigurationError)
            else f"takes a count or a fraction, got {text!r}"
        ) from None
    return value


def _check(args: argparse.Namespace) -> None:
    if args.processes > 1 and args.local:
        raise ConfigurationError(
            "--processes cannot be combined with --local: the local KMS "
            "lives in this process.",
            option="--processes",
        )
    if args.server_dry_run and not args.dry_run:
        raise ConfigurationError(
            "--server-dry-run samples a dry run; add --dry-run.",
            option="--server-dry-run",
        )
    if args.dry_run and args.journal:
        raise ConfigurationError(
            "--dry-run rotates nothing and keeps no journal; leave "
            "--journal out.",
            option="--journal",
        )
    if args.local and (args.endpoint_url or args.region or args.profile):
        raise ConfigurationError(
            "--local cannot be combined with --endpoint-url, --region or "
            "--profile.",
            option="--local",
        )
    _check_files(args)


def _journal_path(args: argparse.Namespace) -> str | None:
    if args.journal is None and args.output != "-" and not args.dry_run:
        return f"{args.output}.journal"
    path: str | None = args.journal
    return path


def _check_files(args: argparse.Namespace) -> None:
    # Two options naming one file would destroy it (the output truncates
    # the input, the journal turns it into a database); a file that
    # cannot be created is refused now rather than after KMS was called.
    named = [
        ("--input", args.input),
        ("--output", args.output),
        ("--journal", _journal_path(args)),
        ("--report", args.report),
    ]
    files = [
        (option, path) for option, path in named if path not in (None, "-")
    ]
    for option, path in files:
        if not usable_path(path):
            raise ConfigurationError(
                f"{option} {path!r} is not a usable file name.", option=option
            )
    for index, (option, path) in enumerate(files):
        for other, other_path in files[:index]:
            if _same_file(path, other_path):
                raise ConfigurationError(
                    f"{other} and {option} name the same file "
                    f"{other_path!r}; give each its own file.",
                    option=option,
                )
        if option != "--input":
            check_writable_file(option, path)
    if args.dry_run and args.output != "-":
        _check_dry_run_output(args.output)


def _check_dry_run_output(path: str) -> None:
    # A dry run writes its lines to a new file. An output that already
    # holds lines may hold the only copy of new ciphertexts from an
    # earlier run (its journal too, if it has one): never truncate it.
    journal = f"{path}.journal"
    if os.path.exists(journal) or (
        os.path.isfile(path) and os.path.getsize(path) > 0
    ):
        raise ConfigurationError(
            f"--output {path!r} already holds a rotation's output (or "
            f"{journal!r} exists), which a dry run would overwrite; give "
            "the dry run a new file or '-'.",
            option="--output",
        )


def check_writable_file(option: str, path: str) -> None:
    """Refuse a file the command could not create or replace.

    Args:
        option: The option that names it, for the message.
        path: The file's name.

    Raises:
        ConfigurationError: ``path`` is a directory, or its directory
            does not exist or cannot be written.
    """
    if os.path.isdir(path):
        raise ConfigurationError(
            f"{option} {path!r} is a directory; give a file.",
            option=option,
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise ConfigurationError(
            f"{option} {path!r}: the directory {directory!r} does not "
            "exist or cannot be written.",
            option=option,
        )


def usable_path(path: str) -> bool:
    """Whether ``path`` can name a file: not empty, no NUL byte, no lone
    surrogate.

    Args:
        path: The name given on the command line.

    Returns:
        True when the operating system can be asked about it.
    """
    try:
        return bool(path) and "\0" not in path and bool(os.fsencode(path))
    except UnicodeEncodeError:  # a lone surrogate no file name holds
        return False


def _same_file(first: str, second: str) -> bool:
    try:
        if os.path.samefile(first, second):
            return True
    except (OSError, ValueError):
        pass
    try:
        return os.path.realpath(first) == os.path.realpath(second)
    except ValueError:  # a NUL byte
        return False


def _open_input(
    args: argparse.Namespace, stack: contextlib.ExitStack
) -> IO[bytes]:
    if args.input == "-":
        return sys.stdin.buffer
    try:
        return stack.enter_context(open(args.input, "rb"))
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ConfigurationError(
            f"--input {args.input!r} cannot be read ({reason}).",
            option="--input",
        ) from None


def _fingerprint(args: argparse.Namespace, source: IO[bytes]) -> str | None:
    if args.input == "-" or not source.seekable():
        return None
    head = source.read(_FINGERPRINT_BYTES)
    source.seek(0)

    return hashlib.sha256(head).hexdigest()


def _client(
    args: argparse.Namespace, settings: ClientSettings
) -> ClientSettings | ReEncryptClient:
    # Built before any file is written, so that a bad --endpoint-url,
    # --region or --profile is a usage error that leaves nothing behind.
    # One process uses this client; worker processes build their own.
    client = settings.build(max_pool_connections=args.workers)
    return settings if args.processes > 1 else client


@contextlib.contextmanager
def client_settings(args: argparse.Namespace) -> Iterator[ClientSettings]:
    """Yield the client settings the options describe, running the local
    KMS for the duration when ``--local`` is given.

    Args:
        args: The parsed options.

    Yields:
        The settings.
    """
    if not args.local:
        yield ClientSettings(
            region_name=args.region,
            endpoint_url=args.endpoint_url,
            profile_name=args.profile,
        )
        return
    from .local import LocalKms

    with LocalKms() as kms:
        print(
            f"kms-reencrypt: using the local KMS at {kms.endpoint_url}",
            file=sys.stderr,
        )
        yield ClientSettings.for_local_kms(kms)


def run(args: argparse.Namespace) -> int:
    """Run ``rotate``.

    Args:
        args: The parsed options.

    Returns:
        0 when every item is ok, 1 when some failed, 3 when the run
        stopped early, 130 when it was interrupted (Ctrl-C); the summary
        and ``--report`` are written in every case.

    Raises:
        ConfigurationError: Contradictory options or a journal made for
            another run (exit status 2).
    """
    _check(args)
    context: DestinationContext = SAME_CONTEXT
    if args.no_destination_context:
        context = None
    elif args.destination_context is not None:
        context = parse_context(
            args.destination_context, "--destination-context"
        )

    report: RotationReport | None = None
    stopped: RotationStoppedError | None = None
    try:
        with contextlib.ExitStack() as stack:
            source = _open_input(args, stack)
            settings = stack.enter_context(client_settings(args))
            client = _client(args, settings)
            report, stopped = _rotate(args, stack, source, client, context)
    except WriteBackError as error:
        # The output's last lines or the journal's last commit failed
        # when closing.
        if report is None:
            raise
        if stopped is None or stopped.code != "WriteBackError":
            report, stopped = _cannot_write(error, report, args)
    _summarize(report, stopped)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as stream:
            json.dump(report.to_dict(), stream, indent=2)
            stream.write("\n")

    if stopped is not None:
        return _EXIT_INTERRUPTED if stopped.code == _INTERRUPTED else 3
    return 1 if report.failed else 0


def _rotate(
    args: argparse.Namespace,
    stack: contextlib.ExitStack,
    source: IO[bytes],
    client: ClientSettings | ReEncryptClient,
    context: DestinationContext,
) -> tuple[RotationReport, RotationStoppedError | None]:
    from ._journal import Journal
    from ._jsonl import OutputFile, outcome_line, read_items
    from ._progress import ProgressBar
    from ._rotate import rotate_iter

    journal_path = _journal_path(args)
    journal = None
    if journal_path is not None:
        journal = Journal(
            journal_path,
            destination_key_id=args.destination,
            fingerprint=_fingerprint(args, source),
        )

    output: OutputFile
    if args.output == "-":
        output = OutputFile(sys.stdout, fsync=False)
    else:
        resumed = journal is not None and journal.resumed
        output = OutputFile.open(
            args.output, journal=journal if resumed else None
        )
    # Closed after the journal, whose last commit writes to the output.
    stack.callback(output.close)
    if journal is not None:
        journal.on_commit = output.write_lines
        stack.callback(journal.close)

    bar = ProgressBar.create() if sys.stderr.isatty() else None

    rotation = rotate_iter(
        read_items(source),
        destination_key_id=args.destination,
        client=client,
        destination_encryption_context=context,
        dry_run=args.dry_run,
        server_dry_run=args.server_dry_run,
        journal=journal,
        journal_line=outcome_line if journal is not None else None,
        workers=args.workers,
        processes=args.processes,
        rate=args.rate,
        max_failures=args.max_failures,
        progress=bar,
    )
    stopped = None
    write_error = None
    interrupted = False
    with rotation:
        try:
            for outcome in rotation:
                if journal is None and outcome.status is not (
                    RotationStatus.SKIPPED
                ):
                    output.write_lines([outcome_line(outcome)])
        except RotationStoppedError as error:
            stopped = error
        except WriteBackError as error:
            # The output file or the journal could not be written. Each
            # item is committed in the journal, or not done at all.
            write_error = error
        except KeyboardInterrupt:
            # Leaving the block waits for the calls in flight, whose
            # outcomes the journal commits; then the summary says so.
            interrupted = True
    if write_error is not None:
        return _cannot_write(write_error, rotation.report, args)
    if interrupted:
        return _interrupted(rotation.report, args)

    return rotation.report, stopped


def _interrupted(
    report: RotationReport, args: argparse.Namespace
) -> tuple[RotationReport, RotationStoppedError]:
    return _stopped(
        report,
        args,
        "interrupted (Ctrl-C or SIGINT).",
        code=_INTERRUPTED,
        then="run the same command again to finish.",
    )


def _cannot_write(
    error: WriteBackError, report: RotationReport, args: argparse.Namespace
) -> tuple[RotationReport, RotationStoppedError]:
    return _stopped(
        report,
        args,
        str(error),
        code="WriteBackError",
        then="make room or fix the file, then run the same command again "
        "to finish.",
    )


def _stopped(
    report: RotationReport,
    args: argparse.Namespace,
    reason: str,
    *,
    code: str,
    then: str,
) -> tuple[RotationReport, RotationStoppedError]:
    # The reason, and with a journal what to do next, in the report and
    # in the error the summary prints.
    journal = _journal_path(args)
    if journal is not None:
        reason += (
            f" Items the journal {journal} records as done stay done; {then}"
        )
    report = attrs.evolve(report, stopped_reason=reason)

    return report, RotationStoppedError(reason, code=code, report=report)


def _summarize(
    report: RotationReport, stopped: RotationStoppedError | None
) -> None:
    codes = ", ".join(
        f"{code} {count}"
        for code, count in sorted(report.failures_by_code.items())
    )
    failed = f"{report.failed} failed" + (f" ({codes})" if codes else "")
    parts = [f"{report.ok} ok", failed]
    if report.dry_run:
        parts.append(f"{report.dry_run} dry-run")
    if report.skipped:
        parts.append(f"{report.skipped} skipped (done earlier)")
    if report.not_attempted:
        parts.append(f"{report.not_attempted} not attempted")
    lines = [
        "kms-reencrypt rotate: " + ", ".join(parts),
        f"  {report.calls} KMS calls, {report.retries} retries, "
        f"{report.throttles} throttled, {report.calls_per_second:.1f} "
        f"calls/s, {report.elapsed:.1f} s",
    ]
    failed_lines = sorted(line for _, _, line in report.failed_items if line)
    if failed_lines:
        shown = ", ".join(str(line) for line in failed_lines[:_LINES_SHOWN])
        more = len(failed_lines) - _LINES_SHOWN
        lines.append(
            f"  failed input lines: {shown}"
            + (f" and {more} more" if more > 0 else "")
            + " (each has a failed line in the output)"
        )
    if stopped is not None:
        lines.append(f"  stopped early: {stopped.reason}")
    print("\n".join(lines), file=sys.stderr)
