"""An in-process Telegram Bot API, plugged into python-telegram-bot as its `BaseRequest`.

The real `Application`, handlers and job queue run unchanged; only the HTTP exchange with
api.telegram.org is replaced. It answers with the Bot API's real shapes and errors
(400 "message is not modified", 403 "bot was blocked by the user", 429 with retry_after, and,
when `group_limit_per_minute` is set, Telegram's 429 for a group sent too many messages a minute),
keeps every chat's messages as a user would see them (edits change the message in place),
and serves `getUpdates` from what simulated users type, so polling works too.
Tests and the console use `TelegramUser` to type, share a contact and press buttons.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from telegram.request import BaseRequest, RequestData

BOT_ID = 7_000_000_001
BOT_USERNAME = "pesabot"


@dataclass
class ChatMessage:
    """One message in a chat, as its members see it now."""

    message_id: int
    chat_id: int
    text: str
    from_bot: bool
    buttons: list[list[tuple[str, str]]] = field(default_factory=list)  # inline (label, data)
    reply_keyboard: list[list[dict[str, Any]]] = field(default_factory=list)
    document: dict[str, Any] | None = None
    edits: int = 0
    photo: bytes | None = None  # sendPhoto's image; `text` holds its caption
    keyboard: list[list[dict[str, Any]]] = field(default_factory=list)  # inline buttons as the Bot API has them
    via_bot: bool = False  # posted by a user through the bot's inline mode
    inline_message_id: str | None = None

    def button(self, label_part: str) -> dict[str, Any]:
        """An inline button as the Bot API describes it (url, callback_data, switch_inline_query...)."""
        for row in self.keyboard:
            for button in row:
                if label_part.lower() in button["text"].lower():
                    return button
        raise KeyError(f"no button like {label_part!r} on message {self.message_id}: {self.button_labels}")

    @property
    def button_labels(self) -> list[str]:
        return [label for row in self.buttons for label, _ in row]

    def button_data(self, label_part: str) -> str:
        for row in self.buttons:
            for label, data in row:
                if label_part.lower() in label.lower():
                    return data
        raise KeyError(f"no button like {label_part!r} on message {self.message_id}: {self.button_labels}")


@dataclass
class _Fault:
    method: str
    chat_id: int | None
    code: int
    description: str
    retry_after: int | None = None


class FakeBotApi(BaseRequest):
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.chats: dict[int, list[ChatMessage]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.callback_answers: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []  # the default menu
        self.scoped_commands: dict[int, list[dict[str, Any]]] = {}  # per chat (BotCommandScopeChat)
        # (chat id or None for the default scope, language_code or None):
        # the menu Telegram shows that chat in that language
        self.localized_commands: dict[tuple[int | None, str | None], list[dict[str, Any]]] = {}
        self.menu_buttons: dict[int, dict[str, Any]] = {}  # setChatMenuButton per chat
        self.default_menu_button: dict[str, Any] = {"type": "commands"}
        self.blocked_chats: set[int] = set()
        # Telegram lets a bot send about 20 messages a minute to one group; None: no limit emulated.
        self.group_limit_per_minute: int | None = None
        self._group_sends: dict[int, list[float]] = {}
        self.webhook: dict[str, Any] | None = None
        self.listeners: list[Callable[[str, ChatMessage], None]] = []
        self.answer_listeners: list[Callable[[dict[str, Any]], None]] = []  # button pop-ups (answerCallbackQuery)
        self._faults: list[_Fault] = []
        # Seconds a Bot API method takes to answer (a slow Telegram), by method name.
        self.slow: dict[str, float] = {}
        self._message_ids: dict[int, itertools.count[int]] = {}
        # Update ids go on rising across the bot's restarts, as Telegram's do (the bot drops an id
        # it has seen as a repeated delivery): a fresh emulator starts above any earlier one's.
        self._update_ids = itertools.count(time.time_ns() // 1000)
        self.inline_answers: dict[str, dict[str, Any]] = {}  # answerInlineQuery, by inline query id
        self._inline_messages: dict[str, ChatMessage] = {}
        self._inline_ids = itertools.count(1)
        self._updates: list[dict[str, Any]] = []
        self._update_ready = asyncio.Event()

    # -- BaseRequest --------------------------------------------------------------------

    @property
    def read_timeout(self) -> float | None:
        return 5.0

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        api_method = url.rsplit("/", 1)[-1]
        params = dict(request_data.parameters) if request_data else {}
        if request_data is not None and request_data.contains_files:
            params.update(self._files(request_data))
        self.calls.append((api_method, params))
        fault = self._take_fault(api_method, params)
        if fault is not None:
            return _error(fault.code, fault.description, fault.retry_after)
        handler = getattr(self, "_" + api_method, None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        if self.slow.get(api_method):
            await asyncio.sleep(self.slow[api_method])
        chat_id = _chat_id(params)
        if chat_id is not None and chat_id in self.blocked_chats and api_method.startswith("send"):
            return _error(403, "Forbidden: bot was blocked by the user")
        if chat_id is not None and api_method.startswith("send"):
            wait = self._group_wait(chat_id)
            if wait is not None:
                return _error(429, f"Too Many Requests: retry after {wait}", wait)
        try:
            result = await handler(params)
        except _ApiError as exc:
            return _error(exc.code, exc.description)
        return 200, json.dumps({"ok": True, "result": result}).encode()

    @staticmethod
    def _files(request_data: RequestData) -> dict[str, Any]:
        files = {}
        for name, (filename, content, _mime) in request_data.multipart_data.items():
            files[name] = {"filename": filename, "content": content}
        return files

    # -- faults -------------------------------------------------------------------------

    def fail_next(
        self, method: str, code: int, description: str, *, chat_id: int | None = None, retry_after: int | None = None
    ) -> None:
        self._faults.append(_Fault(method, chat_id, code, description, retry_after))

    def rate_limit_next(self, method: str, retry_after: int = 1, *, chat_id: int | None = None) -> None:
        self.fail_next(
            method, 429, f"Too Many Requests: retry after {retry_after}", chat_id=chat_id, retry_after=retry_after
        )

    def clear_faults(self) -> None:
        """Forget the faults that no call has taken yet."""
        self._faults.clear()

    def _take_fault(self, method: str, params: dict[str, Any]) -> _Fault | None:
        for fault in self._faults:
            chat_matches = fault.chat_id is None or str(fault.chat_id) == str(params.get("chat_id"))
            if fault.method == method and chat_matches:
                self._faults.remove(fault)
                return fault
        return None

    def _group_wait(self, chat_id: int) -> int | None:
        """Whole seconds until this group may get another message, or None to send now (and count it)."""
        if self.group_limit_per_minute is None or chat_id >= 0:
            return None
        now = self._clock()
        recent = [t for t in self._group_sends.get(chat_id, []) if t > now - 60]
        self._group_sends[chat_id] = recent
        if len(recent) >= self.group_limit_per_minute:
            return max(1, math.ceil(recent[0] + 60 - now))
        recent.append(now)
        return None

    # -- chats ----------------------------------------------------------------------------

    def messages(self, chat_id: int) -> list[ChatMessage]:
        return self.chats.setdefault(chat_id, [])

    def bot_messages(self, chat_id: int) -> list[ChatMessage]:
        return [m for m in self.messages(chat_id) if m.from_bot]

    def message(self, chat_id: int, message_id: int) -> ChatMessage:
        for candidate in self.messages(chat_id):
            if candidate.message_id == message_id:
                return candidate
        raise _ApiError(400, "Bad Request: message to edit not found")

    def _new_message(self, chat_id: int, text: str, from_bot: bool) -> ChatMessage:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        message = ChatMessage(next(counter), chat_id, text, from_bot)
        self.messages(chat_id).append(message)
        return message

    def _notify(self, event: str, message: ChatMessage) -> None:
        for listener in self.listeners:
            listener(event, message)

    def _message_json(self, message: ChatMessage, chat: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message_id": message.message_id,
            "date": int(self._clock()),
            "chat": chat or _chat_json(message.chat_id),
            "from": _bot_user() if message.from_bot else None,
            "text": message.text,
        }
        if message.keyboard:
            body["reply_markup"] = {"inline_keyboard": message.keyboard}
        elif message.buttons:
            body["reply_markup"] = {
                "inline_keyboard": [[{"text": t, "callback_data": d} for t, d in row] for row in message.buttons]
            }
        if message.photo is not None:
            body.pop("text")
            body["photo"] = [
                {
                    "file_id": f"photo{message.message_id}",
                    "file_unique_id": f"p{message.message_id}",
                    "width": 512,
                    "height": 512,
                }
            ]
            if message.text:
                body["caption"] = message.text
        if message.document:
            body.pop("text")
            body["document"] = {
                "file_id": f"doc{message.message_id}",
                "file_unique_id": f"u{message.message_id}",
                "file_name": message.document["filename"],
            }
        return {k: v for k, v in body.items() if v is not None}

    @staticmethod
    def _markup(message: ChatMessage, params: dict[str, Any]) -> None:
        markup = params.get("reply_markup")
        if isinstance(markup, str):
            markup = json.loads(markup)
        message.buttons = []
        message.keyboard = []
        if not markup:
            return
        if "inline_keyboard" in markup:
            message.keyboard = markup["inline_keyboard"]
            message.buttons = [
                [(b["text"], b.get("callback_data", b.get("url", b.get("switch_inline_query", "")))) for b in row]
                for row in markup["inline_keyboard"]
            ]
        elif "keyboard" in markup:
            message.reply_keyboard = markup["keyboard"]

    # -- Bot API methods ----------------------------------------------------------------

    async def _getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **_bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": True,  # inline mode: request cards (@BotFather /setinline)
        }

    async def _setMyCommands(self, params: dict[str, Any]) -> bool:
        scope = params.get("scope")
        if isinstance(scope, str):
            scope = json.loads(scope)
        commands = list(params.get("commands", []))
        language = params.get("language_code") or None
        if scope and scope.get("type") == "chat":
            chat_id = int(scope["chat_id"])
            if chat_id not in self.chats:
                raise _ApiError(400, "Bad Request: chat not found")
            if language is None:
                self.scoped_commands[chat_id] = commands
            self.localized_commands[(chat_id, language)] = commands
        else:
            if language is None:
                self.commands = commands
            self.localized_commands[(None, language)] = commands
        return True

    async def _setChatMenuButton(self, params: dict[str, Any]) -> bool:
        """A chat's menu button (the Mini App's, or back to commands); without a chat, everyone's."""
        button = params.get("menu_button") or {"type": "default"}
        if isinstance(button, str):
            button = json.loads(button)
        chat_id = params.get("chat_id")
        if chat_id is None:
            self.default_menu_button = button
            return True
        if int(chat_id) not in self.chats:
            raise _ApiError(400, "Bad Request: chat not found")
        self.menu_buttons[int(chat_id)] = button
        return True

    async def _deleteWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = None
        return True

    async def _setWebhook(self, params: dict[str, Any]) -> bool:
        url = str(params.get("url", ""))
        if not url.startswith("https://"):
            raise _ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook = {"url": url, "secret_token": params.get("secret_token")}
        return True

    async def _sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        text = str(params.get("text", ""))
        if not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        message = self._new_message(chat_id, text, from_bot=True)
        self._markup(message, params)
        self._notify("message", message)
        return self._message_json(message)

    async def _sendDocument(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        message = self._new_message(chat_id, str(params.get("caption", "")), from_bot=True)
        document = params.get("document")
        message.document = document if isinstance(document, dict) else {"filename": "file", "content": b""}
        self._notify("document", message)
        return self._message_json(message)

    async def _sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        caption = str(params.get("caption", ""))
        if len(caption) > 1024:
            raise _ApiError(400, "Bad Request: message caption is too long")
        photo = params.get("photo")
        if not isinstance(photo, dict) or not photo.get("content"):
            raise _ApiError(400, "Bad Request: there is no photo in the request")
        message = self._new_message(chat_id, caption, from_bot=True)
        message.photo = photo["content"]
        self._markup(message, params)
        self._notify("photo", message)
        return self._message_json(message)

    def _target(self, params: dict[str, Any]) -> ChatMessage:
        """The message an edit is about: by chat and message id, or a posted inline message."""
        inline_id = params.get("inline_message_id")
        if inline_id is not None:
            if str(inline_id) not in self._inline_messages:
                raise _ApiError(400, "Bad Request: message_id_invalid")
            return self._inline_messages[str(inline_id)]
        return self.message(int(params["chat_id"]), int(params["message_id"]))

    async def _editMessageCaption(self, params: dict[str, Any]) -> dict[str, Any] | bool:
        message = self._target(params)
        if message.photo is None and message.document is None:
            raise _ApiError(400, "Bad Request: there is no caption in the message to edit")
        before = (message.text, message.buttons)
        message.text = str(params.get("caption", ""))
        self._markup(message, params)
        if (message.text, message.buttons) == before:
            raise _ApiError(400, "Bad Request: message is not modified")
        message.edits += 1
        self._notify("edit", message)
        return True if params.get("inline_message_id") is not None else self._message_json(message)

    async def _answerInlineQuery(self, params: dict[str, Any]) -> bool:
        results = params.get("results", [])
        if isinstance(results, str):
            results = json.loads(results)
        if len(results) > 50:
            raise _ApiError(400, "Bad Request: RESULTS_TOO_MUCH")
        ids = [str(r.get("id", "")) for r in results]
        if len(set(ids)) != len(ids) or any(not 1 <= len(i.encode()) <= 64 for i in ids):
            raise _ApiError(400, "Bad Request: RESULT_ID_INVALID")
        self.inline_answers[str(params["inline_query_id"])] = {**params, "results": results}
        return True

    async def _editMessageText(self, params: dict[str, Any]) -> dict[str, Any] | bool:
        message = self._target(params)
        before = (message.text, message.buttons)
        message.text = str(params["text"])
        self._markup(message, params)
        if (message.text, message.buttons) == before:
            raise _ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message",
            )
        message.edits += 1
        self._notify("edit", message)
        return True if params.get("inline_message_id") is not None else self._message_json(message)

    async def _editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self.message(int(params["chat_id"]), int(params["message_id"]))
        self._markup(message, params)
        message.edits += 1
        self._notify("edit", message)
        return self._message_json(message)

    async def _answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        self.callback_answers.append(params)
        for listener in self.answer_listeners:
            listener(params)
        return True

    async def _getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates:
            self._update_ready.clear()
            try:
                await asyncio.wait_for(self._update_ready.wait(), timeout=float(params.get("timeout") or 0) or 0.01)
            except TimeoutError:
                return []
        return list(self._updates[: int(params.get("limit") or 100)])

    # -- the users' side ----------------------------------------------------------------

    def queue_update(self, update: dict[str, Any]) -> None:
        """Hand an update to whoever polls getUpdates (the running Updater)."""
        self._updates.append(update)
        self._update_ready.set()

    def next_update_id(self) -> int:
        return next(self._update_ids)

    def post_inline_result(self, user: TelegramUser, query_id: str, result_id: str, chat_id: int) -> ChatMessage:
        """The user picks one of the bot's inline results: Telegram posts it into `chat_id` as the
        user's message "via @bot". Only a result with an inline keyboard gets an inline_message_id."""
        answer = self.inline_answers[query_id]
        result = next(r for r in answer["results"] if str(r["id"]) == result_id)
        content = result["input_message_content"]
        message = self._new_message(chat_id, content["message_text"], from_bot=False)
        message.via_bot = True
        self._markup(message, result)
        if message.keyboard:
            message.inline_message_id = f"inline{next(self._inline_ids)}"
            self._inline_messages[message.inline_message_id] = message
        return message


