"""``kms-reencrypt demo``: a real key rotation on the embedded local KMS.

It starts the local KMS, creates a source key and a destination key
(with an alias), encrypts generated data keys under the source key with
an encryption context, re-encrypts all of them to the destination through
the bulk rotation engine (``kms_reencrypt.rotate_iter``, which calls the
facade per item), and proves the result: every new ciphertext names the
destination key ARN, decrypts to the original bytes under the destination
context, and no old ciphertext was changed.

The demo alone calls GenerateDataKey and Decrypt, to make and check its
data; the library never does.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

__all__ = ["add_arguments", "run"]

DEFAULT_COUNT = 200
DESTINATION_ALIAS = "alias/kms-reencrypt-demo-destination"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to its sub-command parser."""
    parser.add_argument(
        "--count",
        type=_positive,
        default=DEFAULT_COUNT,
        help=f"how many data keys to rotate (default {DEFAULT_COUNT})",
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        default=8,
        help="concurrent ReEncrypt calls (default 8)",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def run(args: argparse.Namespace) -> int:
    """Run the demo and return its exit status (0 when all verified)."""
    from .local import LocalKms

    count: int = args.count
    out = sys.stdout
    with LocalKms() as local:
        kms: Any = local.kms_client()
        facade = local.client()
        print(f"local KMS listening on {local.endpoint_url}", file=out)

        source = kms.create_key(Description="demo source")["KeyMetadata"]
        destination = kms.create_key(Description="demo destination")[
            "KeyMetadata"
        ]
        kms.create_alias(
            AliasName=DESTINATION_ALIAS, TargetKeyId=destination["KeyId"]
        )
        print(
            f"source key {source['Arn']}\n"
            f"destination key {destination['Arn']} ({DESTINATION_ALIAS})",
            file=out,
        )

        originals, old_blobs, contexts = _make_data_keys(
            kms, source["Arn"], count
        )
        print(f"encrypted {count} data keys under the source key", file=out)

        from ._rotate import RotationItem, rotate_iter

        items = (
            RotationItem(
                id=str(index),
                ciphertext_blob=old_blobs[index],
                encryption_context=contexts[index],
                source_key_id=source["Arn"],
            )
            for index in range(count)
        )
        started = time.perf_counter()
        # The engine binds each new ciphertext to its old context.
        rotation = rotate_iter(
            items,
            destination_key_id=DESTINATION_ALIAS,
            client=facade,
            workers=args.workers,
        )
        results: list[Any] = [None] * count
        with rotation:
            for outcome in rotation:
                results[int(str(outcome.id))] = outcome
        elapsed = time.perf_counter() - started
        report = rotation.report

        problems = _verify(
            kms,
            destination_arn=destination["Arn"],
            source_arn=source["Arn"],
            originals=originals,
            old_blobs=old_blobs,
            contexts=contexts,
            results=results,
        )

    rate = count / elapsed if elapsed > 0 else float("inf")
    print(
        f"re-encrypted {report.ok} of {count} data keys in {elapsed:.2f} s "
        f"({rate:.0f} calls/s, {report.retries} retries)",
        file=out,
    )
    if problems:
        for problem in problems[:20]:
            print(f"MISMATCH {problem}", file=out)
        print(f"FAILED: {len(problems)} problems", file=out)
        return 1
    print(
        f"verified {count}/{count}: every new ciphertext names the "
        "destination key, decrypts to the original data key under the "
        "destination context, and every old ciphertext is unchanged",
        file=out,
    )

    return 0


def _make_data_keys(
    kms: Any, source_arn: str, count: int
) -> tuple[list[bytes], list[bytes], list[dict[str, str]]]:
    originals, blobs, contexts = [], [], []
    for index in range(count):
        context = {"purpose": "kms-reencrypt-demo", "item": str(index)}
        answer = kms.generate_data_key(
            KeyId=source_arn, KeySpec="AES_256", EncryptionContext=context
        )
        originals.append(answer["Plaintext"])
        blobs.append(answer["CiphertextBlob"])
        contexts.append(context)

    return originals, blobs, contexts


def _verify(
    kms: Any,
    *,
    destination_arn: str,
    source_arn: str,
    originals: list[bytes],
    old_blobs: list[bytes],
    contexts: list[dict[str, str]],
    results: list[Any],
) -> list[str]:
    problems = []
    for index, result in enumerate(results):
        if result is None or not result.ok:
            code = None if result is None else result.error_code
            problems.append(f"item {index}: not rotated ({code})")
            continue
        if result.key_id != destination_arn:
            problems.append(f"item {index}: key_id is {result.key_id}")
            continue
        if result.ciphertext_blob == old_blobs[index]:
            problems.append(f"item {index}: ciphertext did not change")
        plain = kms.decrypt(
            CiphertextBlob=result.ciphertext_blob,
            EncryptionContext=contexts[index],
        )
        if plain["KeyId"] != destination_arn:
            problems.append(f"item {index}: decrypts under {plain['KeyId']}")
        if plain["Plaintext"] != originals[index]:
            problems.append(f"item {index}: data key differs")
        # The old ciphertext is untouched: it still decrypts to the same
        # data key under the source key.
        old = kms.decrypt(
            CiphertextBlob=old_blobs[index], EncryptionContext=contexts[index]
        )
        if old["KeyId"] != source_arn or old["Plaintext"] != originals[index]:
            problems.append(f"item {index}: old ciphertext changed")

    return problems
