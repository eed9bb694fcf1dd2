"""QR codes as PNG images: a request's link, and the shop's printable counter sign.

`segno` (pure Python) draws the code; Pillow lays out the counter sign's words around it.
Both are imported inside the functions that use them: a bot that never draws a code does not
carry them (about 17 MiB), and the first code pays their import once.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from bot.domain import Network
from bot.i18n import formats
from bot.requests import sentences

if TYPE_CHECKING:
    from PIL import ImageDraw, ImageFont

QR_SCALE = 10  # pixels per module: a phone reads it from a screen or a sheet of paper
QR_BORDER = 4  # the quiet zone the QR standard asks for, in modules
SIGN_WIDTH = 1240  # an A5 sheet's width at 150 dpi


def link_png(link: str) -> bytes:
    """The link as a QR code PNG (error correction M: a smudged print still reads)."""
    import segno

    buffer = io.BytesIO()
    segno.make(link, error="m").save(buffer, kind="png", scale=QR_SCALE, border=QR_BORDER)
    return buffer.getvalue()


def counter_sign_png(shop_name: str, link: str, networks: tuple[Network, ...] = tuple(Network)) -> bytes:
    """A printable sign: the shop's name, the code, and below it what the code is (two lines)."""
    from PIL import Image, ImageDraw, ImageFont

    code = Image.open(io.BytesIO(link_png(link))).convert("L")
    side = min(SIGN_WIDTH - 160, code.width * 2)
    code = code.resize((side, side), Image.Resampling.NEAREST)
    title, caption = ImageFont.load_default(size=72), ImageFont.load_default(size=44)
    height = 80 + 90 + 30 + side + 40 + 2 * 60 + 80
    sign = Image.new("L", (SIGN_WIDTH, height), 255)
    draw = ImageDraw.Draw(sign)
    draw.text((SIGN_WIDTH // 2, 80), _fit(draw, formats.shop_words(shop_name), title), fill=0, font=title, anchor="mt")
    sign.paste(code, ((SIGN_WIDTH - side) // 2, 80 + 90 + 30))
    below = 80 + 90 + 30 + side + 40
    for line in sentences.qr_caption_lines(networks):
        draw.text((SIGN_WIDTH // 2, below), _fit(draw, line, caption), fill=0, font=caption, anchor="mt")
        below += 60
    buffer = io.BytesIO()
    sign.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> str:
    """The shop's name, shortened with an ellipsis if it is wider than the sheet."""
    while len(text) > 1 and draw.textlength(text, font=font) > SIGN_WIDTH - 80:
        text = text[:-2] + "…"
    return text
