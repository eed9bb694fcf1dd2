"""Wiring: builds the Application and opens and closes the shared objects.

The httpx client and the database open in `post_init` and close in `post_shutdown`, as
python-telegram-bot's own examples do; nothing lives in module globals.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from telegram import BotCommand, BotCommandScopeChat
from telegram.error import TelegramError
from telegram.ext import ApplicationBuilder, ContextTypes, JobQueue
from telegram.request import BaseRequest

from bot.config import Settings
from bot.domain import NAIROBI, Network
from bot.i18n import ENGLISH, KISWAHILI, speaking
from bot.i18n.languages import Languages
from bot.lifecycle import BotApplication, BotBuilder, running
from bot.miniapp.menu import set_menu_buttons
from bot.orders import notices
from bot.orders.notifier import Notifier
from bot.orders.poller import StatusPoller
from bot.orders.service import PaymentPolicy, PaymentService
from bot.owner.service import evening as owner_evening
from bot.owner.summary import week_chart
from bot.pay.drafts import ConversationService
from bot.paybill.service import ManualPaymentService
from bot.providers.base import PaymentProvider, ProviderError
from bot.providers.daraja import DarajaClient
from bot.providers.ipay import IpayClient
from bot.providers.limiter import CallBudget
from bot.providers.transport import default_transport
from bot.refunds.sentences import totals_params as refund_totals_params
from bot.refunds.service import RefundPolicy, RefundService
from bot.reports.service import DAY_SECONDS, Close, ReportService, latest_close, nearest_close
from bot.requests.service import RequestService
from bot.routes import ALLOWED_UPDATES, register_handlers, watch_conversation_timeouts, watch_payment_requests
from bot.services import SERVICES_KEY, Services, services_of
from bot.store import Store
from bot.store.base import instance_gone
from bot.telegram import sentences as chat_sentences
from bot.telegram.ratelimit import PerChatRateLimiter
from bot.telegram.updates import FORGET_UPDATES_EVERY, PerChatUpdateProcessor, forget_seen_updates
from bot.web import WEBHOOK_PATH, WebServer, build_web_app

log = logging.getLogger(__name__)

SANDBOX_BASE_URL = "http://ipay.sandbox/payments/v2"
DARAJA_SANDBOX_BASE_URL = "http://daraja.sandbox"
SWEEP_EVERY = 1.0  # finding nothing due is one index lookup, so look often: a due order waits < 1 s
SANDBOX_KEY = "sandbox"
WEB_KEY = "web"  # the running WebServer, owned by this module (started in post_init, stopped by stop_http)
REFUND_SWEEP_EVERY = 30.0  # a lapsed refund call is rare: found at start-up, else within half a minute
HEARTBEAT_EVERY = 1.0  # well inside the store's staleness (5 s): a live instance never looks dead


class StartupRefused(Exception):
    """Starting would break something already running; the message says what and what to do."""


def build_application(
    settings: Settings,
    *,
    telegram_request: BaseRequest | None = None,
    ipay_transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
    rate_limit: bool = True,
) -> BotApplication:
    """The whole bot. Tests and the console pass an emulated Telegram and iPay transport;
    benchmarks turn off the rate limiter that keeps the bot within Telegram's own limits."""
    builder = _builder(settings, telegram_request, rate_limit)
    sandbox: object | None = None  # the in-process stand-in of the provider, with the sandbox on
    if settings.ipay_sandbox and ipay_transport is None:
        sandbox, ipay_transport = _sandbox(settings, clock)
    if settings.ipay_live and not settings.shop_name:
        log.warning(
            'SHOP_NAME is not set: customers read "the shop" ("duka" in Kiswahili) on every receipt; '
            "set SHOP_NAME to the name they know the shop by"
        )

    async def post_init(application: BotApplication) -> None:
        await _open_services(application, settings, ipay_transport, clock)
        await _claim_instance(application, settings, clock)
        if sandbox is not None:
            application.bot_data[SANDBOX_KEY] = sandbox
        payments = services_of_app(application).payments
        await _command_menus(application, payments.networks)
        _schedule_jobs(application, settings)
        await _admin_command_menus(application, settings, payments.provider_name, payments.networks)
        await set_menu_buttons(application, settings)
        await _resume(application)
        if settings.serves_http:
            await _serve_http(application, settings, clock)
        if settings.webhook_url:
            await _set_webhook(application, settings)

    application = builder.post_init(post_init).post_shutdown(_shut_down).build()
    register_handlers(application)
    return application


