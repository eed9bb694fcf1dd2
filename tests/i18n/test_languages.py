"""Kiswahili na English: every sentence in both, each person in their own language.

The catalogue is checked against the code (a msgid without a translation, or a translation
whose placeholders differ, fails); the payment is walked in both languages, with each outcome;
the language follows Telegram's on first contact, /lugha and /language switch it, the choice
survives a restart, and a receipt queued before a switch is said in the new language.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot import i18n
from bot.config import Settings
from bot.domain import OrderStatus
from bot.sandbox.ipay import IpaySandbox
from bot.sandbox.telegram import FakeBotApi
from tests.conftest import MERCHANT_CHAT, ManualClock, Shop, readable, start_shop, stop_shop, with_settings

# -- the catalogue ------------------------------------------------------------------------------


def test_every_message_has_a_kiswahili_translation_with_the_same_placeholders() -> None:
    assert i18n.problems(i18n.KISWAHILI) == []


def test_the_check_fails_on_a_missing_translation_and_on_a_changed_placeholder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = i18n.po_path(i18n.KISWAHILI).read_text(encoding="utf-8")
    broken = (
        source.replace('msgstr "Oda {order_id}: {status}"', 'msgstr "Oda {order}: {status}"')
        .replace('msgstr "Kitufe hicho hakifanyi kazi tena."', 'msgstr ""')
        .replace('msgid "Cancelled."\nmsgstr "Imeghairiwa."', "")
    )
    assert broken != source
    copy = tmp_path / "messages.po"
    copy.write_text(broken, encoding="utf-8")
    monkeypatch.setattr(i18n, "po_path", lambda lang: copy)
    found = i18n.problems(i18n.KISWAHILI)
    assert (
        "sw: placeholders ['order', 'status'] instead of ['order_id', 'status'] in 'Order {order_id}: {status}'"
        in found
    )
    assert "sw: empty translation for 'That button is no longer active.'" in found
    assert "sw: no translation for 'Cancelled.'" in found


def test_plural_forms_in_both_languages() -> None:
    from bot.i18n import formats
    from bot.orders import sentences as order_sentences
    from bot.reports import sentences as report_sentences

    with i18n.speaking(i18n.ENGLISH):
        assert report_sentences.export_caption("today", 1).startswith("Orders today: 1 row (")
        assert report_sentences.export_caption("today", 2).startswith("Orders today: 2 rows (")
        assert order_sentences.user_limit(1, 600, 0).startswith(
            "You have asked for 1 payment prompt in the last 10 minutes"
        )
    with i18n.speaking(i18n.KISWAHILI):
        assert order_sentences.user_limit(1, 600, 0).startswith(
            "Umeomba malipo mara 1 katika muda wa dakika 10 uliopita."
        )
        assert order_sentences.user_limit(5, 600, 0).startswith("Umeomba malipo mara 5 katika")
        assert order_sentences.merchant_digest(["a", "b"], 1_764_000_000.0)[0][1] == "malipo 2 tangu 19:00:\na\nb"
        assert formats.nairobi_date(1_764_000_000.0) == "24 Novemba 2025"


# -- the payment in both languages ---------------------------------------------------------------

HAPPY: dict[str, dict[str, Any]] = {
    "en": {
        "ask": "Which phone should get the payment prompt?",
        "share": "📱 Share my number",
        "amount": "Phone: 0712 345 677 (M-Pesa).\nHow much?",
        "summary": (
            "Please check:\nTo: Mama Mboga\nAmount: KES 500\nPhone: 0712 345 677\nPay with: M-Pesa\n\nTap Confirm"
        ),
        "buttons": ["✅ Confirm", "🔁 Use Airtel Money instead", "✖️ Cancel"],
        "check": "📲 Check your phone and enter your M-Pesa PIN to pay KES 500.\nOrder ",
        "cancel_button": ["✖️ Cancel this payment", "📋 No prompt on your phone?"],
        "receipt": " Confirmed. KES 500 paid to Mama Mboga from 0712 345 677 (",
        "time": ") on 24/11/25 at 7:00 PM. Order ",
        "status": "Created: 24 Nov 2025, 19:00",
    },
    "sw": {
        "ask": "Ujumbe wa PIN utumwe kwa nambari gani ya simu?",
        "share": "📱 Tuma nambari yangu",
        "amount": "Nambari ya simu: 0712 345 677 (M-Pesa).\nWeka kiasi:",
        "summary": (
            "Tafadhali hakikisha:\nMpokeaji: Mama Mboga\nKiasi: KES 500\nNambari ya simu: 0712 345 677\n"
            "Njia ya kulipa: M-Pesa\n\nBonyeza Thibitisha"
        ),
        "buttons": ["✅ Thibitisha", "🔁 Tumia Airtel Money badala yake", "✖️ Ghairi"],
        "check": "📲 Angalia simu yako na uweke PIN yako ya M-Pesa ili ulipe KES 500.\nOda ",
        "cancel_button": ["✖️ Ghairi malipo haya", "📋 Ujumbe wa PIN haujafika?"],
        "receipt": " Imethibitishwa. KES 500 zimelipwa kwa Mama Mboga kutoka 0712 345 677 (",
        "time": ") tarehe 24/11/25 saa 7:00 PM. Oda ",
        "status": "Tarehe: 24 Novemba 2025, 19:00",
    },
}


@pytest.mark.parametrize("lang", ["en", "sw"])
async def test_happy_path_in_the_payers_language(shop: Shop, lang: str) -> None:
    says = HAPPY[lang]
    customer = shop.customer(language_code=lang)
    await shop.send(customer.text("/pay"))
    ask = shop.last(customer.chat_id)
    assert ask.text.startswith(says["ask"]) and ask.reply_keyboard[0][0]["text"] == says["share"]
    await shop.send(customer.text("0712 345 677"))
    assert shop.last(customer.chat_id).text.startswith(says["amount"])
    await shop.send(customer.text("500"))
    summary = shop.last(customer.chat_id)
    assert summary.text.startswith(says["summary"]) and summary.button_labels == says["buttons"]
    await shop.send(customer.press(summary, "✅"))
    assert summary.text.startswith(says["check"]) and summary.button_labels == says["cancel_button"]
    order = await shop.only_order(customer.chat_id)
    shop.clock.advance(5)
    await shop.sweep()
    receipt = shop.last(customer.chat_id)
    assert receipt.text.startswith(f"{(await shop.order(order.id)).receipt_code}{says['receipt']}")
    assert says["time"] in receipt.text
    assert summary.text.startswith(says["check"])  # the receipt alone says paid
    await shop.send(customer.text(f"/status {order.id}"))
    assert says["status"] in shop.last(customer.chat_id).text
    paid = await shop.order(order.id)  # the merchant chat: English, the receipt code first
    assert shop.last(MERCHANT_CHAT).text.startswith(f"{paid.receipt_code} · PAID · KES 500 · M-Pesa")


OUTCOMES = [
    (
        "0712345671",
        OrderStatus.CANCELLED,
        "✖️ The payment was cancelled on the phone. Nothing was charged.",
        "✖️ Malipo yameghairiwa kwenye simu. Hakuna pesa iliyokatwa.",
    ),
    (
        "0712345672",
        OrderStatus.FAILED,
        "❌ The payment did not go through: a wrong PIN was entered",
        "❌ Malipo hayakufanikiwa: PIN si sahihi",
    ),
    (
        "0712345673",
        OrderStatus.FAILED,
        "❌ The payment did not go through: the balance was not enough",
        "❌ Malipo hayakufanikiwa: salio halitoshi",
    ),
    (
        "0712345674",
        OrderStatus.EXPIRED,
        "⌛ The prompt timed out on the phone. If you paid anyway, I'll tell you here.",
        "⌛ Muda wa ujumbe wa PIN umeisha kwenye simu. Ukilipa hata hivyo, nitakujulisha hapa.",
    ),
    (
        "0712345675",
        OrderStatus.UNDERPAID,
        "That is KES 50 less than the KES 500 asked: KES 50 is still to pay.",
        "Umelipa KES 50 chini ya kiasi kilichoombwa cha KES 500: bado unadaiwa KES 50.",
    ),
    (
        "0712345676",
        OrderStatus.OVERPAID,
        "That is KES 50 more than the KES 500 asked: the shop will settle the extra KES 50 with you.",
        "Umelipa KES 50 zaidi ya kiasi kilichoombwa cha KES 500: duka litakurudishia KES 50 hizo.",
    ),
]
RETRY = {"en": ["🔁 Send the prompt again"], "sw": ["🔁 Tuma ujumbe wa PIN tena"]}


@pytest.mark.parametrize("lang", ["en", "sw"])
@pytest.mark.parametrize(("phone", "status", "english", "kiswahili"), OUTCOMES)
async def test_each_outcome_in_the_payers_language(
    shop: Shop, lang: str, phone: str, status: OrderStatus, english: str, kiswahili: str
) -> None:
    customer = shop.customer(language_code=lang)
    order = await shop.pay(customer, phone=phone)
    shop.clock.advance(61)
    await shop.sweep()
    assert (await shop.order(order.id)).status is status
    told = shop.last(customer.chat_id)
    assert (english if lang == "en" else kiswahili) in told.text
    rest = {"en": ["💳 Pay the rest"], "sw": ["💳 Lipa kiasi kilichobaki"]}[lang]
    paybill = {"en": ["📋 No prompt on your phone?"], "sw": ["📋 Ujumbe wa PIN haujafika?"]}[lang]
    retry = paybill if phone.endswith("4") else RETRY[lang]  # timed out on the phone: still watched, no 2nd prompt
    assert told.button_labels == (retry if status.can_retry else rest if status is OrderStatus.UNDERPAID else [])


@pytest.mark.parametrize("lang", ["en", "sw"])
async def test_cancel_this_payment_in_the_payers_language(shop: Shop, lang: str) -> None:
    customer = shop.customer(language_code=lang)
    order = await shop.pay(customer, phone="0712345670")
    prompt = shop.last(customer.chat_id)
    await shop.send(customer.press(prompt, "✖️"))
    assert shop.telegram.callback_answers[-1].get("text") == {"en": "Cancelled.", "sw": "Imeghairiwa."}[lang]
    said = {
        "en": f"✖️ You cancelled order {readable(order.id)} (KES 500). If the phone still shows the prompt, ignore it",
        "sw": f"✖️ Umeghairi oda {readable(order.id)} (KES 500). Kama simu bado inaonyesha ujumbe wa PIN, upuuze",
    }
    assert shop.last(customer.chat_id).text.startswith(said[lang])
    assert prompt.text.endswith({"en": "✖️ cancelled in the chat.", "sw": "✖️ imeghairiwa kwenye gumzo."}[lang])


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("en", "A payment prompt for 07** ***670 is still waiting for an answer"),
        ("sw", "Ujumbe wa PIN uliotumwa kwa 07** ***670 bado unasubiri jibu"),
    ],
)
async def test_a_refusal_is_said_in_the_payers_language(shop: Shop, lang: str, words: str) -> None:
    await shop.pay(shop.customer(user_id=777), phone="0712345670")
    customer = shop.customer(language_code=lang)
    await shop.type(customer, "/pay", "0712345670")
    assert shop.last(customer.chat_id).text.startswith(words)


# -- choosing the language ----------------------------------------------------------------------


async def test_a_kiswahili_telegram_is_answered_in_kiswahili_from_the_first_message(shop: Shop) -> None:
    customer = shop.customer(language_code="sw-KE")
    await shop.send(customer.text("/start"))
    assert shop.last(customer.chat_id).text.startswith(
        "Ninapokea malipo ya M-Pesa na Airtel Money kwa niaba ya Mama Mboga"
    )
    english = shop.customer(user_id=502, language_code="fr")  # anything else: English
    await shop.send(english.text("/start"))
    assert shop.last(english.chat_id).text.startswith("I take M-Pesa and Airtel Money payments for Mama Mboga")


@pytest.mark.parametrize("command", ["/lugha", "/language"])
async def test_lugha_and_language_switch_with_two_buttons_and_survive_a_restart(
    settings: Settings, telegram: FakeBotApi, sandbox: IpaySandbox, clock: ManualClock, command: str
) -> None:
    shop = await start_shop(settings, telegram, sandbox, clock)
    customer = shop.customer(language_code="en")
    await shop.send(customer.text(command))
    choice = shop.last(customer.chat_id)
    assert choice.button_labels == ["🇬🇧 English", "🇰🇪 Kiswahili"]
    await shop.send(customer.press(choice, "Kiswahili"))
    assert choice.text == "Nitazungumza nawe kwa Kiswahili. Tuma /language kubadilisha lugha."
    await shop.send(customer.text("/help"))
    assert shop.last(customer.chat_id).text.startswith("Ninapokea malipo")
    await stop_shop(shop)

    shop = await start_shop(settings, telegram, sandbox, clock)  # a restart: the choice is in the store
    try:
        await shop.send(customer.text("/cancel"))  # Telegram still says "en": the choice wins
        assert shop.last(customer.chat_id).text == "Hakuna cha kughairi. Tuma /pay kufanya malipo."
        await shop.send(customer.text("/language"))
        await shop.send(customer.press(shop.last(customer.chat_id), "English"))
        assert shop.last(customer.chat_id).text == "I'll speak English with you. Send /lugha to change."
    finally:
        await stop_shop(shop)


async def test_switching_language_mid_payment_gives_the_receipt_in_the_new_language(shop: Shop) -> None:
    customer = shop.customer(language_code="en")
    order = await shop.pay(customer, phone="0712345670")  # waits for the phone's holder
    prompt = shop.last(customer.chat_id)
    assert prompt.text.startswith("📲 Check your phone")
    await shop.send(customer.text("/lugha"))
    await shop.send(customer.press(shop.last(customer.chat_id), "Kiswahili"))
    assert shop.sandbox.answer("254712345670", approve=True)
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID
    assert " Imethibitishwa. KES 500 zimelipwa kwa Mama Mboga kutoka 0712 345 670 (" in shop.last(customer.chat_id).text
    assert prompt.text.startswith("📲 Check your phone")  # the receipt alone says paid


async def test_the_command_menu_is_registered_in_english_and_kiswahili(shop: Shop) -> None:
    english = shop.telegram.localized_commands[(None, None)]
    kiswahili = shop.telegram.localized_commands[(None, "sw")]
    assert [c["command"] for c in english] == [c["command"] for c in kiswahili]
    assert {"language", "lugha"} <= {c["command"] for c in english}
    assert english[0] == {"command": "pay", "description": "Pay with M-Pesa or Airtel Money"}
    assert kiswahili[0] == {"command": "pay", "description": "Lipa na M-Pesa au Airtel Money"}


async def test_admin_menus_in_both_languages(settings, telegram, sandbox, clock) -> None:  # type: ignore[no-untyped-def]
    admin = 9001
    telegram.chats.setdefault(admin, [])
    shop = await start_shop(with_settings(settings, admin_ids=frozenset({admin})), telegram, sandbox, clock)
    try:
        english = {c["command"]: c["description"] for c in telegram.localized_commands[(admin, None)]}
        kiswahili = {c["command"]: c["description"] for c in telegram.localized_commands[(admin, "sw")]}
        assert english["summary"] == "Totals: /summary [today|week|month|YYYY-MM-DD]"
        assert kiswahili["summary"] == "Jumla: /summary [leo|wiki|mwezi|YYYY-MM-DD]"
    finally:
        await stop_shop(shop)


# -- the shop owner's language ------------------------------------------------------------------


async def test_merchant_language_sets_the_merchant_chats_lines(settings, telegram, sandbox, clock) -> None:  # type: ignore[no-untyped-def]
    shop = await start_shop(with_settings(settings, merchant_language="sw"), telegram, sandbox, clock)
    try:
        customer = shop.customer(language_code="en")
        order = await shop.pay(customer, phone="0712345672")  # a wrong PIN
        shop.clock.advance(5)
        await shop.sweep()
        assert shop.last(customer.chat_id).text.startswith("❌ The payment did not go through: a wrong PIN was entered")
        line = shop.last(MERCHANT_CHAT).text
        assert (
            line == f"HAIKUFANIKIWA · KES 500 · M-Pesa · 07** ***672 · (PIN si sahihi) · oda {readable(order.id)} · "
            f"imeombwa na Wanjiru ({customer.user_id})"
        )
    finally:
        await stop_shop(shop)


async def test_an_admins_report_is_in_the_admins_language(settings, telegram, sandbox, clock) -> None:  # type: ignore[no-untyped-def]
    admin = 9001
    shop = await start_shop(with_settings(settings, admin_ids=frozenset({admin})), telegram, sandbox, clock)
    try:
        owner = shop.customer(user_id=admin, language_code="sw")
        await shop.send(owner.text("/summary"))
        assert shop.last(admin).text == "Jumatatu 24 Novemba: hakuna oda."
        await shop.send(owner.text("/export"))
        assert shop.last(admin).text == "Hakuna oda siku ya Jumatatu 24 Novemba: hakuna faili la kutuma."
    finally:
        await stop_shop(shop)


# -- typed answers in either language -------------------------------------------------------------


@pytest.mark.parametrize("word", ["yes", "ok", "ndio", "Ndiyo", "sawa"])
async def test_yes_typed_at_the_summary_confirms(shop: Shop, word: str) -> None:
    customer = shop.customer()
    await shop.start_payment(customer, phone="0712345677")
    await shop.send(customer.text(word))
    order = await shop.only_order(customer.chat_id)
    assert shop.last(customer.chat_id).text.startswith("📲 Check your phone and enter your M-Pesa PIN to pay KES 500.")
    shop.clock.advance(5)
    await shop.sweep()
    assert (await shop.order(order.id)).status is OrderStatus.PAID


@pytest.mark.parametrize("word", ["no", "cancel", "hapana", "sitisha", "Hapana."])
@pytest.mark.parametrize("step", ["phone", "amount", "summary"])
async def test_no_typed_at_any_step_cancels(shop: Shop, word: str, step: str) -> None:
    customer = shop.customer(language_code="sw")
    await shop.type(
        customer, *{"phone": ["/pay"], "amount": ["/pay", "0712345677"], "summary": ["/pay", "0712345677", "500"]}[step]
    )
    await shop.send(customer.text(word))
    assert shop.last(customer.chat_id).text == "Imeghairiwa. Hakuna pesa iliyokatwa. Tuma /pay kuanza tena."
    assert await shop.services.store.latest_chat_orders(customer.chat_id, 5) == []


async def test_anything_else_typed_at_the_summary_shows_it_again_with_its_buttons(shop: Shop) -> None:
    customer = shop.customer()
    first = await shop.start_payment(customer)
    await shop.send(customer.text("maybe later"))
    again = shop.last(customer.chat_id)
    assert again is not first
    assert again.text.startswith(
        "Tap Confirm or Cancel below, or answer yes or no.\n\nPlease check:\nTo: Mama Mboga\nAmount: KES 500"
    )
    assert again.button_labels == ["✅ Confirm", "🔁 Use Airtel Money instead", "✖️ Cancel"]
    await shop.send(customer.press(again, "Confirm"))
    assert (await shop.only_order(customer.chat_id)).amount == 500
