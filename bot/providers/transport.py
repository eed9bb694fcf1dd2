"""The HTTP/1.1 wire under the provider clients: httpx's transport API over asyncio and httptools.

The clients keep httpx's API (`httpx.Request` in, `httpx.Response` out, httpx's timeouts and
exceptions); only the wire underneath is this module's. A provider call is a few hundred bytes
each way on a kept-alive connection, and a general-purpose client spends most of a status
lookup's CPU on features such a call never uses (bench/README.md has the measurements: httpx's
own transport, then aiohttp's, then this wire).

What it does, and no more:
- HTTP/1.1, one exchange at a time on a connection (no pipelining), kept alive for the next;
  the body sent whole with its own length (HEAD, whose reply's length describes no body, is
  refused: no provider call uses it).
- Replies parsed by httptools (llhttp, Node.js's HTTP parser, which uvicorn also uses for the
  REST API): framed by Content-Length, by chunks (trailers ignored), or by the server closing
  the connection; never by the bot closing it, so shutting down mid-reply is an error, not a
  short reply. A reply past `MAX_REPLY_BYTES`, a switch of protocols or a status below 100 is
  refused as a protocol error the moment it shows.
- A reply read whole while its connection is held, then handed over as a finished
  `httpx.Response` (httpx decodes its Content-Encoding).
- TLS verified against httpx's trust store (certifi's), with the host's name checked.
- A pool capped at `limits.max_connections`, shared only by requests to the same origin under
  the same TLS name; up to `max_keepalive_connections` idle ones kept, each for
  `keepalive_expiry` seconds at most, the most recently used reused first. Closing the
  transport stops every call, those still connecting included: none goes out afterwards.
- httpx's timeouts: `pool` (waiting for a free connection), `connect` (TCP and TLS), `read` (the
  longest silence while a reply is due) and a deadline for the whole call, their sum, so a reply
  trickling in a byte at a time still ends. Requests go out in one buffered write; a server that
  does not read them is caught by the read timeout.

What it never does is retry: a request that may have reached the provider is for the caller to
judge (a push may have gone out), and the error it gets says what happened on the wire: a
timeout, a connection that could not be opened, or one that broke off (never a verdict).
"""

from __future__ import annotations

import asyncio
import collections
import math
import re
import ssl
from typing import cast

import httptools
import httpx

# What may not appear in a request's head: a name outside RFC 9110's token characters, or a
# control character (a line break above all) in a value, which would split the request.
_BAD_NAME = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_CLOCK_SLACK = 0.001  # seconds
# A provider's reply is a few hundred bytes of JSON; one this large is not a reply but a fault,
# and is refused before it fills memory.
MAX_REPLY_BYTES = 1 << 20
PRUNE_PERIOD = 1.0  # seconds between looks for idle connections past their keep-alive expiry

_Origin = tuple[bytes, str, int, str]  # scheme, host (ASCII, as on the wire), port, TLS server name


class _Reply:
    """A complete reply as the parser saw it."""

    __slots__ = ("body", "headers", "keep_alive", "reason", "status")

    def __init__(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], body: bytes, keep_alive: bool
    ) -> None:
        self.status, self.reason, self.headers, self.body = status, reason, headers, body
        self.keep_alive = keep_alive


