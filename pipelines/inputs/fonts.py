"""The charter's font as text is set in it: the typographic apostrophe, and which characters it
has no glyph for.

A font without a glyph for a character draws its "missing glyph" (.notdef: an empty box) in its
place: a poster for Sète would read "S□te". FreeType, through Pillow, draws that same glyph for
every character the font's character map lacks, so a character whose drawing is the .notdef
glyph's (and that is not a space) is one the font cannot set. Texts are checked when the charter
and the campaign are loaded, before anything renders.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

PROBE_SIZE = 48  # pixels: large enough that two glyphs never draw the same
NOT_A_CHARACTER = "\U0010fffd"  # a private-use code point no font maps: drawn as .notdef


def typographic(text: str) -> str:
    """The typographic apostrophe (’) for the typewriter one: "l'été" is set "l’été"."""
    return text.replace("'", "’")


@lru_cache(maxsize=8)
def _typeface(font: Path) -> ImageFont.FreeTypeFont:
    return ImageFont.FreeTypeFont(str(font), PROBE_SIZE)


@lru_cache(maxsize=4096)
def _drawing(font: Path, character: str) -> tuple:
    mask, offset = _typeface(font).getmask2(character, mode="L")
    return mask.size, offset, bytes(mask)


def missing_glyphs(font: Path, text: str) -> str:
    """The characters of ``text`` (as it is drawn: :func:`typographic` for the commune and campaign
    texts) that ``font`` has no glyph for, each once, in the order they first appear; "" when it
    can set them all."""
    notdef = _drawing(font, NOT_A_CHARACTER)
    missing = ""
    for character in text:
        if character in missing or character.isspace() or not character.isprintable():
            continue
        if _drawing(font, character) == notdef:
            missing += character
    return missing
