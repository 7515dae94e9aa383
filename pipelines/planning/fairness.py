"""Bias and stereotype review of a campaign's prompts and texts, against the charter's terms.

A banned term keeps a job from being rendered at all; a sensitive one lets it render only where
the campaign says so (``render_flagged``), marked for a person's review. When a prompt shows
people (one of the charter's people terms), the charter's diversity slots add one value each,
drawn from the job's seed, so age, gender or ability vary across a campaign's pictures instead
of repeating the model's default person.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from visuels._internal.hashing import sha256_json
from visuels._internal.i18n import Words, read_back
from visuels.inputs.charter import Fairness

Severity = Literal["banned", "sensitive"]
SEVERITIES = ("banned", "sensitive")  # said in the reader's language too
# A flag as the record keeps it with its job, in English; read back to be said in another language.
TERM_IN = "{severity} term '{term}' in {field}"
TERM_IN_WHERE = "{found} ({where})"
COMMUNE_PART = "commune {name}"
AUDIENCE_PART = "audience {name}"
LANGUAGE_PART = "language {name}"
FLAG_PATTERNS = (TERM_IN, TERM_IN_WHERE, COMMUNE_PART, AUDIENCE_PART, LANGUAGE_PART)


@lru_cache(maxsize=4096)  # a commune's prompt and the campaign's texts recur in every format
def normalise(text: str) -> str:
    """Lower case, no accents, straight apostrophes: "Élève" and "eleve" match."""
    decomposed = unicodedata.normalize("NFKD", text.replace("’", "'"))
    return "".join(character for character in decomposed if not unicodedata.combining(character)).casefold()


def find_terms(text: str, terms: list[str]) -> list[str]:
    """The terms that occur in ``text`` as whole words (a term may be several words)."""
    return list(_terms_in(text, tuple(terms)))


@lru_cache(maxsize=4096)  # a commune's prompt recurs in each language, its texts in each format
def _terms_in(text: str, terms: tuple[str, ...]) -> tuple[str, ...]:
    plain = normalise(text)
    # A substring test first: most texts hold no term, and it costs a tenth of a pattern's search.
    return tuple(term for term, needle, pattern in _patterns(terms) if needle in plain and pattern.search(plain))


@lru_cache(maxsize=64)
def _patterns(terms: tuple[str, ...]) -> tuple[tuple[str, str, re.Pattern[str]], ...]:
    """Each term, as found in a normalised text and as a whole-word pattern, compiled once: a
    campaign of 35,000 communes scans its jobs' texts against the same charter terms 100,000 times."""
    needles = [normalise(term.strip()) for term in terms]
    return tuple(
        (term, needle, re.compile(rf"(?<!\w){re.escape(needle)}(?!\w)"))
        for term, needle in zip(terms, needles, strict=True)
    )


@dataclass(frozen=True)
class Finding:
    """A term found in a template, or in what a template gave for one commune and audience."""

    severity: Severity
    term: str
    field: str  # the campaign field of a template, or prompt / headline / call_to_action of a job
    commune: str | None = None
    audience: str | None = None
    language: str | None = None

    def message(self) -> str:
        """In English, as the record keeps it with the job (``said`` gives it in another language)."""
        parts = ((COMMUNE_PART, self.commune), (AUDIENCE_PART, self.audience), (LANGUAGE_PART, self.language))
        where = ", ".join(part.format(name=name) for part, name in parts if name)
        found = TERM_IN.format(severity=self.severity, term=self.term, field=self.field)
        return TERM_IN_WHERE.format(found=found, where=where) if where else found


def said(flag: str, words: Words) -> str:
    """A flag as the record keeps it (``Finding.message``) in ``words``' language; another text as it is."""
    found = read_back(flag, (TERM_IN_WHERE, TERM_IN))
    if found is None:
        return flag
    pattern, values = found
    if pattern == TERM_IN:
        return words(TERM_IN, **(values | {"severity": words(values["severity"])}))
    places = []
    for part in values["where"].split(", "):
        place = read_back(part, (COMMUNE_PART, AUDIENCE_PART, LANGUAGE_PART))
        if place is None:
            return flag
        places.append(words(place[0], **place[1]))
    return words(TERM_IN_WHERE, found=said(values["found"], words), where=", ".join(places))


def scan(
    texts: dict[str, str],
    fairness: Fairness,
    commune: str | None = None,
    audience: str | None = None,
    language: str | None = None,
) -> list[Finding]:
    """The banned, then sensitive terms in each of ``texts`` (field -> text)."""
    findings = []
    for field, text in texts.items():
        for severity, terms in (("banned", fairness.banned_terms), ("sensitive", fairness.sensitive_terms)):
            for term in find_terms(text, terms):
                findings.append(Finding(severity, term, field, commune, audience, language))  # type: ignore[arg-type]
    return findings


def shows_people(prompt: str, fairness: Fairness) -> bool:
    return bool(find_terms(prompt, fairness.people_terms))


def diversity_words(fairness: Fairness, seed: int) -> list[str]:
    """One value per diversity slot, drawn from the seed: each slot varies on its own across seeds.

    An empty value leaves the slot unsaid: ``["", "", "a wheelchair user among them"]`` names it
    in about a third of the pictures."""
    chosen = []
    for slot, values in fairness.diversity.items():
        value = values[int(sha256_json([seed, slot])[:8], 16) % len(values)]
        if value:  # an empty value: nothing said about this slot for this seed
            chosen.append(value)
    return chosen
