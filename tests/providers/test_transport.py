"""The bot's provider connection over a real socket: its own HTTP/1.1 wire under httpx's API.

The bot builds its own `httpx.AsyncClient` (no transport passed in) and talks to a small
HTTP server on loopback that answers, hangs, hangs up or speaks nonsense on demand. Whatever
the wire does, the iPay client must see an `httpx` error and turn it into `IpayUnavailable`
("ask again later"), never anything else; its timeouts and the connection cap must hold;
and shutting the bot down must close its connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bot.app import build_application, services_of_app
from bot.config import Settings
from bot.lifecycle import running
from bot.providers.ipay import IpayClient, IpayUnavailable, NotPaidYet
from bot.providers.transport import ProviderTransport
from bot.sandbox.telegram import FakeBotApi
from tests.conftest import TEST_KEY, with_settings

NOT_PAID = json.dumps({"header_status": 404, "status": 0, "text": "no payment record found"}).encode()
QUICK = httpx.Timeout(connect=1.0, read=0.3, write=1.0, pool=0.3)


@dataclass
class LoopbackIpay:
    """An HTTP/1.1 server on 127.0.0.1. `mode`: answer (not paid yet), hang, hang_up, nonsense,
    stall_body or cut_body (half the answer, then silence or a closed connection), trickle (the
    answer a byte every 0.2 s), gzip (the answer compressed), chunked (the answer in chunks),
    until_close (no length: the answer ends where the connection does), closing (`Connection:
    close`), idle_close (the connection closed after the answer without saying so, as a server's
    keep-alive timeout does), interim (100 Continue first), twice (two answers to one request),
    trailer (a chunked answer whose trailer claims gzip), upgrade (101 Switching Protocols),
    not_a_status (status 042), endless (no length and no end) or half_until_close (no length,
    half the answer, then silence)."""

    mode: str = "answer"
    delay: float = 0.0
    open_connections: int = 0
    most_connections: int = 0
    connections: int = 0
    requests: int = 0
    heads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    port: int = 0
    tls: ssl.SSLContext | None = None
    _server: asyncio.AbstractServer | None = field(default=None, repr=False)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/payments/v2"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        self.connections += 1
        self.most_connections = max(self.most_connections, self.open_connections)
        try:
            while request := await _read_request(reader):
                self.requests += 1
                self.heads.append(request[0])
                self.bodies.append(request[1])
                if (framing := await self._answer_framed(writer)) is not None:
                    if framing == "closes":
                        return
                    continue
                if self.mode == "hang":
                    await reader.read()  # until the client gives up and closes
                    return
                if self.mode == "hang_up":
                    return
                if self.mode == "nonsense":
                    writer.write(b"SURPRISE \x00\x01 not http at all\r\n\r\n")
                    await writer.drain()
                    return
                if self.mode in ("stall_body", "cut_body"):  # the head and half the body, then nothing
                    writer.write(
                        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(NOT_PAID), NOT_PAID[: len(NOT_PAID) // 2])
                    )
                    await writer.drain()
                    if self.mode == "stall_body":
                        await reader.read()
                    return
                if self.mode == "trickle":  # the answer a byte at a time, each within the read timeout
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n" % len(NOT_PAID))
                    for byte in NOT_PAID:
                        await asyncio.sleep(0.2)
                        writer.write(bytes([byte]))
                        await writer.drain()
                    continue
                if self.mode == "gzip":
                    packed = gzip.compress(NOT_PAID)
                    writer.write(
                        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(packed), packed)
                    )
                    await writer.drain()
                    continue
                await asyncio.sleep(self.delay)
                writer.write(
                    b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(NOT_PAID), NOT_PAID)
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_connections -= 1
            writer.close()

    async def _answer_framed(self, writer: asyncio.StreamWriter) -> str | None:
        """The answers that test how replies are framed: "closes" when the connection ends with
        the answer, "keeps" when it stays open, None in the other modes."""
        head = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
        if self.mode == "chunked":
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (NOT_PAID[:10], NOT_PAID[10:]))
            writer.write(head + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
        elif self.mode == "until_close":
            writer.write(head + b"\r\n" + NOT_PAID)
        elif self.mode == "trailer":
            chunk = b"%x\r\n%s\r\n" % (len(NOT_PAID), NOT_PAID)
            writer.write(head + b"Transfer-Encoding: chunked\r\n\r\n" + chunk + b"0\r\nContent-Encoding: gzip\r\n\r\n")
        elif self.mode == "upgrade":
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        elif self.mode == "not_a_status":
            writer.write(b"HTTP/1.1 042 Odd\r\nContent-Length: 0\r\n\r\n")
        elif self.mode in ("endless", "half_until_close"):
            writer.write(head + b"\r\n" + NOT_PAID[: len(NOT_PAID) // 2])
            while self.mode == "endless" and not writer.is_closing():
                writer.write(b" " * 65536)
                await writer.drain()
            await asyncio.sleep(10)
        elif self.mode in ("closing", "idle_close", "interim", "twice"):
            answer = head + b"Content-Length: %d\r\n%s\r\n%s" % (
                len(NOT_PAID),
                b"Connection: close\r\n" if self.mode == "closing" else b"",
                NOT_PAID,
            )
            if self.mode == "interim":
                answer = b"HTTP/1.1 100 Continue\r\n\r\n" + answer
            writer.write(answer * 2 if self.mode == "twice" else answer)
        else:
            return None
        await writer.drain()
        return "keeps" if self.mode in ("chunked", "interim", "twice", "trailer") else "closes"


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """One request off the connection (its head and its body); None when the client closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        return None
    length = 0
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return head, await reader.readexactly(length)