def _builder(settings: Settings, telegram_request: BaseRequest | None, rate_limit: bool) -> BotBuilder:
    builder: BotBuilder = (
        ApplicationBuilder().token(settings.telegram_bot_token).concurrent_updates(PerChatUpdateProcessor())
    )
    if rate_limit:
        builder = builder.rate_limiter(PerChatRateLimiter(max_retries=3))
    if settings.webhook_url:
        builder = builder.updater(None)  # updates arrive at our own web server
    if settings.telegram_base_url:
        builder = builder.base_url(settings.telegram_base_url)
    if telegram_request is not None:
        builder = builder.request(telegram_request).get_updates_request(telegram_request)
    return builder


async def _claim_instance(application: BotApplication, settings: Settings, clock: Callable[[], float]) -> None:
    """This instance may run (no other poller, no second process on a SQLite file) and says it is alive."""
    store = services_of_app(application).store
    mode = "webhook" if settings.webhook_url else "polling"
    await _refuse_to_share(store, mode, clock)
    await store.heartbeat(mode, clock())
    # A heartbeat is one idempotent write: one that outlasts the second (a busy database) may
    # overlap the next without a warning every second; three stuck at once are worth one.
    _jobs(application).run_repeating(
        heartbeat_job,
        interval=HEARTBEAT_EVERY,
        first=HEARTBEAT_EVERY,
        name="heartbeat",
        data=mode,
        job_kwargs={"max_instances": 3},
    )
    if isinstance(application.update_processor, PerChatUpdateProcessor):
        application.update_processor.chat_lock = store.chat_lock


def _schedule_jobs(application: BotApplication, settings: Settings) -> None:
    """The status sweep, and the merchant's daily summary when there is a merchant chat."""
    jobs = _jobs(application)
    jobs.run_repeating(
        status_sweep_job,
        interval=min(settings.poll_interval_seconds, SWEEP_EVERY),
        first=settings.poll_interval_seconds,
        name="status-sweep",
        data=SweepGate(),
        job_kwargs={"max_instances": 2},
    )
    jobs.run_repeating(forget_seen_updates, interval=FORGET_UPDATES_EVERY, first=60.0, name="forget-updates")
    if settings.merchant_chat_id is not None:
        jobs.run_daily(
            daily_summary_job, time=settings.daily_summary_time.replace(tzinfo=NAIROBI), name="daily-summary"
        )


def _jobs(application: BotApplication) -> JobQueue[ContextTypes.DEFAULT_TYPE]:
    """The job queue, which `ApplicationBuilder` always gives (python-telegram-bot[job-queue])."""
    if application.job_queue is None:
        raise RuntimeError("python-telegram-bot was installed without its job queue: install the [job-queue] extra")
    return application.job_queue


async def _resume(application: BotApplication) -> None:
    """Pick up where a restart left off: a missed daily summary is queued, a refund call
    never recorded is told as "outcome unknown", unsent notices go out,
    open /pay conversations time out on time."""
    services = services_of_app(application)
    try:
        await catch_up_daily_summary(services)
    except Exception:  # a summary that cannot be caught up now never stops the bot starting
        log.exception("the missed daily summary could not be caught up")
    if services.refunds is not None:  # a refund call a stopped instance never recorded: told now
        await services.refunds.sweep_lapsed()
    services.notifier.kick()
    _jobs(application).run_repeating(
        refund_sweep_job, interval=REFUND_SWEEP_EVERY, first=REFUND_SWEEP_EVERY, name="refund-sweep"
    )
    await watch_conversation_timeouts(application)
    watch_payment_requests(application)  # expiry, and request messages edited to "Paid"


async def _serve_http(application: BotApplication, settings: Settings, clock: Callable[[], float]) -> None:
    """The web server (health check, iPay callbacks, the payments API, Telegram's webhook): started
    here, kept under WEB_KEY, stopped by `stop_http`."""
    web = WebServer(build_web_app(services_of_app(application), application, clock=clock), settings.port)
    await web.start()
    application.bot_data[WEB_KEY] = web
    log.info("serving HTTP on port %d", web.port)


