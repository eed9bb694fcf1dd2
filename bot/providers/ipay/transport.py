"""The HTTP transport under the iPay client's `httpx.AsyncClient`.

The client keeps httpx's API (requests, responses, timeouts, exceptions); only the wire
underneath is aiohttp's, through `httpx-aiohttp`. httpx's own transport spent most of a
status sweep's CPU on sending requests and managing its pool (see the README's
performance section for the measurement); aiohttp does the same work for a fraction of that.

Whatever goes wrong on the wire still reaches the client as an `httpx` exception, so
`IpayClient` can keep catching `httpx.TimeoutException` and `httpx.HTTPError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport


class IpayTransport(AiohttpTransport):
    """`AiohttpTransport` with every aiohttp failure mapped to the httpx exception it means.

    httpx-aiohttp maps by class and sends every `ClientConnectionError` to `ConnectTimeout`,
    so a connection the server drops mid-answer would read as a timeout; and errors outside
    its table (a reply that is not HTTP, for one) would escape as aiohttp's own. Here a
    timeout stays a timeout, a dropped connection is a protocol error, and anything else
    aiohttp raises is a transport error.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except httpx.HTTPError as exc:
            raise _httpx_error(exc.__cause__, request) or exc from exc.__cause__
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _httpx_error(exc, request) or httpx.TransportError(str(exc), request=request) from exc
        if isinstance(response.stream, httpx.AsyncByteStream):  # always, from an async transport
            response.stream = _MappedStream(response.stream, request)
        return response


class _MappedStream(httpx.AsyncByteStream):
    """The response body, with failures while reading it mapped the same way."""

    def __init__(self, inner: httpx.AsyncByteStream, request: httpx.Request) -> None:
        self._inner = inner
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx.HTTPError as exc:
            raise _httpx_error(exc.__cause__, self._request) or exc from exc.__cause__
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _httpx_error(exc, self._request) or httpx.ReadError(str(exc), request=self._request) from exc

    async def aclose(self) -> None:
        await self._inner.aclose()


def _httpx_error(cause: BaseException | None, request: httpx.Request) -> httpx.HTTPError | None:
    """The httpx exception an aiohttp failure means, or None to keep httpx-aiohttp's mapping."""
    if cause is None:
        return None
    message = str(cause) or type(cause).__name__
    mapped: httpx.HTTPError
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        mapped = httpx.ConnectTimeout(message, request=request)  # includes waiting for a free connection
    elif isinstance(cause, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        mapped = httpx.ReadTimeout(message, request=request)
    elif isinstance(cause, aiohttp.ClientConnectorError):
        mapped = httpx.ConnectError(message, request=request)
    elif isinstance(cause, (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError)):
        mapped = httpx.RemoteProtocolError(message, request=request)
    elif isinstance(cause, (aiohttp.ClientOSError, aiohttp.ClientPayloadError)):
        mapped = httpx.ReadError(message, request=request)
    else:
        return None
    mapped.__cause__ = cause
    return mapped


def default_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """The production transport: aiohttp's connection pool, capped at `limits.max_connections`.

    An `httpx.AsyncClient` ignores its own `limits=` once it is given a transport, so the
    cap goes here. Timeouts still come per request from httpx (`IPAY_TIMEOUT`): connect and
    read as aiohttp's socket timeouts, pool as aiohttp's wait for a connection.
    """
    return IpayTransport(limits=limits)
