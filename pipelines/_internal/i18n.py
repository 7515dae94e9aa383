"""The words people read, in French or in English: the studio's pages, the command line's lines,
the Prefect artifacts.

English is written in the code; ``locales/fr.json`` gives each English text its French (a text
is a ``str.format`` pattern: its ``{names}`` are kept). ``tests/test_i18n.py`` fails when a text
the code or a template asks for has no French. The language is the user's (the ``language`` setting,
else the locale: ``LANG``...), the browser's for the studio, the campaign's for what a run shows.
The report has its own wordings (``visuels.review.report``). Texts the record keeps in English
(the charter checks' findings, the bias review's flags) are read back through the patterns that
made them (``read_back``) and said in the reader's language (``RecordedText``).
"""

from __future__ import annotations

import json
import numbers
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from visuels.config import settings
from visuels.errors import Text

LANGUAGES = ("en", "fr")
LOCALES = Path(__file__).parent / "locales"
# Which whole counts take the singular (CLDR's "one"): French says "0 image", English "0 pictures".
SINGULAR_COUNTS = {"en": (1,), "fr": (0, 1)}
# How each language writes numbers: its decimal mark, what parts thousands, what comes before "%".
NUMBER_MARKS = {"en": (".", ",", ""), "fr": (",", "\u202f", " ")}


class WrittenNumber:
    """A number formatted as ``lang`` writes it (``{ratio:.1f}``: "4.5" in English, "4,5" in French)."""

    def __init__(self, value: numbers.Real, lang: str) -> None:
        self.value, self.lang = value, lang

    def __format__(self, spec: str) -> str:
        decimal, thousands, before_percent = NUMBER_MARKS[self.lang]
        text = format(self.value, spec)
        swapped = {".": decimal, ",": thousands, "%": before_percent + "%"}
        return "".join(swapped.get(character, character) for character in text)

    def __str__(self) -> str:
        return format(self, "")

    def __repr__(self) -> str:  # ``{key!r}``: the number as the file holds it
        return repr(self.value)


class WrittenCount(WrittenNumber):
    """A count, its thousands parted as ``lang`` writes them: "106,704", "106 704" in French."""

    def __format__(self, spec: str) -> str:
        return super().__format__(spec or ",")


@dataclass(frozen=True)
class Words:
    """``words("Done in {seconds} s", seconds=3)``: the text in this language, filled in."""

    lang: str
    catalogue: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __call__(self, text: str, /, **values: object) -> str:
        translated = self.catalogue.get(text, text)
        if not values:
            return translated
        if self.lang != "en":
            values = {name: _written(value, self.lang) for name, value in values.items()}
        return translated.format(**values)

    def plural(self, one: str, many: str, count: int, **values: object) -> str:
        return self(one if self.singular(count) else many, count=WrittenCount(count, self.lang), **values)

    def singular(self, count: int) -> bool:
        """Whether ``count`` things are said in the singular in this language."""
        return count in SINGULAR_COUNTS[self.lang]


def _written(value: object, lang: str) -> object:
    """Numbers as ``lang`` writes them; anything else (texts, ids, versions) as it is."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):  # numpy's scalars too
        return WrittenNumber(value, lang)
    return value


def counted(count: int, noun: str) -> str:
    """``count`` and an English noun, plural where it needs one ("1 job", "3 jobs"): log lines,
    which are English for whoever operates the machines."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@lru_cache(maxsize=len(LANGUAGES))
def words(lang: str) -> Words:
    """The words of ``lang`` (a language other than French and English reads English); its
    catalogue read once a process: a region's report asks for it for each of 100,000 rows."""
    lang = language_of(lang)
    if lang == "en":
        return Words("en")
    catalogue = json.loads((LOCALES / f"{lang}.json").read_text(encoding="utf-8"))
    return Words(lang, catalogue)


def language_of(tag: str | None) -> str:
    """``fr``, ``fr_FR.UTF-8``, ``fr-CA``: ``fr``; anything else, or nothing: ``en``."""
    base = (tag or "").replace("-", "_").split("_")[0].split(".")[0].lower()
    return base if base in LANGUAGES else "en"


def user_language() -> str:
    """The command line's and the studio's language: the ``language`` setting, else the locale's
    (the variables gettext reads, in its order)."""
    return settings().language or locale_language()


def locale_language() -> str:
    """The locale's language (the variables gettext reads, in its order), else English."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        if os.environ.get(name):
            return language_of(os.environ[name].split(":")[0])
    return "en"


def browser_language(accept_language: str | None) -> str | None:
    """The first of French and English a browser's Accept-Language asks for, by its weights."""
    asked = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, weight = part.strip().partition(";q=")
        try:
            quality = float(weight) if weight else 1.0
        except ValueError:
            continue
        if tag.split("-")[0].lower() in LANGUAGES:
            asked.append((-quality, position, tag.split("-")[0].lower()))
    return min(asked)[2] if asked else None


def read_back(recorded: str, patterns: Iterable[str]) -> tuple[str, dict[str, str]] | None:
    """The first of ``patterns`` that made ``recorded`` (an English text kept in the record), with
    the values it was filled with; None if none did."""
    for pattern in patterns:
        match = _reader(pattern).fullmatch(recorded)
        if match:
            return pattern, match.groupdict()
    return None


@lru_cache(maxsize=64)
def _reader(pattern: str) -> re.Pattern[str]:
    """A pattern's text with its {values} as named groups."""
    parts = re.split(r"\{(\w+)\}", pattern)  # text, name, text, name, ..., text
    return re.compile(
        "".join(re.escape(part) if index % 2 == 0 else f"(?P<{part}>.+?)" for index, part in enumerate(parts))
    )


class RecordedText(Text):
    """A text the record keeps in English, said in the reader's language by ``translate``."""

    def __init__(self, recorded: str, translate: Callable[[str, Words], str]) -> None:
        super().__init__(recorded)
        self.translate = translate

    def said(self, words: Callable[..., str]) -> str:
        return self.translate(self.pattern, words) if isinstance(words, Words) else self.pattern  # English as kept


def joined(recorded: list[str], translate: Callable[[str, Words], str]) -> Text:
    """Recorded texts as one, joined with semicolons, each said in the reader's language."""
    text: Text = RecordedText(recorded[-1] if recorded else "", translate)
    for earlier in reversed(recorded[:-1]):
        text = Text("{first}; {rest}", first=RecordedText(earlier, translate), rest=text)
    return text