def web_server_of(application: BotApplication) -> WebServer | None:
    """The running web server, if this application serves HTTP."""
    web: WebServer | None = application.bot_data.get(WEB_KEY)
    return web


async def stop_http(application: BotApplication) -> None:
    """Stop taking requests. The server is taken out first, so it is stopped once, by whichever comes
    first: `run_webhook` on SIGTERM (before in-flight work finishes) or `post_shutdown`."""
    web: WebServer | None = application.bot_data.pop(WEB_KEY, None)
    if web is not None:
        # A till waiting on a payment (`?wait=`) is answered now, as it stands: the server
        # finishes the requests in flight before it stops.
        services_of_app(application).payments.changes.close()
        await web.stop()


async def _set_webhook(application: BotApplication, settings: Settings) -> None:
    await application.bot.set_webhook(
        settings.webhook_url + WEBHOOK_PATH,
        secret_token=settings.webhook_secret,
        allowed_updates=ALLOWED_UPDATES,
    )


def services_of_app(application: BotApplication) -> Services:
    services: Services = application.bot_data[SERVICES_KEY]
    return services


async def _open_services(
    application: BotApplication,
    settings: Settings,
    ipay_transport: httpx.AsyncBaseTransport | None,
    clock: Callable[[], float],
) -> None:
    store = await Store.open(settings.database)
    ipay, http = _provider(settings, ipay_transport, clock)
    languages = Languages(store, settings.merchant_language, clock=clock)
    notifier = Notifier(
        store, application.bot, clock=clock, merchant_chat_id=settings.merchant_chat_id, language_of=languages.of_reader
    )
    payments = PaymentService(
        store,
        ipay,
        _payment_policy(settings),
        clock=clock,
        on_notices=notifier.kick,
        budget=CallBudget(settings.poll_concurrency),
    )
    poller = StatusPoller(store, payments, clock=clock)
    reports = ReportService(store, clock=clock)
    conversations = ConversationService(store, settings.conversation_timeout_seconds, clock=clock)
    requests = RequestService(
        store,
        ttl_seconds=settings.request_ttl_hours * 3600,
        sandbox=settings.ipay_sandbox,
        bot_username=lambda: application.bot.username,
        clock=clock,
    )
    payments.requests = requests
    refunds = RefundService(
        store, ipay, _refund_policy(settings), clock=clock, on_notices=notifier.kick, budget=payments.budget
    )
    paybill = None
    if settings.daraja is not None and settings.daraja.register_c2b:
        paybill = ManualPaymentService(
            store,
            payments,
            merchant_chat_id=settings.merchant_chat_id,
            sandbox=settings.ipay_sandbox,
            clock=clock,
            on_notices=notifier.kick,
        )
    application.bot_data[SERVICES_KEY] = Services(
        settings, http, store, payments, notifier, poller, reports, conversations, languages, requests, refunds, paybill
    )
    if paybill is not None:
        await _register_manual_payments(ipay)


async def _register_manual_payments(provider: object) -> None:
    """Ask the provider to send payments made by hand here (DARAJA_REGISTER_C2B). A provider that
    cannot be reached now does not stop the bot: prompts work without it, and the log says so."""
    register = getattr(provider, "register_manual_payments", None)
    if register is None:
        return
    try:
        await register()
        log.info("payments made by hand (C2B) are registered with the provider")
    except ProviderError as exc:
        log.warning("payments made by hand (C2B) could not be registered: %s; restart to try again", exc.reason)


