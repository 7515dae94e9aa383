"""Text files people save from their own tools (spreadsheets, Notepad, TextEdit), decoded as saved."""

from __future__ import annotations

import codecs
import unicodedata

from visuels.errors import Text


def decoded_text(data: bytes) -> str:
    """A text file's text: UTF-8, with or without the byte order mark Windows tools write, or UTF-16
    with its mark (Excel's "Unicode text", Notepad's "Unicode"); ``UnicodeDecodeError`` otherwise.
    In composed form (``composed``)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return composed(data.decode("utf-16"))
    return composed(data.decode("utf-8-sig"))


def composed(text: str) -> str:
    """``text`` with each accented letter as one character (Unicode NFC): macOS and some exports
    write "è" as "e" and a combining accent, which looks the same, but compares, hashes and names
    files otherwise (a commune's key and folder would change with the tool that saved its name)."""
    return unicodedata.normalize("NFC", text)


def not_utf8(exc: UnicodeDecodeError) -> Text:
    """Where a file stops being UTF-8 text, and what to do."""
    return Text(
        "not UTF-8 text (byte 0x{byte:02x} at position {position}): save it as UTF-8",
        byte=exc.object[exc.start],
        position=exc.start,
    )
