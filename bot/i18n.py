"""Languages: gettext catalogues compiled from the `.po` sources at start-up, and the reader's
language for the code that is running now.

English is the source language (the msgids in the code); `bot/locale/<lang>/LC_MESSAGES/messages.po`
holds each translation. The `.po` files are compiled in memory with Babel when this module is
first imported (a few milliseconds), so there is no compiled file to forget or to go stale:
`pip install -r requirements.txt && python bot.py` still does all the set-up, and a corrected
translation takes effect at the next start. `python -m bot.i18n` re-extracts the msgids from the
code into the `.po` files (keeping every translation) and checks them: the one command a
translator runs.

Who reads a message is decided at the edge (a handler for the person whose update it is, the
notifier for an outbox entry's recipient) with `speaking(lang)`; `_` and `ngettext` then
translate into that language. A contextvar, so concurrent updates and deliveries never mix.
"""

from __future__ import annotations

import contextlib
import gettext
import io
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ENGLISH, KISWAHILI = "en", "sw"
LANGUAGES = (ENGLISH, KISWAHILI)
LANGUAGE_NAMES = {ENGLISH: "English", KISWAHILI: "Kiswahili"}  # each in its own language
LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "messages"

_current: ContextVar[str] = ContextVar("language", default=ENGLISH)


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def _compile(lang: str) -> gettext.NullTranslations:
    """The `.po` source as gettext translations, compiled in memory (fuzzy entries left out)."""
    path = po_path(lang)
    if not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=lang)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


_TRANSLATIONS: dict[str, gettext.NullTranslations] = {lang: _compile(lang) for lang in LANGUAGES if lang != ENGLISH}
_TRANSLATIONS[ENGLISH] = gettext.NullTranslations()


def language_for(language_code: str | None) -> str:
    """Telegram's `language_code` on first contact: `sw`, `sw-KE`... read Kiswahili; all else English."""
    return KISWAHILI if (language_code or "").lower().startswith("sw") else ENGLISH


def supported(lang: str | None) -> str:
    return lang if lang in LANGUAGES else ENGLISH


def current() -> str:
    return _current.get()


def set_language(lang: str) -> None:
    """For the rest of this update (a handler's task): everything said is in `lang`."""
    _current.set(supported(lang))


@contextlib.contextmanager
def speaking(lang: str) -> Iterator[None]:
    """Render in `lang` inside the block (a delivery, a job, the REST API's English)."""
    token = _current.set(supported(lang))
    try:
        yield
    finally:
        _current.reset(token)


def _(message: str) -> str:
    return _TRANSLATIONS[_current.get()].gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _TRANSLATIONS[_current.get()].ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a msgid for extraction where it is translated later (a button label kept in the outbox)."""
    return message
