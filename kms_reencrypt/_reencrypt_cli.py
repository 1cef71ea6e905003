"""``kms-reencrypt re-encrypt``: re-encrypt one ciphertext.

The options follow the AWS CLI's ``aws kms re-encrypt`` where they
overlap, but nothing of the AWS CLI's own configuration is read
(``cli_binary_format``, ``output`` and the like): ciphertext is given as
base64 text or as a file of raw bytes, and the output format is chosen
here. Only botocore's credential and Region chain applies, or nothing at
all with ``--local``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._encoding import ciphertext_from_base64, ciphertext_to_base64
from ._exceptions import ConfigurationError
from ._rotate_cli import (
    add_client_arguments,
    add_destination_argument,
    client_settings,
    parse_context,
)
from ._types import DryRunResult

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``re-encrypt`` to its sub-command parser.

    Args:
        parser: The sub-command's parser.
    """
    add_destination_argument(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--ciphertext-b64",
        metavar="TEXT|-",
        help="the ciphertext as base64 text; '-' reads it from standard input",
    )
    source.add_argument(
        "--ciphertext-file",
        metavar="PATH",
        help="a file holding the raw ciphertext bytes",
    )
    parser.add_argument(
        "--output-format",
        choices=("raw", "base64", "json"),
        default="base64",
        help="raw bytes, base64 text (default) or the JSON of the response",
    )
    parser.add_argument("--source-key-id", metavar="KEY")
    parser.add_argument("--source-encryption-context", metavar="JSON")
    parser.add_argument("--destination-encryption-context", metavar="JSON")
    parser.add_argument("--source-encryption-algorithm", metavar="ALGORITHM")
    parser.add_argument(
        "--destination-encryption-algorithm", metavar="ALGORITHM"
    )
    parser.add_argument(
        "--grant-token",
        action="append",
        dest="grant_tokens",
        metavar="TOKEN",
        help="a grant token; repeat for several",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="ask KMS whether the call would succeed, without doing it",
    )
    parser.add_argument(
        "--ignore-ciphertext",
        action="store_true",
        help="with --dry-run, check permissions only (needs --source-key-id)",
    )
    add_client_arguments(parser)


def _ciphertext(args: argparse.Namespace) -> bytes | None:
    if args.ciphertext_file is not None:
        if args.ciphertext_file == "-":
            return sys.stdin.buffer.read()
        try:
            return Path(args.ciphertext_file).read_bytes()
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise ConfigurationError(
                f"--ciphertext-file {args.ciphertext_file!r} cannot be read "
                f"({reason}).",
                option="--ciphertext-file",
            ) from None
    if args.ciphertext_b64 is not None:
        text = args.ciphertext_b64
        if text == "-":
            text = sys.stdin.read()
        return ciphertext_from_base64(text)
    if not args.ignore_ciphertext:
        raise ConfigurationError(
            "give the ciphertext with --ciphertext-b64 or --ciphertext-file "
            "(or --dry-run --ignore-ciphertext to check permissions only).",
            option="--ciphertext-b64",
        )
    return None


def run(args: argparse.Namespace) -> int:
    """Run ``re-encrypt``.

    Args:
        args: The parsed options.

    Returns:
        0; failures raise and ``main`` maps them to exit statuses.

    Raises:
        ConfigurationError: Contradictory options (exit status 2).
    """
    if args.ignore_ciphertext and not args.dry_run:
        raise ConfigurationError(
            "--ignore-ciphertext only applies to a --dry-run.",
            option="--ignore-ciphertext",
        )
    if args.local and (args.endpoint_url or args.region or args.profile):
        raise ConfigurationError(
            "--local cannot be combined with --endpoint-url, --region or "
            "--profile.",
            option="--local",
        )
    blob = _ciphertext(args)
    source_context = None
    if args.source_encryption_context is not None:
        source_context = parse_context(
            args.source_encryption_context, "--source-encryption-context"
        )
    destination_context = None
    if args.destination_encryption_context is not None:
        destination_context = parse_context(
            args.destination_encryption_context,
            "--destination-encryption-context",
        )

    with client_settings(args) as settings:
        client = settings.build(max_pool_connections=1)
        result = client.re_encrypt(
            CiphertextBlob=blob,
            DestinationKeyId=args.destination,
            SourceKeyId=args.source_key_id,
            SourceEncryptionContext=source_context,
            DestinationEncryptionContext=destination_context,
            SourceEncryptionAlgorithm=args.source_encryption_algorithm,
            DestinationEncryptionAlgorithm=(
                args.destination_encryption_algorithm
            ),
            GrantTokens=args.grant_tokens,
            DryRun=True if args.dry_run else None,
            DryRunModifiers=(
                ["IGNORE_CIPHERTEXT"] if args.ignore_ciphertext else None
            ),
        )

    if isinstance(result, DryRunResult):
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    if args.output_format == "raw":
        sys.stdout.buffer.write(result.ciphertext_blob)
        sys.stdout.buffer.flush()
    elif args.output_format == "base64":
        print(ciphertext_to_base64(result.ciphertext_blob))
    else:
        response = result.to_dict()
        response["CiphertextBlob"] = ciphertext_to_base64(
            result.ciphertext_blob
        )
        print(json.dumps(response, indent=2))

    return 0