@pytest.fixture
async def ipay() -> AsyncIterator[LoopbackIpay]:
    server = LoopbackIpay()
    await server.start()
    yield server
    await server.stop()


@contextlib.asynccontextmanager
async def bot_ipay(settings: Settings) -> AsyncIterator[IpayClient]:
    """The bot started as in production (no iPay transport given), yielding its own iPay client."""
    app = build_application(settings, telegram_request=FakeBotApi(), rate_limit=False)
    async with running(app):
        provider = services_of_app(app).payments.provider
        assert isinstance(provider, IpayClient)
        yield provider


def client_over(transport: httpx.AsyncBaseTransport, url: str) -> IpayClient:
    """An iPay client of its own (outside any call budget) on `transport`, for the shop in these tests."""
    return IpayClient(transport, vid="shop42", hash_key=TEST_KEY, live=False, base_url=url)


def live_settings(settings: Settings, url: str, **changes: object) -> Settings:
    return with_settings(settings, ipay_sandbox=False, ipay_base_url=url, **changes)


def refused_url() -> str:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/payments/v2"


async def test_the_bot_looks_up_orders_over_its_wire_and_closes_its_connections_on_shutdown(
    settings: Settings, ipay: LoopbackIpay
) -> None:
    async with bot_ipay(live_settings(settings, ipay.url)) as ipay_client:
        assert isinstance(ipay_client._transport, ProviderTransport)
        results = await asyncio.gather(*(ipay_client.search(f"ORD{n}") for n in range(5)))
        assert results == [NotPaidYet()] * 5
        assert ipay.open_connections > 0  # kept alive for the next sweep
    await asyncio.sleep(0.1)
    assert ipay.open_connections == 0


@pytest.mark.parametrize(
    "mode",
    ["hang", "stall_body", "trickle"],
    ids=["never answers", "stops half way through its answer", "answers a byte at a time"],
)
async def test_ipay_that_goes_quiet_is_a_timeout_within_the_read_timeout(
    settings: Settings, ipay: LoopbackIpay, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setattr("bot.providers.ipay.client.IPAY_TIMEOUT", QUICK)
    ipay.mode = mode
    async with bot_ipay(live_settings(settings, ipay.url)) as ipay_client:
        started = time.monotonic()
        with pytest.raises(IpayUnavailable, match="timed out"):
            await ipay_client.search("ORD1")
        assert time.monotonic() - started < 2.0
    assert ipay.requests == 1


async def test_a_refused_connection_is_unreachable(settings: Settings) -> None:
    url = refused_url()
    async with bot_ipay(live_settings(settings, url)) as ipay_client:
        with pytest.raises(IpayUnavailable, match=r"could not be reached \(ConnectError\)"):
            await ipay_client.search("ORD1")


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("hang_up", r"could not be reached \(RemoteProtocolError\)"),  # a hang-up is not a timeout
        ("nonsense", r"could not be reached \(RemoteProtocolError\)"),  # a reply that is not HTTP
        ("cut_body", "could not be reached"),  # half an answer is never a verdict
    ],
    ids=["hangs up mid-call", "answers with something that is not HTTP", "cuts its answer off half way"],
)
async def test_ipay_breaking_off_is_unreachable(settings: Settings, ipay: LoopbackIpay, mode: str, error: str) -> None:
    ipay.mode = mode
    async with bot_ipay(live_settings(settings, ipay.url)) as ipay_client:
        with pytest.raises(IpayUnavailable, match=error):
            await ipay_client.search("ORD1")


