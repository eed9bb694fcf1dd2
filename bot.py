"""pesabot's entry point.

    python bot.py              long polling against Telegram (the Procfile's worker), or,
                               with WEBHOOK_URL set, one web server on PORT (the Procfile's web)
    python bot.py --sandbox    the same, with the built-in iPay sandbox (no money moves)
    python bot.py --console    the terminal plays Telegram and the sandbox plays iPay
    python bot.py --console --provider daraja   ...on Daraja's stand-in (Safaricom M-Pesa Express)
    python bot.py --console --admin   ...and you are the shop's admin as well

Settings come from the environment or a `.env` file (README, Configuration).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from dotenv import load_dotenv

from bot.config import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Take M-Pesa and Airtel Money payments in Telegram via iPay Africa.")
    parser.add_argument("--sandbox", action="store_true", help="use the built-in iPay sandbox: no money moves")
    parser.add_argument(
        "--console", action="store_true", help="chat in this terminal instead of Telegram (implies --sandbox)"
    )
    parser.add_argument(
        "--admin", action="store_true", help="with --console: you are the shop's admin too (/request, /orders, ...)"
    )
    parser.add_argument(
        "--provider", choices=("ipay", "daraja"), help="the payment provider (instead of PAYMENT_PROVIDER)"
    )
    args = parser.parse_args(argv)
    if args.admin and not args.console:
        parser.error("--admin goes with --console (elsewhere admins are MERCHANT_ADMIN_IDS)")
    load_dotenv(override=False)
    try:
        settings = load_settings(sandbox=args.sandbox, console=args.console, provider=args.provider)
    except ConfigError as exc:
        print(f"pesabot: configuration error: {exc}", file=sys.stderr)
        return 2

    from bot.logs import configure_logging

    if args.console:
        from bot.console import run_console

        return run_console(settings, admin=args.admin)
    configure_logging(settings.secrets)
    from bot.app import StartupRefused, build_application, run_webhook
    from bot.eventloop import use_fast_event_loop

    logging.getLogger("bot").info("event loop: %s", use_fast_event_loop())
    from bot.memory import tune_garbage_collector
    from bot.routes import ALLOWED_UPDATES

    tune_garbage_collector()
    try:
        if settings.webhook_url:
            asyncio.run(run_webhook(settings))
        else:
            build_application(settings).run_polling(allowed_updates=ALLOWED_UPDATES)
    except StartupRefused as exc:
        print(f"pesabot: not starting: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
