"""A lean HTTP/1.1 client for model upstreams: pooled keep-alive connections on asyncio.

A gateway's own cost per model call is mostly its HTTP client. This one is an
:class:`asyncio.Protocol` per connection with the response parsed by ``httptools``
(the C parser uvicorn uses), so a call costs a few callbacks instead of a stack of
stream and state-machine layers. It does what an upstream call needs and no more:
``POST``/``GET`` with a body, ``Content-Length`` or chunked responses read as they
arrive (for SSE), keep-alive reuse, TLS, a bound on open connections, and back-pressure
(reading pauses while a consumer falls behind). Redirects, cookies, proxies and HTTP/2
are out of scope: :mod:`keel.models.openai_compatible` uses ``httpx`` for an upstream
reached through a proxy.

Transport failures raise :class:`HttpTransportError` subclasses; timeouts are the
caller's (``asyncio.timeout`` around the awaits), and a cancelled wait closes the
connection rather than returning it to the pool half-read.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

__all__ = [
    "ConnectFailed",
    "ConnectTimeout",
    "ConnectionPool",
    "HttpTransportError",
    "Origin",
    "ProtocolFailure",
    "RemoteClosed",
    "Response",
    "default_ssl_context",
]

_PAUSE_AT = 256 * 1024
"""Buffered response bytes at which reading pauses until the consumer catches up."""


class HttpTransportError(Exception):
    """The connection failed: nothing usable came back."""


class ConnectFailed(HttpTransportError):
    """No connection could be opened (refused, unreachable, TLS handshake failed)."""


class ConnectTimeout(ConnectFailed):
    """No connection was open within the connect timeout."""


class RemoteClosed(HttpTransportError):
    """The server closed the connection before the response was complete."""

    def __init__(self, message: str, *, before_response: bool) -> None:
        super().__init__(message)
        self.before_response = before_response


class ProtocolFailure(HttpTransportError):
    """The server sent something that is not HTTP/1.1."""


@dataclass(frozen=True)
class Origin:
    """Where requests go: scheme, host and port, and the path prefix of ``base_url``."""

    scheme: str
    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Origin:
        """``http(s)://host[:port][/prefix]``; raises ``ValueError`` for anything else."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        """The ``Host`` header: the port only when it is not the scheme's default."""
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def default_ssl_context() -> ssl.SSLContext:
    """Verification against the system's CA store (``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured), else certifi's."""
    context = ssl.create_default_context()
    if not context.cert_store_stats().get("x509_ca") and not context.get_ca_certs():
        import certifi  # a slim image without a CA store

        context.load_verify_locations(certifi.where())
    return context


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.requests = 0
        self._parser: httptools.HttpResponseParser | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.complete = False
        self.received_any = False
        self.error: HttpTransportError | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._header_name = b""

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        if self._parser is None:  # bytes nobody asked for: the server is not speaking HTTP/1.1 to us
            self._fail(ProtocolFailure("unexpected bytes between responses"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolFailure(f"malformed response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._parser is not None and not self.complete:
            self._fail(
                RemoteClosed("the server closed the connection", before_response=not self.received_any),
                close=False,
            )

    # -- httptools callbacks -------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self.status = self._parser.get_status_code()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(bytes(body))
        self._buffered += len(body)
        if self._buffered >= _PAUSE_AT and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        assert self._parser is not None
        self.complete = True
        if not self._parser.should_keep_alive():
            self.close()
        self._parser = None
        self._wake()

    # -- used by Response and ConnectionPool ---------------------------------------------------------

    def send(self, payload: bytes) -> None:
        assert self.transport is not None
        self._reset()
        self.requests += 1
        self._parser = httptools.HttpResponseParser(self)
        self.transport.write(payload)

    async def wait(self) -> None:
        """Until something arrives (headers, body, the end, or a failure)."""
        if self.error is not None:
            raise self.error
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self.error is not None:
            raise self.error

    def take(self) -> bytes | None:
        """The next buffered body bytes, or ``None`` if there are none yet."""
        if not self._chunks:
            return None
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered < _PAUSE_AT // 2 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    @property
    def reusable(self) -> bool:
        return self.complete and not self.closed and self.error is None and not self._chunks

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: HttpTransportError, *, close: bool = True) -> None:
        if self.error is None:
            self.error = error
        if close:
            self.close()
        self._wake()


class Response:
    """A response being read: ``status`` and ``headers`` (lower-case names) are known, the body arrives."""

    def __init__(self, connection: _Connection) -> None:
        self._conn = connection
        self.status_code = connection.status
        self.headers: Mapping[str, str] = connection.headers
        self._partial = b""

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive (chunked encoding already removed)."""
        conn = self._conn
        while True:
            chunk = conn.take()
            if chunk is not None:
                yield chunk
                continue
            if conn.complete:
                return
            await conn.wait()

    async def next_lines(self, deadline: float | None = None) -> list[str]:
        """The body lines that have arrived (``\\n`` or ``\\r\\n`` ends one; UTF-8), waiting for at least one.

        Waits until ``deadline`` (the running loop's clock) at most, then raises
        ``TimeoutError``; an empty list means the body has ended. Lines already
        buffered are returned without arming a timer, so a burst of server-sent events
        costs one call.
        """
        conn = self._conn
        while True:
            while (chunk := conn.take()) is not None:
                self._partial += chunk
            if b"\n" in self._partial:
                *lines, self._partial = self._partial.split(b"\n")
                return [line.removesuffix(b"\r").decode("utf-8", "replace") for line in lines]
            if conn.complete:
                rest, self._partial = self._partial, b""
                return [rest.removesuffix(b"\r").decode("utf-8", "replace")] if rest else []
            if deadline is None:
                await conn.wait()
            else:
                async with asyncio.timeout_at(deadline):
                    await conn.wait()

    async def read(self) -> bytes:
        """The whole (remaining) body."""
        return b"".join([chunk async for chunk in self.iter_bytes()])


class ConnectionPool:
    """Keep-alive connections to one origin, at most ``max_connections`` open (callers wait for a slot)."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int,
        connect_timeout_s: float,
        headers: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.origin = Origin.parse(base_url)
        self._connect_timeout_s = connect_timeout_s
        self._ssl = (ssl_context or default_ssl_context()) if self.origin.scheme == "https" else None
        self._slots = asyncio.Semaphore(max(1, max_connections))
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        fixed = {
            "host": self.origin.host_header,
            "user-agent": "keel",
            **{k.lower(): v for k, v in (headers or {}).items()},
        }
        self._fixed_headers = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())

    @property
    def open_connections(self) -> int:
        """Connections open now (idle or carrying a request)."""
        return len(self._open)

    @contextlib.asynccontextmanager
    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> AsyncIterator[Response]:
        """Send a request and yield its response once the headers are in; the body is read inside the block.

        A connection taken from the pool that turns out to have been closed by the server
        before it answered is replaced once, transparently (the request never reached it).
        """
        payload = self._encode(method, path, body, headers, content_type)
        async with self._slots:
            conn = await self._send(payload)
            try:
                yield Response(conn)
            finally:
                self._finish(conn)

    async def aclose(self) -> None:
        """Close every connection."""
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()

    def _encode(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str] | None, content_type: str
    ) -> bytes:
        head = f"{method} {self.origin.prefix}{path} HTTP/1.1\r\n{self._fixed_headers}"
        if body or method in ("POST", "PUT", "PATCH"):
            head += f"content-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
        if headers:
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return head.encode("latin-1") + b"\r\n" + body

    async def _send(self, payload: bytes) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if conn.closed:
                self._open.discard(conn)
                continue
            try:
                return await self._exchange(conn, payload)
            except RemoteClosed as exc:
                self._open.discard(conn)
                if not exc.before_response:
                    raise
                # a keep-alive connection the server had already given up on: try the next one
            except BaseException:
                self._open.discard(conn)
                raise
        conn = await self._connect()
        try:
            return await self._exchange(conn, payload)
        except BaseException:
            self._open.discard(conn)
            conn.close()
            raise

    async def _exchange(self, conn: _Connection, payload: bytes) -> _Connection:
        conn.send(payload)
        try:
            while not conn.headers_done:
                await conn.wait()
        except BaseException:
            conn.close()
            raise
        return conn

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        origin = self.origin
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, conn = await loop.create_connection(
                    _Connection,
                    origin.host,
                    origin.port,
                    ssl=self._ssl,
                    server_hostname=origin.host if self._ssl is not None else None,
                )
        except TimeoutError:
            raise ConnectTimeout(f"no connection within {self._connect_timeout_s:g}s") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(f"{type(exc).__name__}: {exc}") from None
        self._open.add(conn)
        return conn

    def _finish(self, conn: _Connection) -> None:
        if conn.reusable:
            self._idle.append(conn)
        else:
            conn.close()
            self._open.discard(conn)
