"""``kms-reencrypt local serve``: run the local KMS in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` sub-command to the ``local`` command's parser.

    Args:
        parser: The parser of the ``local`` command.
    """
    commands = parser.add_subparsers(dest="local_command", metavar="ACTION")
    commands.required = True
    serve = commands.add_parser(
        "serve",
        help="serve the local KMS until interrupted",
        description="Serve the local KMS in the foreground. The endpoint "
        "URL is printed on one line to standard output; stop with Ctrl-C "
        "or SIGTERM.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind")
    serve.add_argument(
        "--port", type=int, default=0, help="port to bind (0: a free one)"
    )
    serve.add_argument("--region", default="us-east-1", help="the Region")
    serve.add_argument(
        "--account-id", default="111122223333", help="the account id"
    )
    serve.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="seconds added to each cryptographic request",
    )
    serve.add_argument(
        "--max-rps",
        type=float,
        default=None,
        help="throttle cryptographic requests above this rate",
    )
    for name, what in (
        ("throttle", "ThrottlingException"),
        ("server-error", "HTTP 500 errors"),
        ("reset", "connection resets"),
        ("response-reset", "answers cut off by a reset"),
    ):
        serve.add_argument(
            f"--{name}-fraction",
            type=float,
            default=0.0,
            metavar="F",
            help=f"fraction of cryptographic requests answered with {what}",
        )


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM.

    Args:
        args: The parsed command line.

    Returns:
        The exit status: 0 after a clean stop; 2 for a wrong fault
        value or an address and port it cannot listen on.
    """
    from ._faults import Faults
    from ._server import LocalKms

    try:
        faults = Faults(
            latency=args.latency,
            max_rps=args.max_rps,
            throttle_fraction=args.throttle_fraction,
            server_error_fraction=args.server_error_fraction,
            reset_fraction=args.reset_fraction,
            response_reset_fraction=args.response_reset_fraction,
        )
    except ValueError as error:
        print(f"kms-reencrypt: error: {error}", file=sys.stderr)
        return 2
    if not _is_loopback(args.host):
        # The local KMS checks no signature and holds real key material:
        # anyone who can reach the port can use every key.
        print(
            f"kms-reencrypt: warning: serving on {args.host}, not loopback; "
            "the local KMS accepts unsigned requests from anyone who can "
            "reach it. Use it only on a trusted network.",
            file=sys.stderr,
        )
    kms = LocalKms(
        region=args.region,
        account_id=args.account_id,
        host=args.host,
        port=args.port,
        faults=faults,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        kms.start()
    except OSError as error:
        # A port in use or an address not on this machine: an option.
        print(
            f"kms-reencrypt: error: cannot listen on {args.host} port "
            f"{args.port}: {error.strerror or error}",
            file=sys.stderr,
        )
        return 2
    previous = {
        sig: signal.signal(sig, _on_signal)
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with kms:
            print(kms.endpoint_url, flush=True)
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return 0
