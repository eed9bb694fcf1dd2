"""`python -m bot.sandbox --port 8090`: the iPay sandbox as an HTTP server on loopback.

Point a bot at it with IPAY_BASE_URL=http://127.0.0.1:8090/payments/v2 and the same
IPAY_VID / IPAY_HASH_KEY. Prompts the bot pushes are printed here as the phone would show them.

`POST /sandbox/latency?seconds=1.0` changes the latency of every answer while it runs (the
benchmarks raise it half way through a burst, as a slow iPay afternoon would).
"""

from __future__ import annotations

import argparse
from urllib.parse import parse_qsl

import httpx
import uvicorn
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.config import DEMO_HASH_KEY, DEMO_VID
from bot.providers.transport import default_transport
from bot.sandbox.ipay import (
    API_PREFIX,
    CALLBACKS_IN_FLIGHT,
    OUTCOME_BY_LAST_DIGIT,
    Faults,
    IpaySandbox,
    Prompt,
    Quirk,
)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    sandbox = _sandbox(args)
    sandbox.prompt_listeners.append(_show)
    sandbox.auto_callbacks = True  # calls the bot's cbk URL (if it sent one) once the payer answers
    # The providers' wire under httpx's API, as the bot's own calls go: httpx's own pool spends time
    # quadratic in the requests waiting for a connection, which a burst of callbacks makes it.
    limits = httpx.Limits(max_connections=CALLBACKS_IN_FLIGHT)
    sandbox.callback_client = httpx.AsyncClient(timeout=10.0, transport=default_transport(limits))
    print(f"iPay sandbox on http://{args.host}:{args.port}{API_PREFIX} (vid {args.vid})", flush=True)
    for digit, outcome in sorted(OUTCOME_BY_LAST_DIGIT.items()):
        print(f"  phone ending in {digit}: {outcome.value}", flush=True)
    # Connections stay open as long as a client keeps them (75 s, as common proxies do): with
    # uvicorn's 5 s a client's pooled connection could close under its next call.
    uvicorn.run(
        LatencyControl(sandbox.asgi, sandbox.faults),
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_keep_alive=75,
    )


LATENCY_PATH = "/sandbox/latency"


class LatencyControl:
    """The sandbox app, plus `POST /sandbox/latency?seconds=S`: from then on every answer takes S."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != LATENCY_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode()))
        try:
            seconds = float(query["seconds"])
            if not 0 <= seconds <= 60:
                raise ValueError
        except (KeyError, ValueError):
            await PlainTextResponse("seconds must be a number from 0 to 60", status_code=400)(scope, receive, send)
            return
        self.faults.latency = seconds
        await PlainTextResponse(f"latency {seconds} s")(scope, receive, send)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="iPay Africa sandbox: no money, no network.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--vid", default=DEMO_VID, help="vendor id the bot must send (default: demo)")
    parser.add_argument("--key", default=DEMO_HASH_KEY, help="hash key the bot signs with (default: iPay's demo key)")
    parser.add_argument("--shop-name", default="the shop")
    parser.add_argument("--answer-delay", type=float, default=3.0, help="seconds before a simulated payer answers")
    parser.add_argument(
        "--prompt-lifetime", type=float, default=60.0, help="seconds before an unanswered prompt times out"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of answers that are 5xx errors")
    parser.add_argument("--html-rate", type=float, default=0.0, help="share of answers that are HTML error pages")
    parser.add_argument("--timeout-rate", type=float, default=0.0, help="share of calls that hang (--hang seconds)")
    parser.add_argument("--hang", type=float, default=30.0)
    parser.add_argument(
        "--quirk",
        action="append",
        default=[],
        choices=[quirk.value for quirk in Quirk],
        help="answer as live iPay may but no published sample shows (repeatable)",
    )
    return parser


def _sandbox(args: argparse.Namespace) -> IpaySandbox:
    faults = Faults(
        latency=args.latency,
        server_error_rate=args.error_rate,
        html_rate=args.html_rate,
        timeout_rate=args.timeout_rate,
        hang_seconds=args.hang,
    )
    sandbox = IpaySandbox(
        vid=args.vid,
        hash_key=args.key,
        shop_name=args.shop_name,
        answer_delay=args.answer_delay,
        prompt_lifetime=args.prompt_lifetime,
        faults=faults,
    )
    sandbox.quirks = {Quirk(value) for value in args.quirk}
    return sandbox


def _show(prompt: Prompt) -> None:
    """The prompt as the payer's phone shows it, and what the simulated payer does."""
    print(
        f"prompt to {prompt.phone} ({prompt.network}): pay KES {prompt.amount} to {prompt.shop_name}? "
        f"-> the payer {prompt.outcome.value}",
        flush=True,
    )


if __name__ == "__main__":
    main()