async def test_a_closed_transport_refuses_calls_as_unreachable(ipay: LoopbackIpay) -> None:
    """After shutdown closes the wire, a straggling call is told the provider cannot be reached
    (and opens no new connection that nothing would close)."""
    transport = ProviderTransport(httpx.Limits(max_connections=2))
    client = client_over(transport, ipay.url)
    assert await client.search("ORD1") == NotPaidYet()
    await transport.aclose()
    with pytest.raises(IpayUnavailable, match="could not be reached"):
        await client.search("ORD2")
    assert ipay.requests == 1


async def test_a_header_the_wire_will_not_carry_is_an_httpx_error(ipay: LoopbackIpay) -> None:
    """A provider's token with a line break in it (Daraja's bearer token comes from its own reply)
    must fail as httpx's protocol error, which the clients catch, and never reach the wire."""
    transport = ProviderTransport(httpx.Limits(max_connections=2))
    request = httpx.Request("POST", ipay.url, headers={"Authorization": "Bearer abc\r\nX-Evil: 1"}, content=b"x")
    with pytest.raises(httpx.LocalProtocolError):
        await transport.handle_async_request(request)
    await transport.aclose()
    assert ipay.requests == 0


async def test_a_compressed_answer_is_read(settings: Settings, ipay: LoopbackIpay) -> None:
    ipay.mode = "gzip"
    async with bot_ipay(live_settings(settings, ipay.url)) as ipay_client:
        assert await ipay_client.search("ORD1") == NotPaidYet()
        assert await ipay_client.search("ORD2") == NotPaidYet()  # the same connection, reused
    assert ipay.requests == 2


