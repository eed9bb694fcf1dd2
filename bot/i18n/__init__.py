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
import re
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ENGLISH, KISWAHILI = "en", "sw"
LANGUAGES = (ENGLISH, KISWAHILI)
LANGUAGE_NAMES = {ENGLISH: "English", KISWAHILI: "Kiswahili"}  # each in its own language
LOCALE_DIR = Path(__file__).parent.parent / "locale"
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


# -- the translator's command: python -m bot.i18n ---------------------------------------------

_PLACEHOLDER = re.compile(r"\{(\w*)\}")


def placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


def extract() -> Catalog:
    """Every msgid the code marks (`_`, `ngettext`, `N_`), as Babel extracts them."""
    template = Catalog(domain=DOMAIN)
    root = Path(__file__).parent.parent  # the whole bot/ package
    for filename, lineno, message, comments, context in extract_from_dir(
        root, method_map=[("**.py", "python")], keywords=DEFAULT_KEYWORDS, comment_tags=("TRANSLATORS:",)
    ):
        template.add(message, None, [(f"bot/{filename}", lineno)], auto_comments=comments, context=context)
    return template


def read_catalog(lang: str) -> Catalog:
    with po_path(lang).open("rb") as source:
        return read_po(source, locale=lang)


def _texts(value: object) -> tuple[str, ...]:
    """A message id or translation as its forms: one, or singular and plural."""
    if isinstance(value, (tuple, list)):
        return tuple(str(v) for v in value)
    return (str(value or ""),)


def problems(lang: str, template: Catalog | None = None) -> list[str]:
    """What is wrong with a translation: a msgid of the code it lacks (or leaves empty or fuzzy),
    a placeholder it drops or invents, an entry the code no longer uses."""
    template = template if template is not None else extract()
    catalog = read_catalog(lang)
    found = []
    for message in template:
        if not message.id:
            continue
        translated = catalog.get(message.id, context=message.context)
        ids = _texts(message.id)
        if translated is None or translated.fuzzy:
            found.append(f"{lang}: no translation for {ids[0]!r}")
            continue
        expected = set().union(*(placeholders(i) for i in ids))
        for string in _texts(translated.string):
            if not string:
                found.append(f"{lang}: empty translation for {ids[0]!r}")
            elif placeholders(string) != expected:
                found.append(
                    f"{lang}: placeholders {sorted(placeholders(string))} instead of {sorted(expected)} in {ids[0]!r}"
                )
    for message in catalog:
        if message.id and template.get(message.id, context=message.context) is None:
            found.append(f"{lang}: {message.id!r} is no longer in the code")
    return found


def update(lang: str) -> None:
    """Bring a `.po` file up to the code: new msgids added empty, translations kept."""
    template = extract()
    path = po_path(lang)
    if path.exists():
        catalog = read_catalog(lang)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(locale=lang, domain=DOMAIN)
    catalog.update(template, no_fuzzy_matching=True)
    with path.open("wb") as sink:
        write_po(sink, catalog, width=100, omit_header=False, ignore_obsolete=True)


def main() -> int:
    """Update every translation from the code, compile it, and say what is missing."""
    found = []
    for lang in LANGUAGES:
        if lang == ENGLISH:
            continue  # English is the source language: the msgids themselves
        update(lang)
        _compile(lang)
        found += problems(lang)
    for problem in found:
        print(problem)
    print("translations complete" if not found else f"{len(found)} problem(s): edit the .po file and run again")
    return 1 if found else 0