@asynccontextmanager
async def open_payment_service(
    settings: Settings, *, clock: Callable[[], float], ipay_transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[tuple[Store, PaymentService]]:
    """The store and the payment service without Telegram, for tools beside a running bot
    (`python -m bot.reconcile`): what they finalise is queued in the outbox, and the running
    bot's notifier sends it."""
    store = await Store.open(settings.database)
    provider, http = _provider(settings, ipay_transport, clock)
    try:
        payments = PaymentService(
            store,
            provider,
            _payment_policy(settings),
            clock=clock,
            budget=CallBudget(settings.poll_concurrency),
        )
        payments.requests = RequestService(
            store,
            ttl_seconds=settings.request_ttl_hours * 3600,
            sandbox=settings.ipay_sandbox,
            bot_username=lambda: "",  # links are not part of what a payment's outcome says
            clock=clock,
        )
        yield store, payments
        await payments.wait_idle()
    finally:
        await http.aclose()
        await store.close()


def _sandbox(settings: Settings, clock: Callable[[], float]) -> tuple[object, httpx.AsyncBaseTransport]:
    """The chosen provider's stand-in, and the transport that reaches it in-process."""
    daraja = settings.daraja
    if daraja is not None:
        from bot.sandbox.daraja import DarajaSandbox

        stand_in = DarajaSandbox(
            consumer_key=daraja.consumer_key,
            consumer_secret=daraja.consumer_secret,
            shortcode=daraja.shortcode,
            passkey=daraja.passkey,
            clock=clock,
        )
        return stand_in, stand_in.transport()
    from bot.sandbox.ipay import IpaySandbox

    shop = settings.shop_name or "the shop"
    ipay = IpaySandbox(vid=settings.ipay_vid, hash_key=settings.ipay_hash_key, shop_name=shop)
    return ipay, ipay.transport()


def _provider(
    settings: Settings, transport: httpx.AsyncBaseTransport | None, clock: Callable[[], float] = time.time
) -> tuple[PaymentProvider, httpx.AsyncClient]:
    """The payment provider the settings choose (`PAYMENT_PROVIDER`), and the one HTTP client
    whose `aclose()` closes its wire. iPay's client calls that client's transport itself
    (`bot/providers/ipay/client.py` says why); Daraja's goes through the client."""
    wire = transport if transport is not None else default_transport(_provider_limits(settings))
    http = httpx.AsyncClient(transport=wire, timeout=httpx.Timeout(30.0, connect=5.0))
    daraja = settings.daraja
    if daraja is None:
        return _ipay_client(settings, wire), http
    return DarajaClient(
        http,
        consumer_key=daraja.consumer_key,
        consumer_secret=daraja.consumer_secret,
        shortcode=daraja.shortcode,
        passkey=daraja.passkey,
        callback_url=daraja.callback_url,
        till_number=daraja.till_number,
        manual_payments=daraja.register_c2b,
        initiator=daraja.initiator,
        security_credential=daraja.security_credential,
        base_url=DARAJA_SANDBOX_BASE_URL if settings.ipay_sandbox else daraja.base_url,
        clock=clock,
    ), http


def _ipay_client(settings: Settings, transport: httpx.AsyncBaseTransport) -> IpayClient:
    return IpayClient(
        transport,
        vid=settings.ipay_vid,
        hash_key=settings.ipay_hash_key,
        live=settings.ipay_live,
        base_url=SANDBOX_BASE_URL if settings.ipay_sandbox else settings.ipay_base_url,
        callback_url=settings.ipay_callback_url,
        customer_email=settings.ipay_customer_email,
        search_read_timeout=2 * settings.poll_interval_seconds,
    )


def _refund_policy(settings: Settings) -> RefundPolicy:
    return RefundPolicy(
        admin_ids=settings.admin_ids,
        merchant_chat_id=settings.merchant_chat_id,
        max_age_days=settings.refund_max_age_days,
        sandbox=settings.ipay_sandbox,
    )


def _payment_policy(settings: Settings) -> PaymentPolicy:
    return PaymentPolicy(
        poll_interval=settings.poll_interval_seconds,
        payment_timeout=settings.payment_timeout_seconds,
        merchant_chat_id=settings.merchant_chat_id,
        sandbox=settings.ipay_sandbox,
        limit_per_user=settings.pay_limit_per_user,
        user_window=settings.pay_limit_user_window_seconds,
        limit_per_phone=settings.pay_limit_per_phone,
        exempt_user_ids=settings.admin_ids | settings.staff_ids,
        shop_name=settings.shop_name,
    )


def _provider_limits(settings: Settings) -> httpx.Limits:
    """The provider's connection pool: one connection for every call the budget may have in
    flight, plus room for prompts being sent meanwhile, reused across sweeps.

    The wire is the providers' own (`bot/providers/transport.py`), a fraction of httpx's own CPU
    per call; tests and the console pass the in-process sandbox's transport instead.
    """
    return httpx.Limits(
        max_connections=settings.poll_concurrency + 20, max_keepalive_connections=settings.poll_concurrency
    )


async def _shut_down(application: BotApplication) -> None:
    """`post_shutdown`: no more requests, then the shared services close."""
    await stop_http(application)
    await _close_services(application)


async def _close_services(application: BotApplication) -> None:
    services: Services | None = application.bot_data.get(SERVICES_KEY)
    if services is None:
        return
    await services.poller.wait_idle()
    await services.payments.wait_idle()
    if services.refunds is not None:
        await services.refunds.wait_idle()
    await services.notifier.wait_idle()
    await services.http.aclose()
    try:
        await services.store.leave(services.payments.now())  # this instance's claims lapse at once
    finally:
        await services.store.close()


@dataclass
class SweepGate:
    """Whether the repeating sweep job has a sweep running.

    Starting the due lookups is quick, but finishing unsent orders or a slow database can
    outlast the one-second interval. With
    one instance allowed, APScheduler skipped each firing meanwhile and logged a warning
    for it, every second; queueing them instead would pile up sweeps. So the job allows a
    second instance, which sees the gate shut and returns at once, silently.
    """

    running: bool = False


async def status_sweep_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    gate = context.job.data if context.job is not None else None
    if not isinstance(gate, SweepGate):
        raise TypeError("status_sweep_job runs as the repeating job post_init registers, with its SweepGate")
    if gate.running:
        return
    gate.running = True
    try:
        services = services_of(context)
        started = await services.poller.start_due()  # lookups finish on their own, never holding the next sweep
        if started:
            log.debug("status sweep started %d lookups", len(started))
        services.notifier.kick()
    finally:
        gate.running = False


async def _refuse_to_share(store: Store, mode: str, clock: Callable[[], float]) -> None:
    """Telegram serves `getUpdates` to one consumer: a second poller on the same database would
    fight the first for updates. And a SQLite file serves one process: several instances need
    PostgreSQL. An instance that was killed stops its heartbeat, so one that looks alive is
    given the staleness period to prove it before start-up is refused."""
    deadline = time.monotonic() + store.stale_after + 1.0
    while True:
        live = [(i, m) for i, m, _ in await store.live_instances(clock()) if not instance_gone(i)]
        if not live or (store.shareable and mode == "webhook" and all(m == "webhook" for _, m in live)):
            return
        if time.monotonic() > deadline:
            other, other_mode = live[0]
            if "polling" in (mode, other_mode):
                raise StartupRefused(
                    f"another instance ({other}, {other_mode} mode) is running on this database and long polling must "
                    "be the only one: Telegram gives updates to one poller. Stop it, or run every instance in webhook "
                    "mode (WEBHOOK_URL) on PostgreSQL"
                )
            raise StartupRefused(
                f"another instance ({other}) is running on this SQLite file, which serves one process. Stop it, or "
                "run several instances on PostgreSQL (DATABASE_URL) in webhook mode"
            )
        await asyncio.sleep(0.5)


async def refund_sweep_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Refund calls whose instance stopped before recording the provider's answer, and accepted
    refunds whose result did not come in time: "outcome unknown", told to the admins (after a
    restart, once a dead instance's claim lapses, or once the result is overdue)."""
    refunds = services_of(context).refunds
    if refunds is not None:
        await refunds.sweep_lapsed()
        await refunds.sweep_overdue()  # accepted refunds whose result never came: not confirmed


async def heartbeat_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """This instance is alive: its claims (orders, chats) hold, and a second poller is refused."""
    mode = context.job.data if context.job is not None else "polling"
    services = services_of(context)
    await services.store.heartbeat(str(mode), services.payments.now())


DOUBT_LISTED = 20  # the daily summary names at most this many orders in doubt


async def daily_summary_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The evening's totals to the merchant chat, through the outbox: the orders since the
    previous summary, up to now (at 00:00, the whole day that just ended)."""
    services = services_of(context)
    now = services.reports.now()
    close = nearest_close(services.settings.daily_summary_time, now)
    if await _summarise(services, close, until=now):
        await week_chart(context.application.bot, services, close.day)  # a Sunday's close comes with the week's chart


async def catch_up_daily_summary(services: Services) -> None:
    """On start-up: the last scheduled summary, if no instance sent it (the bot was down across
    the summary time). It covers the orders up to that time; the next evening's takes on from there."""
    close = latest_close(services.settings.daily_summary_time, services.reports.now())
    await _summarise(services, close, until=close.at)


async def _summarise(services: Services, close: Close, *, until: float) -> bool:
    """Queue the summary of `close`: the orders and refunds from where the previous summary ended
    (or a day before `close`, the first time) until `until`; nothing for a stretch without them,
    which the next summary then covers. True if this instance queued it."""
    merchant = services.settings.merchant_chat_id
    if merchant is None:
        return False
    since = await services.store.last_daily_summary_end()
    start = close.at - DAY_SECONDS if since is None else since
    rows = await services.reports.summary_between(start, until)
    refunds = await services.reports.refunds_between(start, until)
    # Orders in doubt from any day made before the stretch's end: still unresolved; a later one is
    # named by the next summary (a catch-up covers an evening that was over before it was made).
    doubtful = [o for o in await services.store.orders_in_doubt(DOUBT_LISTED) if o.created_at < until]
    if not (rows or refunds or doubtful):
        return False
    # Once a day, however many instances run this job: the first to record the day queues it.
    # Queued as a kind and its figures: said in MERCHANT_LANGUAGE when it is sent, named for the
    # day it closes (a moment before the close: a summary at 00:00 names the day that ended).
    summary = notices.daily_summary(
        merchant, services.settings.shop_name, close.at - 1.0, rows, doubtful, services.payments.provider_name
    )
    if refunds:  # the stretch's refunds under its takings (`bot.refunds.sentences.with_refunds`)
        summary = dataclasses.replace(summary, params={**summary.params, "refunds": refund_totals_params(refunds)})
    now = services.reports.now()
    # The evening summary is the day's close by the clock (unless an admin closed the day): with
    # its cashiers and what changed the last close since, recorded with it once.
    summary, day_close = await owner_evening(services.store, summary, close.day, start, until, now)
    if await services.store.queue_daily_summary(
        close.day.isoformat(), [summary], now, covers_until=until, close=day_close
    ):
        services.notifier.kick()
        return True
    return False


async def _command_menus(application: BotApplication, networks: tuple[Network, ...]) -> None:
    """The command menu in English (the default) and in Kiswahili, for Telegram apps set to it."""
    for language, code in ((ENGLISH, None), (KISWAHILI, KISWAHILI)):
        with speaking(language):
            commands = [BotCommand(name, text) for name, text in chat_sentences.commands(networks)]
        await application.bot.set_my_commands(commands, language_code=code)


async def _admin_command_menus(
    application: BotApplication, settings: Settings, provider: str, networks: tuple[Network, ...]
) -> None:
    """Admins see the admin commands in their menu (in both languages); nobody else does."""
    for admin_id in settings.admin_ids:
        for language, code in ((ENGLISH, None), (KISWAHILI, KISWAHILI)):
            with speaking(language):
                commands = [
                    BotCommand(name, text)
                    for name, text in chat_sentences.commands(networks) + chat_sentences.admin_commands(provider)
                ]
            try:
                await application.bot.set_my_commands(commands, scope=BotCommandScopeChat(admin_id), language_code=code)
            except TelegramError as exc:  # the admin has not started the bot yet
                log.info("no admin command menu for %s: %s", admin_id, exc)
                break


async def run_webhook(settings: Settings, application: BotApplication | None = None) -> None:
    """Webhook mode: one ASGI server on PORT takes Telegram's updates and everything else.

    SIGTERM (or SIGINT) stops taking updates first (the web server), then leaving `running`
    lets in-flight sends and the current sweep finish, closes the database, and returns, all
    within a few seconds.
    """
    application = application or build_application(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running(application):  # post_init opens services, the web server and the webhook
            log.info("webhook mode: ready")
            try:
                await stop.wait()
            finally:
                log.info("stopping: no new updates, finishing what is in flight")
                await stop_http(application)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
