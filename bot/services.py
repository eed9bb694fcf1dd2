"""The shared objects the handlers and jobs use, opened in `post_init`, closed in `post_shutdown`."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from telegram.ext import ContextTypes

from bot.config import Settings
from bot.i18n.languages import Languages
from bot.orders.notifier import Notifier
from bot.orders.poller import StatusPoller
from bot.orders.service import PaymentService
from bot.pay.drafts import ConversationService
from bot.paybill.service import ManualPaymentService
from bot.refunds.service import RefundService
from bot.reports.service import ReportService
from bot.requests.service import RequestService
from bot.store import Store

SERVICES_KEY = "services"


@dataclass
class Services:
    settings: Settings
    http: httpx.AsyncClient
    store: Store
    payments: PaymentService
    notifier: Notifier
    poller: StatusPoller
    reports: ReportService
    conversations: ConversationService
    languages: Languages
    requests: RequestService
    refunds: RefundService | None = None  # opened in post_init with the others
    paybill: ManualPaymentService | None = None  # payments made by hand the provider tells of (Daraja's C2B)


def services_of(context: ContextTypes.DEFAULT_TYPE) -> Services:
    services: Services = context.application.bot_data[SERVICES_KEY]
    return services
