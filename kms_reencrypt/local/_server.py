"""The HTTP side of the local KMS: AWS JSON 1.1 over HTTP/1.1 with
keep-alive on the standard library's ``ThreadingHTTPServer``, and the
``LocalKms`` object that owns it."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import re
import socket
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError
from .._preflight import DEFAULT_PREFLIGHT_TTL
from ._errors import KmsError
from ._faults import FaultInjector, Faults, LocalKmsStats
from ._keys import KEY_STATES, KeyStore
from ._operations import CRYPTO_OPERATIONS, OPERATIONS, Operations

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from botocore.config import Config

    from .._client import ReEncryptClient

__all__ = ["LocalKms"]

log = logging.getLogger(__name__)

_TARGET_PREFIX = "TrentService."
_CONTENT_TYPE = "application/x-amz-json-1.1"
_JOIN_TIMEOUT = 5.0
#: The largest request body read: the largest valid KMS request (ten 8 KB
#: grant tokens, a 6 KB ciphertext in base64, key ids and a context) is
#: far smaller. A larger one is answered ValidationException unread.
MAX_BODY = 1 << 20
#: Seconds spent reading what a client still sends after an answer that
#: closes the connection, so that closing does not reset the connection
#: before the client has read the answer.
_LINGER = 2.0
# Region names as botocore accepts them, account ids as AWS makes them,
# and host names or IP addresses (with an IPv6 zone).
_REGION = re.compile(r"(?![0-9]+$)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)")
_ACCOUNT = re.compile(r"[0-9]{12}")
_HOST = re.compile(r"[a-zA-Z0-9._:%-]{1,253}")


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that knows its open connections, so that
    stopping it closes idle keep-alive connections too."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # socketserver listens with a backlog of 5: a rotation opening its 16
    # or more connections at once overflowed it, and each dropped SYN
    # cost its worker the kernel's one-second retransmission wait.
    request_queue_size = socket.SOMAXCONN

    def __init__(self, address: tuple[str, int], kms: LocalKms) -> None:
        if ":" in address[0]:
            # An IPv6 address: the class default is IPv4 only.
            self.address_family = socket.AF_INET6
        self.kms = kms
        self._open_lock = threading.Lock()
        self._open: dict[socket.socket, threading.Thread] = {}
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"local-kms-{self.server_address[1]}-connection",
            daemon=True,
        )
        with self._open_lock:
            self._open[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.pop(request, None)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every connection thread and wait for it to end."""
        with self._open_lock:
            open_now = list(self._open.items())
        for sock, _ in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _, thread in open_now:
            thread.join(_JOIN_TIMEOUT)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-request is not worth a traceback;
        # anything else is a bug of the local KMS.
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            log.debug("connection from %s ended with an error", client_address)
            return
        log.error(
            "local KMS connection from %s failed",
            client_address,
            exc_info=error,
        )


