"""aiohttp's wire under httpx's transport API: the bot's provider transport before
`bot/providers/transport.py`, kept here so `bench/sweep.py` measures the two in one run.

A reply is read whole while its connection is held and handed over as a finished
`httpx.Response`; aiohttp's failures reach the client as the httpx exceptions they mean.
"""

from __future__ import annotations

import asyncio

import aiohttp
import httpx


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (its connection pool capped at `limits.max_connections`), opened at
    the first request and closed by `aclose()`. No cookies are kept: no provider sets any the
    bot needs, and a cookie jar is work on every reply."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        # httpx's trust store (certifi's), as httpx's own transport would verify iPay with. Made
        # here, at start-up: loading it takes tens of milliseconds.
        self._ssl = httpx.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _client(self) -> aiohttp.ClientSession:
        """The session, opened at the first request: aiohttp wants a running event loop."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0, keepalive_timeout=self._limits.keepalive_expiry, ssl=self._ssl
            )
            self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise httpx.TransportError("the provider's transport is closed", request=request)
        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        try:
            async with self._client().request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                auto_decompress=False,  # httpx decodes the body by its Content-Encoding
                timeout=_client_timeout(timeout),
                server_hostname=request.extensions.get("sni_hostname"),
            ) as response:
                content = await response.read()
        # ValueError: a header aiohttp will not send (a control character in it); RuntimeError:
        # the session closing under the call. Neither may reach the client as anything but httpx's.
        except (TimeoutError, aiohttp.ClientError, ValueError, RuntimeError) as exc:
            raise _httpx_error(exc, request) from exc
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            content=content,  # read already: the response is complete, with nothing left to stream
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None


def _client_timeout(timeout: dict[str, float | None]) -> aiohttp.ClientTimeout:
    """httpx's timeouts as aiohttp's: connect and read per socket operation, pool as the wait for
    a connection, and their sum as a deadline for the whole call, so a reply trickling in a byte
    at a time (each byte within the read timeout) still ends."""
    pool, connect, read = timeout.get("pool"), timeout.get("connect"), timeout.get("read")
    total = pool + connect + read if pool is not None and connect is not None and read is not None else None
    return aiohttp.ClientTimeout(total=total, sock_connect=connect, sock_read=read, connect=pool)


def _httpx_error(cause: BaseException, request: httpx.Request) -> httpx.HTTPError:
    """The httpx exception an aiohttp failure means."""
    message = str(cause) or type(cause).__name__
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)  # includes waiting for a free connection
    if isinstance(cause, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(cause, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message, request=request)
    if isinstance(cause, (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError)):
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(cause, (aiohttp.ClientOSError, aiohttp.ClientPayloadError)):
        return httpx.ReadError(message, request=request)
    if isinstance(cause, ValueError) and not isinstance(cause, aiohttp.ClientError):
        return httpx.LocalProtocolError(message, request=request)
    return httpx.TransportError(message, request=request)
