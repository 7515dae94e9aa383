"""Every commune of France by its official name and code: the INSEE Official Geographic Code 2026,
shipped with the project (``referential_data/cog.json.gz``, derived by ``build_referential``
from Etalab's ``@etalab/decoupage-administratif``; Licence Ouverte / Open Licence 2.0).

It is read once per process, on first use (about 0.3 s), never from the network. Campaigns select
communes from it (region, departments, EPCI, names or codes, population), and every communes file
is checked against it: unknown codes, codes retired into a commune nouvelle, names that do not
match their code, homonyms given by name alone.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from visuels.errors import Text
from visuels.inputs.slugs import slugify

REFERENTIAL_FILE = Path(__file__).parent / "referential_data" / "cog.json.gz"

Kind = Literal["current", "delegated", "associated", "district"]
KIND_WORDS = {
    "delegated": Text("the delegated commune {name}"),
    "associated": Text("the associated commune {name}"),
    "district": Text("the district {name}"),
}


@dataclass(frozen=True)
class Entry:
    """One row of the COG: a current commune, or a delegated or associated commune, or a
    municipal district of Paris, Lyon or Marseille (``parent``: the commune it belongs to)."""

    code: str
    name: str
    kind: Kind
    department: str
    region: str
    epci: str  # the SIREN of its intercommunality (current communes), "" where none
    postcodes: tuple[str, ...]
    population: int | None
    parent: str  # for a delegated, associated commune or a district: the current commune's code
    former: tuple[str, ...]  # codes it took over when communes merged into it

    def describe(self) -> str:
        return f"{self.name} ({self.code}, department {self.department})"


@dataclass(frozen=True)
class Finding:
    """A row of a communes file that the referential contradicts. ``blocking``: a render refuses
    the file (the code names no current commune, or another name than the row's); otherwise the
    row only misspells the official name (accents, case)."""

    line: int
    field: str
    message: Text
    blocking: bool


class Referential:
    """The communes of the COG, indexed by code and by name."""

    def __init__(self, data: dict) -> None:
        self.source: str = data["source"]
        self.credit: str = data["credit"]
        self.regions: dict[str, str] = data["regions"]
        self.departments: dict[str, tuple[str, str]] = {code: tuple(v) for code, v in data["departments"].items()}
        self.epci: dict[str, str] = data["epci"]
        columns = data["columns"]
        self.current: dict[str, Entry] = {}
        self.others: dict[str, list[Entry]] = {}  # delegated, associated, districts: a code may name several
        for values in data["communes"]:
            row = dict(zip(columns, values, strict=True))
            entry = Entry(
                code=row["code"],
                name=row["name"],
                kind=row["kind"],
                department=row["department"],
                region=row["region"],
                epci=row["epci"],
                postcodes=tuple(code for code in row["postcodes"].split(";") if code),
                population=row["population"],
                parent=row["parent"],
                former=tuple(code for code in row["former"].split(";") if code),
            )
            if entry.kind == "current":
                self.current[entry.code] = entry
            else:
                self.others.setdefault(entry.code, []).append(entry)
        self.merged_into: dict[str, str] = {  # a retired code -> the commune nouvelle that took it over
            former: entry.code for entry in self.current.values() for former in entry.former if former != entry.code
        }
        self.by_name: dict[str, list[Entry]] = {}
        for entry in self.current.values():
            self.by_name.setdefault(slugify(entry.name), []).append(entry)

    def named(self, name: str) -> list[Entry]:
        """The current communes of this name (accents, case and hyphens aside): homonyms included."""
        return self.by_name.get(slugify(name), [])

    def retired(self, code: str) -> tuple[Text, Entry] | None:
        """For a code that names no current commune: what it was, and the commune it belongs to now."""
        others = self.others.get(code, [])
        for entry in others:
            if entry.parent in self.current and entry.parent != code:
                return Text(KIND_WORDS[entry.kind].pattern, name=entry.name), self.current[entry.parent]
        if code in self.merged_into:
            return Text("a former commune (code {code})", code=code), self.current[self.merged_into[code]]
        return None

    def check_row(self, line: int, code: str, name: str) -> Finding | None:
        """What the COG says against one row (``code``, ``name``) of a communes file, if anything."""
        entry = self.current.get(code)
        if entry is None:
            retired = self.retired(code)
            if retired is not None:
                what, now = retired
                return Finding(
                    line,
                    "insee",
                    Text(
                        "{code} is {what}, part of the commune {commune} in the 2026 COG: use {now}",
                        code=code,
                        what=what,
                        commune=now.describe(),
                        now=now.code,
                    ),
                    blocking=True,
                )
            named = self.named(name)
            hint = Text(" ({name} is {codes})", name=name, codes=_codes(named)) if named else ""
            message = Text("{code} is not a commune in the 2026 COG{hint}", code=code, hint=hint)
            return Finding(line, "insee", message, blocking=True)
        if slugify(entry.name) != slugify(name):
            named = [other for other in self.named(name) if other.code != code]
            hint = Text("; {name} is {codes}", name=name, codes=_codes(named)) if named else ""
            message = Text(
                "{code} is {official} in the 2026 COG, not {name}{hint}",
                code=code,
                official=entry.name,
                name=name,
                hint=hint,
            )
            # The picture would carry one name and the record another commune: never rendered.
            return Finding(line, "name", message, blocking=True)
        if entry.name != name:
            return Finding(line, "name", Text("the official spelling is {name!r}", name=entry.name), blocking=False)
        return None

    def select(
        self,
        regions: Sequence[str] = (),
        departments: Sequence[str] = (),
        epci: Sequence[str] = (),
        population_min: int | None = None,
        population_max: int | None = None,
    ) -> list[Entry]:
        """Current communes matching every criterion given, by code."""
        chosen = []
        for entry in self.current.values():
            if regions and entry.region not in regions:
                continue
            if departments and entry.department not in departments:
                continue
            if epci and entry.epci not in epci:
                continue
            population = entry.population or 0
            if population_min is not None and population < population_min:
                continue
            if population_max is not None and population > population_max:
                continue
            chosen.append(entry)
        return sorted(chosen, key=lambda entry: entry.code)


def _codes(entries: list[Entry]) -> str:
    return " or ".join(f"{entry.code} (department {entry.department})" for entry in entries)


@lru_cache(maxsize=1)
def load_referential() -> Referential:
    """The shipped referential, read on first use and kept for the process (it never changes)."""
    with gzip.open(REFERENTIAL_FILE, "rt", encoding="utf-8") as handle:
        return Referential(json.load(handle))