class _Handler(BaseHTTPRequestHandler):
    """One connection: any number of requests while the client keeps it
    alive."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY the
    # second waits for the client's delayed ACK (about 40 ms a request).
    disable_nagle_algorithm = True
    server: _Server
    raw_requestline: bytes
    # Set per request by a response_reset fault.
    _cut_response = False
    # Set when the answer closes a connection whose request was not read
    # to its end.
    _linger = False

    def log_message(self, format: str, *args: Any) -> None:
        # http.server logs to stderr; requests are logged in _answer.
        return

    def parse_request(self) -> bool:
        if not self.raw_requestline.strip():
            # A blank request line: http.server would close the
            # connection without a word.
            self.command = self.requestline = ""
            self.request_version = "HTTP/1.1"
            self.send_error(400)
            return False
        parsed: bool = super().parse_request()
        return parsed

    def send_error(
        self, code: int, message: str | None = None, explain: str | None = None
    ) -> None:
        """Answer an HTTP-level error (a request that cannot be parsed,
        an unsupported method) as KMS-style JSON, and close."""
        if code == 501:
            error = KmsError(
                "UnknownOperationException",
                f"The local KMS answers POST only, not {self.command!s:.20}.",
            )
        else:
            error = KmsError(
                "SerializationException",
                f"The request is not readable HTTP (HTTP status {code}).",
            )
        self.close_connection = True
        self._linger = True
        self._cut_response = False
        self._error("", str(uuid.uuid4()), error)

    def _read_body(self) -> bytes:
        """Read the body its Content-Length announces.

        Raises:
            KmsError: No usable Content-Length; the connection must then
                be closed, as the end of the body is unknown.
        """
        if "Transfer-Encoding" in self.headers:
            raise KmsError(
                "SerializationException",
                "Transfer-Encoding is not supported: send a Content-Length.",
            )
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            return b""
        text = lengths[0].strip()
        if not (text.isascii() and text.isdigit()) or any(
            other.strip() != text for other in lengths
        ):
            raise KmsError(
                "SerializationException",
                "The Content-Length header is not one number of bytes.",
            )
        # Leading zeros are still one number; the length of what is left
        # bounds it before int() reads thousands of digits.
        digits = text.lstrip("0")
        if len(digits) > 9 or int(digits or "0") > MAX_BODY:
            raise KmsError(
                "ValidationException",
                f"The request body is longer than {MAX_BODY} bytes.",
            )
        length = int(text)
        raw: bytes = self.rfile.read(length) if length else b""
        if len(raw) < length:
            # The client stopped sending: nothing more can come.
            self.close_connection = True
        return raw

    def do_POST(self) -> None:
        self._cut_response = False
        request_id = str(uuid.uuid4())
        target = self.headers.get("X-Amz-Target", "")
        operation = (
            target[len(_TARGET_PREFIX) :]
            if target.startswith(_TARGET_PREFIX)
            else ""
        )
        kms = self.server.kms
        # Unknown names are counted together: a client cannot grow the
        # counters without bound.
        kms._injector.count(
            operation if operation in OPERATIONS else "<unknown>"
        )
        try:
            raw = self._read_body()
        except KmsError as error:
            self.close_connection = True
            self._linger = True
            self._error(operation, request_id, error)
            return

        if operation in CRYPTO_OPERATIONS:
            decision = kms._injector.decide()
            if decision.delay:
                time.sleep(decision.delay)
            if decision.reset:
                self._reset(operation, request_id)
                return
            self._cut_response = decision.cut_response
            if decision.error_code is not None:
                self._error(
                    operation,
                    request_id,
                    KmsError(
                        decision.error_code,
                        _FAULT_MESSAGES[decision.error_code],
                    ),
                )
                return

        try:
            handler = OPERATIONS.get(operation)
            if handler is None:
                raise KmsError(
                    "UnknownOperationException",
                    "The local KMS does not implement the operation "
                    f"{target[:100]!r}.",
                )
            body = _json_object(raw)
            response = handler(kms._operations, body)
        except KmsError as error:
            self._error(operation, request_id, error)
            return
        except Exception:  # a bug: it must not cost the connection
            log.exception(
                "local KMS failed on %s (request id %s)", operation, request_id
            )
            self._error(
                operation,
                request_id,
                KmsError("KMSInternalException", "The local KMS failed."),
            )
            return
        self._answer(operation, request_id, 200, response)

    def do_GET(self) -> None:
        # As any method but POST; a body it may carry is left unread.
        self.send_error(501)

    def _error(self, operation: str, request_id: str, error: KmsError) -> None:
        self._answer(
            operation,
            request_id,
            error.status,
            {"__type": error.code, "message": error.message},
        )

    def _answer(
        self,
        operation: str,
        request_id: str,
        status: int,
        body: dict[str, Any],
    ) -> None:
        payload = json.dumps(body).encode()
        if self.request_version == "HTTP/0.9":
            # No status line and no headers in HTTP/0.9: answer in 1.0.
            self.request_version = "HTTP/1.0"
        self.send_response(status)
        self.send_header("Content-Type", _CONTENT_TYPE)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-amzn-RequestId", request_id)
        if self.close_connection:
            # So that a client does not send its next request here.
            self.send_header("Connection", "close")
        self.end_headers()
        if self._cut_response:
            with contextlib.suppress(OSError):
                self.wfile.write(payload[: len(payload) // 2])
            self._reset(operation, request_id)
            return
        self.wfile.write(payload)
        if self._linger:
            self._drain()
        log.debug(
            "%s -> %s %s (request id %s)",
            operation or "<unknown>",
            status,
            body.get("__type", "OK"),
            request_id,
        )

    def _drain(self) -> None:
        # Closing a socket with unread data sends a reset, which can
        # destroy the answer before the client reads it: say that nothing
        # more comes, and read what the client still sends, for a while.
        self._linger = False
        self.close_connection = True
        deadline = time.monotonic() + _LINGER
        with contextlib.suppress(OSError, ValueError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            while (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                if not self.connection.recv(65536):
                    break

    def _reset(self, operation: str, request_id: str) -> None:
        # SO_LINGER with a zero timeout makes close() send a TCP RST.
        log.debug(
            "%s -> connection reset (request id %s)", operation, request_id
        )
        self.close_connection = True
        try:
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            self.connection.close()
        except OSError:
            pass

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_object(raw: bytes) -> dict[str, Any]:
    """Decode a request body: UTF-8 JSON text of an object.

    Raises:
        KmsError: ``SerializationException`` for anything else.
    """
    try:
        text = raw.decode("utf-8") if raw else "{}"
        body = json.loads(text, parse_constant=_refuse_constant)
        # A \ud800 escape decodes to a lone surrogate, which is no
        # Unicode text; refuse it here as a client error rather than fail
        # later with a (retryable) internal error.
        if "\\u" in text:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):
        # UnicodeError is a ValueError; RecursionError is deep nesting.
        raise KmsError(
            "SerializationException", "The body is not valid JSON text."
        ) from None
    if not isinstance(body, dict):
        raise KmsError(
            "SerializationException", "The body is not a JSON object."
        )
    return body


_FAULT_MESSAGES = {
    "ThrottlingException": "You have exceeded the rate at which you may "
    "call KMS. Reduce the frequency of your calls.",
    "KMSInternalException": "An injected internal error occurred; retry.",
    "DependencyTimeoutException": "An injected dependency timeout "
    "occurred; retry.",
}


class LocalKms:
    """A KMS on 127.0.0.1 that behaves like the real service for
    ReEncrypt and the operations around it.

    Use it as a context manager, or call ``start`` and ``stop``. It can be
    stopped and started again: it comes back on the same port with the
    same keys. Every method is safe to call from several threads.

    Args:
        region: The one Region it serves.
        account_id: The one account all callers belong to.
        host: The address to listen on.
        port: The port to listen on; 0 for a free one.
        faults: Faults to inject into cryptographic operations.

    Raises:
        ConfigurationError: ``region`` is not a Region name botocore
            accepts, ``account_id`` not 12 ASCII digits, ``host`` not a
            host name or IP address, ``port`` not an int from 0 to 65535,
            or ``faults`` neither ``Faults`` nor None.
    """

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        account_id: str = "111122223333",
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
    ) -> None:
        _check_option("region", region, _REGION, "a Region name")
        _check_option("account_id", account_id, _ACCOUNT, "12 digits")
        _check_option("host", host, _HOST, "a host name or IP address")
        if (
            isinstance(port, bool)
            or not isinstance(port, int)
            or not 0 <= port <= 65535
        ):
            shown = (
                repr(port)
                if isinstance(port, int) and -(10**9) < port < 10**9
                else type(port).__name__
            )
            raise ConfigurationError(
                f"port must be an int from 0 to 65535, got {shown}.",
                option="port",
            )
        usable_faults = _faults(faults)
        self._region = region
        self._account_id = account_id
        self._host = host
        self._port = port
        self._store = KeyStore(region=region, account_id=account_id)
        self._operations = Operations(self._store)
        self._injector = FaultInjector(usable_faults)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return (
            f"LocalKms(region={self._region!r}, account_id="
            f"{self._account_id!r}, host={self._host!r}, port={self._port!r}, "
            f"running={self.running!r})"
        )

    # -- lifecycle --

    def start(self) -> LocalKms:
        """Start serving; on the same port as before after a ``stop``.

        Returns:
            This object, so that ``kms = LocalKms().start()`` works.

        Raises:
            OSError: The port cannot be bound.
        """
        with self._lock:
            if self._server is not None:
                return self
            server = _Server((self._host, self._port), self)
            self._port = server.server_address[1]
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"local-kms-{self._port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
        log.debug("local KMS listening on %s", self.endpoint_url)

        return self

    def stop(self) -> None:
        """Stop serving and close every connection; keys are kept."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None or thread is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(_JOIN_TIMEOUT)
        log.debug("local KMS on port %s stopped", self._port)

    def __enter__(self) -> LocalKms:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the server accepts requests."""
        return self._server is not None

    # -- where and who --

    @property
    def endpoint_url(self) -> str:
        """The URL to give botocore as ``endpoint_url``.

        Raises:
            RuntimeError: Asked before the first start with port 0.
        """
        if self._port == 0:
            raise RuntimeError("The local KMS has no port until started.")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def region(self) -> str:
        """The Region it serves."""
        return self._region

    @property
    def account_id(self) -> str:
        """The account its keys belong to."""
        return self._account_id

    # -- faults and counters --

    @property
    def faults(self) -> Faults:
        """The faults in force; assign a new ``Faults`` to change them,
        or None for none.

        Raises:
            ConfigurationError: Assigned something that is neither
                ``Faults`` nor None.
        """
        return self._injector.faults

    @faults.setter
    def faults(self, faults: Faults | None) -> None:
        self._injector.faults = _faults(faults)

    @property
    def stats(self) -> LocalKmsStats:
        """A frozen snapshot of the request and fault counters."""
        return self._injector.snapshot()

    # -- clients --

    def kms_client(self, config: Config | None = None) -> BaseClient:
        """Return a botocore KMS client for this local KMS.

        The client has dummy credentials and reads nothing of the user's
        AWS configuration (profile, files, environment, endpoint URLs).

        Args:
            config: A botocore ``Config`` (retries, timeouts).

        Returns:
            A botocore KMS client.

        Raises:
            ConfigurationError: ``config`` is not a botocore ``Config``.
            RuntimeError: Called before the first start with port 0.
        """
        from .._session import isolated_kms_client

        return isolated_kms_client(
            endpoint_url=self.endpoint_url,
            region_name=self._region,
            config=config,
        )

    def client(
        self,
        config: Config | None = None,
        *,
        allow_aws_managed_key: bool = False,
        preflight: bool = False,
        preflight_ttl: float = DEFAULT_PREFLIGHT_TTL,
    ) -> ReEncryptClient:
        """Return a ``ReEncryptClient`` for this local KMS.

        Args:
            config: A botocore ``Config``, as for ``kms_client``.
            allow_aws_managed_key: As for ``ReEncryptClient``.
            preflight: As for ``ReEncryptClient``.
            preflight_ttl: As for ``ReEncryptClient``.

        Returns:
            The facade over a new botocore client.

        Raises:
            ConfigurationError: ``config`` is not a botocore ``Config``,
                or an option ``ReEncryptClient`` refuses.
            RuntimeError: Called before the first start with port 0.
        """
        from .._client import ReEncryptClient

        return ReEncryptClient(
            self.kms_client(config),
            allow_aws_managed_key=allow_aws_managed_key,
            preflight=preflight,
            preflight_ttl=preflight_ttl,
        )

    # -- keys from Python, through the same store as CreateKey --

    def create_key(
        self,
        key_spec: str = "SYMMETRIC_DEFAULT",
        key_usage: str = "ENCRYPT_DECRYPT",
        *,
        multi_region: bool = False,
        alias: str | None = None,
        description: str = "",
    ) -> dict[str, Any]:
        """Create a key as CreateKey does, without an HTTP round trip.

        Args:
            key_spec: The ``KeySpec``.
            key_usage: The ``KeyUsage``.
            multi_region: Create a multi-Region key (``mrk-`` id).
            alias: An alias name (``alias/...``) to point at the key.
            description: The key description.

        Returns:
            The ``KeyMetadata`` as botocore's DescribeKey returns it
            (``CreationDate`` a datetime); ``["KeyId"]`` and ``["Arn"]``
            are the usual picks.

        Raises:
            KmsError: The same errors CreateKey and CreateAlias answer
                (``SerializationException`` for an argument of the wrong
                type); no key is made then.
        """
        if alias is not None:
            self._operations.check_new_alias(alias)
        created = self._operations.create_key(
            {
                "KeySpec": key_spec,
                "KeyUsage": key_usage,
                "MultiRegion": multi_region,
                "Description": description,
            }
        )
        metadata: dict[str, Any] = created["KeyMetadata"]
        if alias is not None:
            self._operations.create_alias(
                {"AliasName": alias, "TargetKeyId": metadata["KeyId"]}
            )

        return _as_botocore(metadata)

    def set_key_state(self, key_id: str, state: str) -> None:
        """Put a key in any key state, for tests of the states AWS
        reaches only through custom key stores, imports or replication.

        Args:
            key_id: Key id, key ARN, alias name or alias ARN.
            state: One of the eight ``KeyState`` values.

        Raises:
            ValueError: ``state`` is not a key state.
            KmsError: The errors DescribeKey answers for ``key_id``:
                ``NotFoundException`` for an unknown key.
        """
        if not isinstance(state, str) or state not in KEY_STATES:
            raise ValueError(
                f"state must be one of {', '.join(KEY_STATES)}; got "
                f"{state!r:.100}."
            )
        key = self._operations.described_key({"KeyId": key_id})
        with self._store.lock:
            key.state = state

    def describe_key(self, key_id: str) -> dict[str, Any]:
        """Return a key's ``KeyMetadata`` as botocore's DescribeKey does.

        Args:
            key_id: Key id, key ARN, alias name or alias ARN.

        Returns:
            The metadata, ``CreationDate`` a datetime.

        Raises:
            KmsError: The errors DescribeKey answers:
                ``NotFoundException`` for an unknown key.
        """
        metadata = self._operations.describe_key({"KeyId": key_id})

        return _as_botocore(metadata["KeyMetadata"])


def _faults(faults: object) -> Faults:
    """The faults given to ``LocalKms`` or assigned to ``faults``: None
    is none."""
    if faults is None:
        return Faults()
    if not isinstance(faults, Faults):
        raise ConfigurationError(
            f"faults must be Faults or None, got {type(faults).__name__}.",
            option="faults",
        )
    return faults


def _check_option(
    name: str, value: object, pattern: re.Pattern[str], what: str
) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        shown = repr(value) if isinstance(value, str) else type(value).__name__
        raise ConfigurationError(
            f"{name} must be {what}, got {shown:.80}.", option=name
        )


def _as_botocore(metadata: dict[str, Any]) -> dict[str, Any]:
    converted = dict(metadata)
    for name in ("CreationDate", "DeletionDate"):
        if name in converted:
            converted[name] = datetime.datetime.fromtimestamp(
                converted[name], tz=datetime.UTC
            )

    return converted