class _Connection(asyncio.Protocol):
    """One connection to one origin: one exchange at a time, its reply parsed as it arrives.

    Anything unexpected (bytes no one asked for, a reply that is not HTTP, a timeout mid-reply)
    ends the connection: it is never put back in the pool with its state in doubt."""

    def __init__(self, pool: ProviderTransport, origin: _Origin) -> None:
        self._pool = pool
        self.origin = origin
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._reply: asyncio.Future[_Reply] | None = None
        self._request: httpx.Request | None = None
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._heard = False  # any byte of the reply has arrived
        self._framed = False  # the reply says where it ends, so the server closing early is an error
        self._head_done = False
        self._received = 0  # bytes of the reply so far
        self._peer_done = False  # the server said it sends no more (end of file)
        self._spoiled = False  # bytes arrived that belong to no exchange
        self._read_timeout: float | None = None
        self._deadline = math.inf
        self._last_heard = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.idle_since = 0.0
        self.closed = False

    # The connection as the pool sees it.

    def reusable(self, now: float, expiry: float | None) -> bool:
        if self.closed or self._spoiled or self._transport is None or self._transport.is_closing():
            return False
        return expiry is None or now - self.idle_since < expiry

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Ends the connection at once, unread bytes and all."""
        if self._transport is not None:
            self._transport.abort()

    def shut(self) -> None:
        """The transport is closing: a reply still due is an error, however much of it came, and
        the connection ends (even one still being opened, the moment it opens)."""
        self._break(httpx.TransportError, "the provider's transport closed mid-call")

    async def exchange(
        self, message: bytes, request: httpx.Request, read_timeout: float | None, deadline: float
    ) -> _Reply:
        """Sends `message` and waits for the whole reply, within the read timeout and the deadline."""
        assert self._transport is not None
        self._reply = self._loop.create_future()
        self._request = request
        self._reason, self._headers, self._body = b"", [], []
        self._heard = self._framed = self._head_done = False
        self._received = 0
        self._read_timeout, self._deadline = read_timeout, deadline
        self._last_heard = self._loop.time()
        self._arm_timer()
        self._transport.write(message)
        try:
            return await self._reply
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._reply = self._request = None

    # asyncio's protocol callbacks.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, whichever loop made it (uvloop's do not subclass asyncio's).
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._reply is None or self._reply.done():
            self._spoiled = True
            self.abort()
            return
        self._heard = True
        self._last_heard = self._loop.time()
        self._received += len(data)
        if self._received > MAX_REPLY_BYTES:
            self._break(httpx.RemoteProtocolError, "the reply is larger than any provider's")
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._break(httpx.RemoteProtocolError, "the server switched protocols")
        except httptools.HttpParserError as exc:
            self._break(httpx.RemoteProtocolError, f"the reply is not HTTP/1.1 ({exc})")

    def eof_received(self) -> None:
        self._peer_done = True  # the transport then closes, and `connection_lost` follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool._forget(self)
        if self._reply is None or self._reply.done():
            return
        if exc is None and self._peer_done and self._head_done and not self._framed:
            self._finish(keep_alive=False)  # a reply whose end is the server closing the connection
        elif isinstance(exc, OSError):
            self._fail(httpx.ReadError(f"the connection broke off ({exc})", request=self._request))
        elif self._heard:
            self._fail(httpx.RemoteProtocolError("the server closed the connection mid-reply", request=self._request))
        else:
            self._fail(httpx.RemoteProtocolError("the server closed the connection unanswered", request=self._request))

    # httptools' parser callbacks.

    def on_message_begin(self) -> None:
        if self._reply is None or self._reply.done():
            self._spoiled = True  # a second reply to one request
        self._reason, self._headers, self._body = b"", [], []
        self._framed = self._head_done = False

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head_done:
            return  # a chunked reply's trailer: not part of the reply's head
        self._headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" or (lowered == b"transfer-encoding" and b"chunked" in value.lower()):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._head_done = True
        status = self._parser.get_status_code()
        if status < 100:
            self._break(httpx.RemoteProtocolError, f"not an HTTP status: {status}")
        elif status < 200 or status in (204, 304):
            self._framed = True  # no body at all

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._parser.get_status_code() < 200:
            return  # an interim reply (100 Continue): the real one follows
        self._finish(keep_alive=self._parser.should_keep_alive())

    # The exchange's end.

    def _finish(self, *, keep_alive: bool) -> None:
        if self._reply is None or self._reply.done():
            self._spoiled = True
            return
        self._reply.set_result(
            _Reply(self._parser.get_status_code(), self._reason, self._headers, b"".join(self._body), keep_alive)
        )

    def _fail(self, error: httpx.HTTPError) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(error)

    def _break(self, error: type[httpx.RequestError], message: str) -> None:
        """The reply due is `error`, and the connection, its state now in doubt, ends at once."""
        self._fail(error(message, request=self._request))
        self.abort()

    def _arm_timer(self) -> None:
        due = self._deadline
        if self._read_timeout is not None:
            due = min(due, self._last_heard + self._read_timeout)
        self._timer = self._loop.call_at(due, self._on_timer) if due < math.inf else None

    def _on_timer(self) -> None:
        """Re-armed while bytes keep arriving within the read timeout; the deadline ends it regardless."""
        self._timer = None
        if self._reply is None or self._reply.done():
            return
        now = self._loop.time() + _CLOCK_SLACK  # the loop may run a timer a hair early
        quiet = self._read_timeout is not None and now >= self._last_heard + self._read_timeout
        if quiet or now >= self._deadline:
            self._break(httpx.ReadTimeout, "the provider's reply did not come in time")
        else:
            self._arm_timer()


class ProviderTransport(httpx.AsyncBaseTransport):
    """A pool of `_Connection`s per origin, opened on demand up to `limits.max_connections`."""

    def __init__(self, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        self._max = limits.max_connections
        self._max_idle = math.inf if limits.max_keepalive_connections is None else limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        # httpx's trust store, as httpx's own transport would verify a provider with. Made here,
        # at start-up: loading it takes tens of milliseconds.
        self._ssl = ssl_context if ssl_context is not None else httpx.create_ssl_context()
        self._connections: set[_Connection] = set()  # open or opening: what the cap counts
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._next_prune = 0.0
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise _closed(request)
        timeout = request.extensions.get("timeout", {})
        pool, connect, read = timeout.get("pool"), timeout.get("connect"), timeout.get("read")
        message = await _message(request)
        loop = asyncio.get_running_loop()
        whole = pool + connect + read if pool is not None and connect is not None and read is not None else math.inf
        deadline = loop.time() + whole
        connection = await self._acquire(_origin(request), request, pool, connect)
        try:
            reply = await connection.exchange(message, request, read, deadline)
        except BaseException:
            connection.abort()  # cancelled or failed mid-exchange: its state is in doubt
            self._release(connection, reuse=False)
            raise
        self._release(connection, reuse=reply.keep_alive)
        return httpx.Response(
            reply.status,
            headers=reply.headers,
            content=reply.body,  # read already: the response is complete, with nothing left to stream
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reply.reason},
        )

    async def aclose(self) -> None:
        self._closed = True
        for connection in list(self._connections):
            connection.shut()
        self._connections.clear()
        self._idle.clear()
        self._idle_count = 0
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # The pool.

    async def _acquire(
        self, origin: _Origin, request: httpx.Request, pool_timeout: float | None, connect_timeout: float | None
    ) -> _Connection:
        """An idle connection to `origin` still fit for use, else a new one once the cap allows."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + pool_timeout if pool_timeout is not None else None
        if self._idle_count and loop.time() >= self._next_prune:
            self._prune(loop.time())
        while True:
            if self._closed:
                raise _closed(request)
            idle = self._idle.get(origin)
            while idle:
                connection = idle.pop()  # the most recently used: the likeliest to be alive
                self._idle_count -= 1
                if connection.reusable(loop.time(), self._expiry):
                    return connection
                self._drop(connection)
            if self._max is None or len(self._connections) < self._max:
                return await self._open(origin, request, connect_timeout)
            if self._idle_count:
                self._drop(self._oldest_idle())  # room for this origin at another's expense
                continue
            await self._wait_for_room(request, deadline)

    async def _wait_for_room(self, request: httpx.Request, deadline: float | None) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return  # room came just as the wait ran out: it is taken, not lost
            raise httpx.PoolTimeout("no connection to the provider came free in time", request=request) from None
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._wake_one()  # the room it was given goes to the next in line
            raise
        finally:
            if waiter in self._waiting:
                self._waiting.remove(waiter)

    async def _open(self, origin: _Origin, request: httpx.Request, connect_timeout: float | None) -> _Connection:
        scheme, host, port, sni = origin
        connection = _Connection(self, origin)
        self._connections.add(connection)
        tls = scheme == b"https"
        try:
            async with asyncio.timeout(connect_timeout):
                await asyncio.get_running_loop().create_connection(
                    lambda: connection, host, port, ssl=self._ssl if tls else None, server_hostname=sni if tls else None
                )
        except BaseException as exc:
            self._forget(connection)
            if isinstance(exc, TimeoutError):
                raise httpx.ConnectTimeout(f"connecting to {host} timed out", request=request) from None
            if isinstance(exc, OSError):  # refused, unreachable, no such host, a certificate not trusted
                raise httpx.ConnectError(f"could not connect to {host} ({exc})", request=request) from None
            raise
        if connection not in self._connections:  # the transport closed while it was being opened
            connection.abort()
            raise _closed(request)
        return connection

    def _release(self, connection: _Connection, *, reuse: bool) -> None:
        loop = asyncio.get_running_loop()
        if reuse and not self._closed and self._idle_count < self._max_idle and connection.reusable(loop.time(), None):
            connection.idle_since = loop.time()
            self._idle.setdefault(connection.origin, []).append(connection)
            self._idle_count += 1
        else:
            self._drop(connection)
        self._wake_one()

    def _prune(self, now: float) -> None:
        """Closes idle connections past their keep-alive expiry, whichever origin they are to."""
        self._next_prune = now + PRUNE_PERIOD
        for idle in list(self._idle.values()):
            for connection in [c for c in idle if not c.reusable(now, self._expiry)]:
                self._drop(connection)

    def _oldest_idle(self) -> _Connection:
        return min((c for idle in self._idle.values() for c in idle), key=lambda c: c.idle_since)

    def _drop(self, connection: _Connection) -> None:
        """Closes a connection and gives up its place under the cap."""
        idle = self._idle.get(connection.origin)
        if idle and connection in idle:
            idle.remove(connection)
            self._idle_count -= 1
        connection.close()
        self._connections.discard(connection)

    def _forget(self, connection: _Connection) -> None:
        """A connection that has ended (the server closed it, or it never opened) leaves the pool."""
        if connection in self._connections:
            self._drop(connection)
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def _closed(request: httpx.Request) -> httpx.TransportError:
    return httpx.TransportError("the provider's transport is closed", request=request)