async def test_connections_to_ipay_are_capped_and_a_call_waiting_for_one_times_out(
    settings: Settings, ipay: LoopbackIpay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POLL_CONCURRENCY 3 allows 3 + 20 connections on the bot's wire; with all of them stuck, one
    more call waits for a free connection only as long as the pool timeout. (The bot's services
    keep at most 3 calls in flight through their budget; a client of its own, outside any budget,
    shares the bot's wire to fill the pool.)"""
    monkeypatch.setattr(
        "bot.providers.ipay.client.IPAY_TIMEOUT", httpx.Timeout(connect=1.0, read=3.0, write=1.0, pool=0.3)
    )
    ipay.mode = "hang"
    async with bot_ipay(live_settings(settings, ipay.url, poll_concurrency=3)) as bot_client:
        ipay_client = client_over(bot_client._transport, ipay.url)
        stuck = [asyncio.create_task(ipay_client.search(f"ORD{n}")) for n in range(23)]
        await asyncio.sleep(0.5)
        assert ipay.most_connections == 23
        started = time.monotonic()
        with pytest.raises(IpayUnavailable, match="timed out"):
            await ipay_client.search("ORD-ONE-MORE")
        assert time.monotonic() - started < 1.0
        assert ipay.most_connections == 23
        for outcome in await asyncio.gather(*stuck, return_exceptions=True):
            assert isinstance(outcome, IpayUnavailable)


@pytest.mark.parametrize(
    "mode",
    ["chunked", "until_close", "closing", "interim"],
    ids=[
        "in chunks",
        "with no length, ending where the connection does",
        "saying it closes the connection",
        "after an interim 100 Continue",
    ],
)
async def test_an_answer_however_it_is_framed_is_read_whole(ipay: LoopbackIpay, mode: str) -> None:
    ipay.mode = mode
    transport = ProviderTransport(httpx.Limits(max_connections=2))
    client = client_over(transport, ipay.url)
    assert await client.search("ORD1") == NotPaidYet()
    assert await client.search("ORD2") == NotPaidYet()
    await transport.aclose()
    assert ipay.requests == 2
    # Only an answer that says nothing of closing leaves its connection open for the next call.
    assert ipay.connections == (1 if mode in ("chunked", "interim") else 2)


async def test_calls_one_after_another_share_one_kept_alive_connection(ipay: LoopbackIpay) -> None:
    transport = ProviderTransport(httpx.Limits(max_connections=5))
    client = client_over(transport, ipay.url)
    for n in range(10):
        assert await client.search(f"ORD{n}") == NotPaidYet()
    assert (ipay.requests, ipay.connections, ipay.open_connections) == (10, 1, 1)
    await transport.aclose()
    await asyncio.sleep(0.05)
    assert ipay.open_connections == 0


async def test_a_connection_the_server_closed_while_idle_is_not_reused(ipay: LoopbackIpay) -> None:
    ipay.mode = "idle_close"
    transport = ProviderTransport(httpx.Limits(max_connections=5))
    client = client_over(transport, ipay.url)
    for n in range(3):
        assert await client.search(f"ORD{n}") == NotPaidYet()
        await asyncio.sleep(0.05)  # the server's close reaches the pool before the next call
    await transport.aclose()
    assert (ipay.requests, ipay.connections) == (3, 3)


async def test_a_second_answer_to_one_request_spoils_the_connection(ipay: LoopbackIpay) -> None:
    """Bytes no request asked for mean the connection's state is in doubt: the first answer is
    read, the connection is closed, and the next call gets a fresh one and its own answer."""
    ipay.mode = "twice"
    transport = ProviderTransport(httpx.Limits(max_connections=5))
    client = client_over(transport, ipay.url)
    assert await client.search("ORD1") == NotPaidYet()
    assert await client.search("ORD2") == NotPaidYet()
    await transport.aclose()
    assert (ipay.requests, ipay.connections) == (2, 2)


async def test_a_call_cancelled_mid_answer_closes_its_connection(ipay: LoopbackIpay) -> None:
    ipay.mode = "hang"
    transport = ProviderTransport(httpx.Limits(max_connections=5))
    client = client_over(transport, ipay.url)
    call = asyncio.create_task(client.search("ORD1"))
    await asyncio.sleep(0.1)
    assert ipay.open_connections == 1
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(0.05)
    assert ipay.open_connections == 0  # never pooled with its answer still to come
    ipay.mode = "answer"
    assert await client.search("ORD2") == NotPaidYet()
    await transport.aclose()


async def test_a_request_goes_out_as_one_http_1_1_message(ipay: LoopbackIpay) -> None:
    transport = ProviderTransport(httpx.Limits(max_connections=2))
    request = httpx.Request("POST", f"{ipay.url}/search?x=1", headers={"X-Shop": "42"}, content=b"oid=ORD1")
    response = await transport.handle_async_request(request)
    await response.aread()
    await transport.aclose()
    lines = ipay.heads[0].decode("latin-1").split("\r\n")
    assert lines[0] == "POST /payments/v2/search?x=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{ipay.port}" in lines
    assert "Content-Length: 8" in lines
    assert "X-Shop: 42" in lines
    assert ipay.bodies == [b"oid=ORD1"]
    assert (response.status_code, response.reason_phrase, response.json()["status"]) == (404, "Not Found", 0)


async def test_a_streamed_body_is_sent_whole_with_its_length(ipay: LoopbackIpay) -> None:
    async def parts() -> AsyncIterator[bytes]:
        yield b"oid="
        yield b"ORD1"

    transport = ProviderTransport(httpx.Limits(max_connections=2))
    request = httpx.Request("POST", ipay.url, content=parts())
    assert request.headers["Transfer-Encoding"] == "chunked"
    await (await transport.handle_async_request(request)).aread()
    await transport.aclose()
    assert "Content-Length: 8" in ipay.heads[0].decode("latin-1").split("\r\n")
    assert "Transfer-Encoding" not in ipay.heads[0].decode("latin-1")
    assert ipay.bodies == [b"oid=ORD1"]


def _certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name` (and its key), made by the machine's openssl."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key)),
            *("-out", str(cert), "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
async def tls_ipay(tmp_path: Path) -> AsyncIterator[tuple[LoopbackIpay, Path]]:
    """The loopback server over TLS with a certificate for `localhost` that no public authority signed."""
    cert, key = _certificate(tmp_path, "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = LoopbackIpay(tls=context)
    await server.start()
    yield server, cert
    await server.stop()


async def test_tls_is_verified_against_the_trust_store_and_the_host_name(
    tls_ipay: tuple[LoopbackIpay, Path], tmp_path: Path
) -> None:
    ipay, cert = tls_ipay
    url = f"https://localhost:{ipay.port}/payments/v2"
    # httpx's own trust store does not know the certificate: the call never gets as far as a request.
    untrusting = ProviderTransport(httpx.Limits(max_connections=2))
    client = client_over(untrusting, url)
    with pytest.raises(IpayUnavailable, match=r"could not be reached \(ConnectError\)"):
        await client.search("ORD1")
    await untrusting.aclose()
    # Trusted, it is used; the same certificate presented for another name is refused.
    trusting = ProviderTransport(httpx.Limits(max_connections=2), ssl_context=ssl.create_default_context(cafile=cert))
    client = client_over(trusting, url)
    assert await client.search("ORD1") == NotPaidYet()
    other = client_over(trusting, f"https://127.0.0.1:{ipay.port}/payments/v2")
    with pytest.raises(IpayUnavailable, match=r"could not be reached \(ConnectError\)"):
        await other.search("ORD2")
    await trusting.aclose()
    assert ipay.requests == 1


async def test_a_chunked_answers_trailer_is_not_taken_for_its_head(ipay: LoopbackIpay) -> None:
    ipay.mode = "trailer"
    transport = ProviderTransport(httpx.Limits(max_connections=2))
    client = client_over(transport, ipay.url)
    assert await client.search("ORD1") == NotPaidYet()  # not decoded as gzip because a trailer said so
    await transport.aclose()


@pytest.mark.parametrize(
    "mode",
    ["upgrade", "not_a_status", "endless"],
    ids=["switches protocols", "answers with a status below 100", "answers without end"],
)
async def test_an_answer_no_provider_gives_is_refused_at_once(ipay: LoopbackIpay, mode: str) -> None:
    """Refused as a protocol error the moment it shows (an endless answer at a megabyte), never
    waited on until a timeout, never buffered without bound, and nothing for the event loop to report."""
    ipay.mode = mode
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: loop_errors.append(context))
    transport = ProviderTransport(httpx.Limits(max_connections=2))
    request = httpx.Request("POST", ipay.url, content=b"oid=ORD1", extensions={"timeout": QUICK.as_dict()})
    started = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError):
        await transport.handle_async_request(request)
    assert time.monotonic() - started < QUICK.read / 2  # type: ignore[operator]
    await transport.aclose()
    await asyncio.sleep(0.05)
    assert loop_errors == []


async def test_closing_the_transport_mid_answer_is_an_error_not_a_short_answer(ipay: LoopbackIpay) -> None:
    """An answer with no length ends where the server closes the connection, never where the bot
    does: shutting down under it must not hand the caller half an answer as a whole one."""
    ipay.mode = "half_until_close"
    transport = ProviderTransport(httpx.Limits(max_connections=2))
    call = asyncio.create_task(transport.handle_async_request(httpx.Request("POST", ipay.url, content=b"oid=ORD1")))
    await asyncio.sleep(0.2)  # the head and half the answer are in
    await transport.aclose()
    with pytest.raises(httpx.TransportError):
        await call


async def test_a_call_still_connecting_when_the_transport_closes_sends_nothing(tmp_path: Path) -> None:
    """Shutting down while a connection is being opened (its TLS handshake unanswered) must stop
    that call: its request must not go out once the handshake completes."""
    cert, key = _certificate(tmp_path, "localhost")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    release = threading.Event()
    received: list[bytes] = []

    def slow_handshake() -> None:  # a thread: the handshake waits, its first bytes unread, until released
        connection, _ = listener.accept()
        release.wait(5)
        with contextlib.suppress(OSError), server_tls.wrap_socket(connection, server_side=True) as tls:
            tls.settimeout(1)
            received.append(tls.recv(65536))

    server = threading.Thread(target=slow_handshake, daemon=True)
    server.start()
    transport = ProviderTransport(httpx.Limits(max_connections=2), ssl_context=ssl.create_default_context(cafile=cert))
    port = listener.getsockname()[1]
    call = asyncio.create_task(
        transport.handle_async_request(httpx.Request("POST", f"https://localhost:{port}/p", content=b"oid=ORD1"))
    )
    await asyncio.sleep(0.2)  # connected, the handshake waiting on the server
    await transport.aclose()
    release.set()
    with pytest.raises(httpx.TransportError):
        await call
    await asyncio.to_thread(server.join, 3)
    listener.close()
    assert not any(b"POST" in data for data in received)


async def test_room_given_as_the_wait_for_it_runs_out_is_taken_not_lost() -> None:
    """A call waiting for a connection whose wait runs out in the same moment as one comes free
    takes it; before, it timed out and the free connection was told to no one, so the next call
    in line waited out its own timeout beside an idle connection."""
    transport = ProviderTransport(httpx.Limits(max_connections=1))
    loop = asyncio.get_running_loop()
    request = httpx.Request("GET", "http://127.0.0.1:9/")
    waiting = asyncio.create_task(transport._wait_for_room(request, loop.time() - 1))
    await asyncio.sleep(0)  # it waits, the end of its wait already queued
    transport._wake_one()  # room comes free before that end is handled
    await waiting
    assert not transport._waiting


async def test_a_request_says_the_length_of_the_body_it_carries(ipay: LoopbackIpay) -> None:
    """A Content-Length that does not match the body would cut it short and put the rest in
    front of the next request on the connection: the body's own length goes on the wire."""
    transport = ProviderTransport(httpx.Limits(max_connections=2))
    request = httpx.Request("POST", ipay.url, headers={"Content-Length": "3"}, content=b"a=1&amount=100")
    await (await transport.handle_async_request(request)).aread()
    await transport.aclose()
    head = ipay.heads[0].decode("latin-1").split("\r\n")
    assert "Content-Length: 14" in head
    assert "Content-Length: 3" not in head
    assert ipay.bodies == [b"a=1&amount=100"]


@pytest.mark.parametrize("method", ["HEAD", ""], ids=["HEAD", "no method"])
async def test_a_request_the_wire_does_not_carry_is_refused_before_it_goes_out(ipay: LoopbackIpay, method: str) -> None:
    transport = ProviderTransport(httpx.Limits(max_connections=2))
    with pytest.raises(httpx.LocalProtocolError):
        await transport.handle_async_request(httpx.Request(method, ipay.url))
    await transport.aclose()
    assert ipay.requests == 0


async def test_a_connection_is_shared_only_under_the_same_tls_name(tls_ipay: tuple[LoopbackIpay, Path]) -> None:
    """A request naming another TLS server (`sni_hostname`) gets that name checked on a
    connection of its own, not a connection verified for another name."""
    ipay, cert = tls_ipay
    transport = ProviderTransport(httpx.Limits(max_connections=4), ssl_context=ssl.create_default_context(cafile=cert))
    url = f"https://localhost:{ipay.port}/payments/v2"
    await (await transport.handle_async_request(httpx.Request("POST", url, content=b"x"))).aread()
    other = httpx.Request("POST", url, content=b"x", extensions={"sni_hostname": "other.example"})
    with pytest.raises(httpx.ConnectError):
        await transport.handle_async_request(other)
    await transport.aclose()


async def test_idle_connections_past_their_expiry_are_closed_on_the_next_call_anywhere(ipay: LoopbackIpay) -> None:
    other = LoopbackIpay()
    await other.start()
    transport = ProviderTransport(httpx.Limits(max_connections=4, keepalive_expiry=0.1))
    await (await transport.handle_async_request(httpx.Request("POST", ipay.url, content=b"x"))).aread()
    assert ipay.open_connections == 1
    await asyncio.sleep(1.1)  # past the expiry and the pause between looks for expired ones
    await (await transport.handle_async_request(httpx.Request("POST", other.url, content=b"x"))).aread()
    await asyncio.sleep(0.05)
    assert ipay.open_connections == 0
    await transport.aclose()
    await other.stop()