class _ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _chat_id(params: dict[str, Any]) -> int | None:
    """The request's chat, as a number: PTB sends an int, or a string of digits."""
    raw = params.get("chat_id")
    return int(raw) if isinstance(raw, (int, str)) else None


def _error(code: int, description: str, retry_after: int | None = None) -> tuple[int, bytes]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return code, json.dumps(body).encode()


def _bot_user() -> dict[str, Any]:
    return {"id": BOT_ID, "is_bot": True, "first_name": "PesaBot", "username": BOT_USERNAME}


def _chat_json(chat_id: int) -> dict[str, Any]:
    if chat_id < 0:
        return {"id": chat_id, "type": "supergroup", "title": "Shop group"}
    return {"id": chat_id, "type": "private", "first_name": "Customer"}


class TelegramUser:
    """A person in one chat: types text, shares a contact, presses inline buttons.

    Each action is recorded in the chat (so message ids advance as on Telegram) and
    returned as a Bot API update dict, ready for `Update.de_json` or `FakeBotApi.queue_update`.
    """

    def __init__(
        self,
        api: FakeBotApi,
        user_id: int,
        first_name: str = "Wanjiru",
        *,
        chat_id: int | None = None,
        language_code: str = "en",
    ) -> None:
        self.api = api
        self.user_id = user_id
        self.first_name = first_name
        self.chat_id = user_id if chat_id is None else chat_id
        self.language_code = language_code  # what the person's Telegram app is set to

    @property
    def _user(self) -> dict[str, Any]:
        return {"id": self.user_id, "is_bot": False, "first_name": self.first_name, "language_code": self.language_code}

    def _message_update(self, text: str, extra: dict[str, Any]) -> dict[str, Any]:
        message = self.api._new_message(self.chat_id, text, from_bot=False)
        body: dict[str, Any] = {
            "message_id": message.message_id,
            "date": int(self.api._clock()),
            "chat": _chat_json(self.chat_id)
            if self.chat_id < 0
            else {"id": self.chat_id, "type": "private", "first_name": self.first_name},
            "from": self._user,
            **extra,
        }
        return {"update_id": self.api.next_update_id(), "message": body}

    def text(self, text: str) -> dict[str, Any]:
        extra: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split()[0]
            extra["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self._message_update(text, extra)

    def contact(self, phone_number: str) -> dict[str, Any]:
        contact = {"phone_number": phone_number, "first_name": self.first_name, "user_id": self.user_id}
        return self._message_update("", {"contact": contact})

    def sticker(self) -> dict[str, Any]:
        sticker = {
            "file_id": "s1",
            "file_unique_id": "su1",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": "😀",
        }
        return self._message_update("", {"sticker": sticker})

    def inline_query(self, query: str, chat_type: str = "private") -> dict[str, Any]:
        """The user types `@bot <query>` in some chat: Telegram sends the bot an inline query."""
        inline = {
            "id": str(self.api.next_update_id() * 1000 + self.user_id % 1000),
            "from": self._user,
            "query": query,
            "offset": "",
            "chat_type": chat_type,
        }
        return {"update_id": self.api.next_update_id(), "inline_query": inline}

    def choose_inline_result(
        self, inline_query: dict[str, Any], result_id: str, chat_id: int
    ) -> tuple[dict[str, Any], ChatMessage]:
        """The user taps a result: it is posted into `chat_id`, and (with inline feedback on in
        @BotFather) the bot gets a `chosen_inline_result` naming it."""
        query = inline_query["inline_query"]
        posted = self.api.post_inline_result(self, query["id"], result_id, chat_id)
        chosen: dict[str, Any] = {"result_id": result_id, "from": self._user, "query": query["query"]}
        if posted.inline_message_id is not None:
            chosen["inline_message_id"] = posted.inline_message_id
        return {"update_id": self.api.next_update_id(), "chosen_inline_result": chosen}, posted

    def press(self, message: ChatMessage, label_part: str) -> dict[str, Any]:
        return self.press_data(message, message.button_data(label_part))

    def press_data(self, message: ChatMessage, data: str) -> dict[str, Any]:
        """Press a button by its callback data: also one the message no longer shows (a stale
        button, as a client that has not refreshed the message still offers it)."""
        query = {
            "id": str(self.api.next_update_id() * 1000 + self.user_id % 1000),
            "from": self._user,
            "chat_instance": str(self.chat_id),
            "data": data,
            "message": self.api._message_json(message),
        }
        return {"update_id": self.api.next_update_id(), "callback_query": query}
