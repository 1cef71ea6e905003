"""The ``kms-reencrypt`` command.

Each sub-command lives in the module that owns its feature and registers
itself through a ``(add_arguments, run)`` pair listed in ``_COMMANDS``;
this module only builds the parser, configures logging and maps
exceptions to exit statuses:

* 0: everything succeeded;
* 1: some items (or the one request) failed at KMS;
* 2: usage error (argparse's own, or contradictory options, files and
  client settings found wrong before anything was sent; both print the
  usage line), or a request refused before anything was sent;
* 3: a rotation stopped on a systemic error.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
from collections.abc import Iterator, Sequence

from ._exceptions import ConfigurationError, KmsReEncryptError
from ._version import __version__

__all__ = ["main"]

log = logging.getLogger(__name__)

# name -> (module, help); each module has add_arguments(parser) and
# run(args) -> int. Every module is imported to build the parser, so they
# keep heavy imports (the local KMS, cryptography, tqdm) inside run().
_COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "kms_reencrypt._demo",
        "rotate generated data keys on the embedded local KMS and verify",
    ),
    "local": (
        "kms_reencrypt.local._serve",
        "run the embedded local KMS",
    ),
    "re-encrypt": (
        "kms_reencrypt._reencrypt_cli",
        "re-encrypt one ciphertext under another key",
    ),
    "rotate": (
        "kms_reencrypt._rotate_cli",
        "re-encrypt a JSON Lines file of ciphertexts, resumably",
    ),
    "rotate-parquet": (
        "kms_reencrypt._rotate_parquet_cli",
        "rotate an encrypted column of a Parquet dataset on a Dask cluster",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``kms-reencrypt`` command."""
    parser = argparse.ArgumentParser(
        prog="kms-reencrypt",
        description="Re-encrypt AWS KMS ciphertext under another key, "
        "without the plaintext leaving KMS.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log more (-v INFO, -vv DEBUG); logs go to standard error",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for name, (module_name, help_text) in _COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module_name, _parser=sub)
        module = importlib.import_module(module_name)
        module.add_arguments(sub)

    return parser


@contextlib.contextmanager
def _logging_to_stderr(verbose: int) -> Iterator[None]:
    # -v and -vv raise this library's loggers only. botocore's DEBUG
    # output carries whole request and response bodies (ciphertexts,
    # data keys from the demo, grant tokens, the access key id), so it
    # stays at WARNING whatever the verbosity. Everything is put back
    # afterwards, so that main() can also be called in-process.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    ours = logging.getLogger("kms_reencrypt")
    levels = root.level, ours.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    ours.setLevel(
        (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    )
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])


#: Top-level packages of the optional extras, by the extra that has them.
_EXTRAS = {
    "cryptography": "local",
    "tqdm": "cli",
    "dask": "dask",
    "distributed": "dask",
    "pyarrow": "dask",
    "pandas": "dask",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status.

    Args:
        argv: The arguments, without the program name; ``sys.argv[1:]``
            when None.

    Returns:
        The exit status.
    """
    # Python's own stderr has errors="backslashreplace"; one that replaced
    # it (a test's, an embedding program's) may not, and an argument with
    # an undecodable byte (a lone surrogate) must not turn a usage message
    # into a UnicodeEncodeError.
    if getattr(sys.stderr, "errors", None) == "strict":
        with contextlib.suppress(AttributeError, ValueError):
            sys.stderr.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        module = importlib.import_module(args._module)
        with _logging_to_stderr(args.verbose):
            status: int = module.run(args)
    except ConfigurationError as error:
        # Contradictory options, or values argparse alone cannot judge
        # (files, endpoint, Region, profile): a usage error, as argparse
        # reports its own, and nothing was sent.
        sub: argparse.ArgumentParser = args._parser
        sub.print_usage(sys.stderr)
        print(f"{sub.prog}: error: {error}", file=sys.stderr)
        return ConfigurationError.exit_code
    except KmsReEncryptError as error:
        print(f"kms-reencrypt: error: {error}", file=sys.stderr)
        return type(error).exit_code
    except KeyboardInterrupt:
        print("kms-reencrypt: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as error:
        # An optional dependency of this sub-command is not installed: a
        # usage error that names the extra, not a traceback.
        extra = _EXTRAS.get((error.name or "").partition(".")[0])
        if extra is None:
            raise
        print(
            f"kms-reencrypt: error: this command needs the {error.name} "
            f"package; install it with: pip install "
            f"'kms_reencrypt[{extra}]'",
            file=sys.stderr,
        )
        return ConfigurationError.exit_code

    return status
