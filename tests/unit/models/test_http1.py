"""The upstream HTTP/1.1 client against scripted servers on 127.0.0.1: reuse, streaming, failures, bounds."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keel.models import http1

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


class Server:
    """A raw TCP server whose handler writes whatever bytes a test wants; counts connections and requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.open_now = 0
        self.max_open = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_now -= 1
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request (head and Content-Length body), or ``None`` at end of stream."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        self.requests.append(head + body)
        return head + body


def ok(body: bytes, *, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def chunked_head() -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def serve_forever_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
    while (request := await server.read_request(reader)) is not None:
        writer.write(ok(b"pong:" + request.split(b"\r\n\r\n", 1)[1]))
        await writer.drain()


def pool(server: Server, **kw: object) -> http1.ConnectionPool:
    return http1.ConnectionPool(
        server.url, max_connections=int(kw.pop("max_connections", 4)), connect_timeout_s=2, **kw
    )  # type: ignore[arg-type]


async def post(p: http1.ConnectionPool, body: bytes = b"{}") -> tuple[int, bytes]:
    async with p.request("POST", "/chat/completions", body=body) as response:
        return response.status_code, await response.read()


def test_sequential_requests_reuse_one_keep_alive_connection_and_send_a_well_formed_request() -> None:
    async def scenario() -> None:
        async with Server(serve_forever_ok) as server:
            p = pool(server, headers={"Authorization": "Bearer k"})
            for i in range(5):
                assert await post(p, b'{"n": %d}' % i) == (200, b'pong:{"n": %d}' % i)
            assert server.connections == 1 and p.open_connections == 1
            first = server.requests[0]
            assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
            assert b"host: 127.0.0.1:%d\r\n" % server.port in first and b"authorization: Bearer k\r\n" in first
            assert b"content-type: application/json\r\ncontent-length: 8\r\n" in first
            await p.aclose()

    asyncio.run(scenario())


def test_a_chunked_stream_is_read_line_by_line_as_it_arrives() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(chunked_head() + chunk(b"data: one\r\n\r\ndata: t"))
        await writer.drain()
        await release.wait()  # the rest only after the client has seen the first line
        writer.write(chunk(b"wo\n\n") + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def scenario() -> None:
        async with Server(handler) as server:
            p = pool(server)
            async with p.request("POST", "/chat/completions", body=b"{}") as response:
                assert response.status_code == 200 and response.headers["transfer-encoding"] == "chunked"
                first = await response.next_lines(asyncio.get_running_loop().time() + 2)
                assert first[0] == "data: one"  # before the server sends the rest
                release.set()
                rest = first[1:]
                while batch := await response.next_lines():
                    rest += batch
            assert rest == ["", "data: two", "", "data: [DONE]", ""]
            assert p.open_connections == 1  # complete, so kept for the next call
            await p.aclose()

    asyncio.run(scenario())


def test_an_idle_connection_the_server_closed_is_replaced_without_failing_the_call() -> None:
    async def one_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(ok(b"hi"))  # keep-alive promised, then the server closes anyway
        await writer.drain()

    async def scenario() -> None:
        async with Server(one_per_connection) as server:
            p = pool(server)
            assert await post(p) == (200, b"hi")
            await asyncio.sleep(0.05)  # the close reaches the client's idle connection
            assert await post(p) == (200, b"hi")
            assert server.connections == 2 and len(server.requests) == 2
            await p.aclose()

    asyncio.run(scenario())


def test_a_response_cut_off_midway_fails_and_is_not_sent_again() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(chunked_head() + chunk(b"data: partial\n\n"))
        await writer.drain()

    async def scenario() -> None:
        async with Server(cut) as server:
            p = pool(server)
            with pytest.raises(http1.RemoteClosed) as caught:
                await post(p)
            assert caught.value.before_response is False
            assert len(server.requests) == 1 and p.open_connections == 0
            await p.aclose()

    asyncio.run(scenario())


def test_bytes_that_are_not_http_are_a_protocol_failure() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def scenario() -> None:
        async with Server(garbage) as server:
            p = pool(server)
            with pytest.raises(http1.ProtocolFailure):
                await post(p)
            assert p.open_connections == 0
            await p.aclose()

    asyncio.run(scenario())


def test_a_refused_connection_is_a_connect_failure() -> None:
    async def scenario() -> None:
        async with Server(serve_forever_ok) as server:
            url = server.url
        p = http1.ConnectionPool(url, max_connections=1, connect_timeout_s=2)
        with pytest.raises(http1.ConnectFailed):
            await post(p)

    asyncio.run(scenario())


def test_no_more_than_max_connections_are_open_and_waiting_callers_are_served_in_turn() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while await server.read_request(reader) is not None:
            await asyncio.sleep(0.05)
            writer.write(ok(b"done"))
            await writer.drain()

    async def scenario() -> None:
        async with Server(slow) as server:
            p = pool(server, max_connections=2)
            results = await asyncio.gather(*(post(p) for _ in range(6)))
            assert results == [(200, b"done")] * 6
            assert server.max_open == 2 and server.connections == 2
            await p.aclose()

    asyncio.run(scenario())


def test_leaving_a_response_unread_closes_its_connection_instead_of_reusing_it() -> None:
    async def scenario() -> None:
        async with Server(serve_forever_ok) as server:
            p = pool(server)
            async with p.request("POST", "/chat/completions", body=b"x" * 10) as response:
                assert response.status_code == 200  # the body, though it may have arrived, is left unread
            await post(p)
            await post(p)
            assert server.connections == 2 and p.open_connections == 1
            await p.aclose()

    async def unfinished(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while await server.read_request(reader) is not None:
            writer.write(chunked_head() + chunk(b"data: a\n\n"))  # never finished
            await writer.drain()

    async def scenario_unfinished() -> None:
        async with Server(unfinished) as server:
            p = pool(server)
            for _ in range(2):
                async with p.request("POST", "/chat/completions", body=b"{}") as response:
                    assert (await response.next_lines())[0] == "data: a"
            assert server.connections == 2 and p.open_connections == 0
            await p.aclose()

    asyncio.run(scenario())
    asyncio.run(scenario_unfinished())


def test_connection_close_from_the_server_is_honoured() -> None:
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(ok(b"bye", extra=b"connection: close\r\n"))
        await writer.drain()
        await reader.read()

    async def scenario() -> None:
        async with Server(closing) as server:
            p = pool(server)
            assert await post(p) == (200, b"bye")
            assert p.open_connections == 0
            assert await post(p) == (200, b"bye")
            assert server.connections == 2
            await p.aclose()

    asyncio.run(scenario())


def test_a_large_body_read_slowly_arrives_whole_through_paused_reading() -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(chunked_head())
        for start in range(0, len(payload), 65536):
            writer.write(chunk(payload[start : start + 65536]))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def scenario() -> None:
        async with Server(big) as server:
            p = pool(server)
            received = bytearray()
            async with p.request("POST", "/chat/completions", body=b"{}") as response:
                async for part in response.iter_bytes():
                    received += part
                    await asyncio.sleep(0.001)  # a slow consumer
            assert bytes(received) == payload
            await p.aclose()

    asyncio.run(scenario())


def test_a_cancelled_wait_closes_the_connection() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        await reader.read()

    async def scenario() -> None:
        async with Server(silent) as server:
            p = pool(server)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await post(p)
            assert p.open_connections == 0
            await p.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:9/v1", "127.0.0.1:9"),
        ("https://api.example.com/v1", "api.example.com"),
        ("http://models.internal", "models.internal"),
        ("https://[::1]:8443/v1", "[::1]:8443"),
    ],
)
def test_the_host_header_names_the_port_only_when_it_is_not_the_default(url: str, expected: str) -> None:
    assert http1.Origin.parse(url).host_header == expected


def test_an_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        http1.Origin.parse("ftp://example.com")


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_https_verifies_the_server_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)

    async def scenario() -> None:
        server = await asyncio.start_server(
            lambda r, w: serve_forever_ok(r, w, Server(serve_forever_ok)), "127.0.0.1", 0, ssl=server_tls
        )
        port = server.sockets[0].getsockname()[1]
        trusting = ssl.create_default_context(cafile=str(cert))
        p = http1.ConnectionPool(
            f"https://127.0.0.1:{port}/v1", max_connections=1, connect_timeout_s=5, ssl_context=trusting
        )
        assert await post(p, b"{}") == (200, b"pong:{}")
        await p.aclose()
        untrusting = http1.ConnectionPool(f"https://127.0.0.1:{port}/v1", max_connections=1, connect_timeout_s=5)
        with pytest.raises(http1.ConnectFailed):  # a self-signed certificate is not in any CA store
            await post(untrusting)
        server.close()

    asyncio.run(scenario())