def _origin(request: httpx.Request) -> _Origin:
    """Where a request goes: connections are shared only by requests with the same origin and
    the same TLS server name. The host is the URL's ASCII form (an international name's IDNA
    encoding, as httpx made it), never re-encoded here."""
    url = request.url
    port = url.port or (443 if url.scheme == "https" else 80)
    host = url.raw_host.decode("ascii")
    return url.raw_scheme, host, port, request.extensions.get("sni_hostname") or host


async def _message(request: httpx.Request) -> bytes:
    """The request as it goes on the wire: its head, then its body (read whole, as providers'
    requests are small), refusing anything that could split the head."""
    body = await request.aread()
    if not request.method or _BAD_NAME.search(request.method.encode("ascii", "replace")):
        raise httpx.LocalProtocolError(f"not a method: {request.method!r}", request=request)
    if request.method == "HEAD":  # its reply's length would describe a body that never comes
        raise httpx.LocalProtocolError("HEAD is not supported: no provider call uses it", request=request)
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    has_host = False
    for name, value in request.headers.raw:
        if not name or _BAD_NAME.search(name) or _BAD_VALUE.search(value):
            raise httpx.LocalProtocolError(f"a header that cannot be sent: {name!r}", request=request)
        lowered = name.lower()
        if lowered in (b"transfer-encoding", b"content-length"):
            continue  # the body goes whole, with the length it has (whatever a header claimed)
        has_host = has_host or lowered == b"host"
        lines.append(name + b": " + value)
    if not has_host:
        lines.insert(1, b"Host: " + request.url.netloc)
    if body or request.method in ("POST", "PUT", "PATCH"):
        lines.append(b"Content-Length: %d" % len(body))
    lines.append(b"")
    lines.append(body)
    return b"\r\n".join(lines)


def default_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """The production transport, capped at `limits.max_connections`.

    An `httpx.AsyncClient` ignores its own `limits=` once it is given a transport, so the
    cap goes here. Timeouts still come per request from httpx (`IPAY_TIMEOUT`)."""
    return ProviderTransport(limits)
