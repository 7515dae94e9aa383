"""Safe ASCII path components from names with accents, apostrophes and hyphens."""

from __future__ import annotations

import hashlib
import re
import unicodedata

# Letters that NFKD does not decompose into ASCII, and typographic punctuation that separates
# words as its ASCII form does ("Sables-d’Olonne" is "Sables-d'Olonne").
_LIGATURES = str.maketrans(
    {"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss", "ø": "o", "Ø": "O"}
    | {"’": "'", "‘": "'", "ʼ": "'", "‐": "-", "‑": "-", "–": "-", "—": "-"}
)
# Names Windows refuses as file or folder names, whatever the extension.
_RESERVED = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}
MAX_LENGTH = 80


def slugify(text: str) -> str:
    """Lower-case ASCII letters, digits and single hyphens; never empty, never a reserved name.

    >>> slugify("Castelnau-d'Estrétefonds")
    'castelnau-d-estretefonds'
    """
    ascii_text = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    ascii_text = ascii_text.encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    slug = slug[:MAX_LENGTH].rstrip("-")
    if not slug:  # nothing ASCII: names written otherwise ("🌞", "日本") keep folders of their own
        return "unnamed" + (f"-{hashlib.sha256(text.encode()).hexdigest()[:8]}" if text.strip(" .-/") else "")
    if slug in _RESERVED:
        return f"{slug}-x"
    return slug


def name_key(text: str) -> str:
    """A name as people write it, as the project's names are spelt: lower case, an underscore for
    each run of spaces or dashes ("Web-Banner", "web banner": web_banner)."""
    return re.sub(r"[\s-]+", "_", text.strip().lower())


def is_a_name(text: str) -> bool:
    """Whether ``text`` is written as the project's own names (audiences, template sets) are: lower-case
    letters without accents, digits, - and _, starting with a letter or a digit."""
    return re.fullmatch(r"[a-z0-9][a-z0-9_-]*", text) is not None
