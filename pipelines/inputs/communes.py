"""Communes data: a CSV of real communes with INSEE code, name, department and tags.

Columns: ``insee,name,department,landscapes,landmarks``, and optionally ``photos``;
``landscapes`` and ``landmarks`` hold several values separated by ``;``. ``photos`` names a
folder of the commune's photos, relative to the CSV (``visuels.inputs.photos``); empty: none.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from visuels._internal.strict import Filled
from visuels.errors import CommunesError, InvalidValueError, Text, plain_message
from visuels.inputs.file_names import as_on_disk, usable_path
from visuels.inputs.photos import CommunePhoto, load_photo_folder
from visuels.inputs.referential import Finding, load_referential
from visuels.inputs.slugs import slugify
from visuels.inputs.text_files import decoded_text, not_utf8
from visuels.inputs.yamlfiles import field_path

COLUMNS = ("insee", "name", "department", "landscapes", "landmarks")
OPTIONAL_COLUMNS = ("photos",)
INSEE_WIDTH, DEPARTMENT_WIDTH, SIREN_WIDTH = 5, 2, 9  # a region code is two digits too; SIREN: an EPCI
_LINE_BREAK = re.compile(r"[\r\n]")
DELIMITERS = (",", ";", "\t")  # the first wins a tie: a one-column header is comma-separated


def with_leading_zero(value: object, width: int) -> object:
    """A code as written, or with the leading zero a spreadsheet (or a YAML number) drops: a
    department 1 is 01, a commune 1004 is 01004. Numbers become the codes they stand for, and
    Corsica's 2a004 is 2A004."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(text, str) and re.fullmatch(r"2[ab]\d*", text):
        return text.upper()
    if isinstance(text, str) and text.isascii() and text.isdigit() and len(text) == width - 1:
        return "0" + text
    return text


class Landscape(StrEnum):
    sea = "sea"
    mountain = "mountain"
    vineyard = "vineyard"
    river = "river"
    city = "city"
    village = "village"
    countryside = "countryside"
    forest = "forest"
    lake = "lake"
    heritage = "heritage"


class Commune(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    insee: str = Field(description="INSEE code (COG).")
    name: Filled = Field(description="Official name, with its accents and hyphens.")
    department: str

    @field_validator("insee", mode="before")
    @classmethod
    def _insee_leading_zero(cls, value: object) -> object:
        return with_leading_zero(value, INSEE_WIDTH)

    @field_validator("department", mode="before")
    @classmethod
    def _department_leading_zero(cls, value: object) -> object:
        return with_leading_zero(value, DEPARTMENT_WIDTH)

    @field_validator("insee")
    @classmethod
    def _an_insee_code(cls, value: str) -> str:
        if not re.fullmatch(r"\d{5}|2[AB]\d{3}", value):
            raise InvalidValueError("'{value}' is not an INSEE code (5 digits, or 2A/2B and 3 digits)", value=value)
        return value

    @field_validator("department")
    @classmethod
    def _a_department(cls, value: str) -> str:
        if not re.fullmatch(r"\d{2,3}|2[AB]", value):
            raise InvalidValueError("'{value}' is not a department number (2 or 3 digits, or 2A/2B)", value=value)
        return value

    # Required in a communes file; a commune taken from the COG alone has none (prompts and alt
    # texts then say less).
    landscapes: list[Landscape] = Field(default_factory=list, min_length=1)
    landmarks: list[str] = Field(default_factory=list, min_length=1, max_length=2)
    photos: tuple[CommunePhoto, ...] = ()
    line: int | None = Field(default=None, exclude=True, description="Its line in the communes file, for findings.")

    @field_validator("landscapes", "landmarks", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(";") if part.strip()]
        return value

    @field_validator("name")
    @classmethod
    def _a_plain_name(cls, value: str) -> str:
        if value != value.strip():
            raise InvalidValueError("name has leading or trailing spaces")
        # No official name holds these; a name that does is a path or garbage, never a commune.
        if any(character in value for character in "/\\") or any(ord(character) < 32 for character in value):
            raise InvalidValueError(
                "{value!r} is not a commune name (slash, backslash or control character)", value=value
            )
        return value

    @model_validator(mode="after")
    def _department_matches_code(self) -> Commune:
        if not self.insee.startswith(self.department):
            raise InvalidValueError(
                "INSEE code {insee} is not in department {department}", insee=self.insee, department=self.department
            )
        return self

    @property
    def slug(self) -> str:
        return slugify(self.name)


def _delimiter(text: str) -> str:
    """The separator of the header line: a comma, or the semicolon a French spreadsheet writes
    (Excel's "CSV (point-virgule)"), or a tab; column names hold none of them."""
    header = text.split("\n", 1)[0]
    return max(DELIMITERS, key=header.count)


def _first_filled_line(text: str, after: int) -> int:
    """The number of the first line after line ``after`` that is not empty (as the CSV reader
    counts them, and skips empty ones)."""
    lines = io.StringIO(text, newline="").readlines()
    line = after + 1
    while line <= len(lines) and not lines[line - 1].rstrip("\r\n"):
        line += 1
    return line


def _rows(csv_path: Path) -> tuple[list[tuple[int, dict[str, str]]], dict[str, int]]:
    """The file's rows, each with the line it ends on (blank lines are skipped), by lower-case
    column name; and its unnamed columns (a spreadsheet's trailing separators), numbered, which
    must stay empty."""
    try:
        text = decoded_text(csv_path.read_bytes())
        if re.match(r"sep=.\r?\n", text):  # what some export for Excel writes above the header
            raise CommunesError(
                csv_path,
                "line 1",
                "a 'sep=' line is not part of a communes file: remove it (the header says the separator)",
            )
        # A space after a separator (`34301, Sète, 34`, as people type a CSV) is not part of the value.
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(text), skipinitialspace=True)
        header = [name.strip().lower() for name in reader.fieldnames or []]  # `INSEE,Name`: the same columns
        unnamed = {f"({index + 1})": index + 1 for index, name in enumerate(header) if not name}
        header = [name or f"({index + 1})" for index, name in enumerate(header)]
        reader.fieldnames = header
        missing = [column for column in COLUMNS if column not in header]
        if len(missing) == 1:
            raise CommunesError(csv_path, "header", "missing column: {value}", value=missing[0])
        if missing:
            raise CommunesError(csv_path, "header", "missing columns: {value}", value=", ".join(missing))
        extra = [column for column in header if column not in COLUMNS + OPTIONAL_COLUMNS + tuple(unnamed)]
        if len(extra) == 1:
            raise CommunesError(csv_path, "header", "unknown column: {value}", value=extra[0])
        if extra:
            raise CommunesError(csv_path, "header", "unknown columns: {value}", value=", ".join(extra))
        rows, ended_on = [], reader.line_num
        for row in reader:
            if any(isinstance(value, str) and _LINE_BREAK.search(value) for value in row.values()):
                # No column holds a line break: a quote left open ran on through the lines below.
                line = Text("line {line}", line=_first_filled_line(text, ended_on))
                raise CommunesError(csv_path, line, 'a quote (") opens a value that runs past the end of its line')
            rows.append((reader.line_num, row))
            ended_on = reader.line_num
        return rows, unnamed
    except FileNotFoundError:
        raise CommunesError(csv_path, None, "file not found") from None
    except UnicodeDecodeError as exc:
        problem = not_utf8(exc)
        raise CommunesError(csv_path, None, "{problem} (a spreadsheet: “CSV UTF-8”)", problem=problem) from None
    except (OSError, csv.Error) as exc:
        raise CommunesError(csv_path, None, "cannot read CSV ({exc})", exc=str(exc)) from None


def _how_many(error: Mapping[str, Any]) -> Text | None:
    """A designer's words for a landscapes or landmarks cell with too few or too many values
    (pydantic's say "List should have at least 1 item after validation")."""
    column = error["loc"][0] if error["loc"] else None
    count = (error.get("ctx") or {}).get("actual_length")
    if error["type"] == "too_short" and column == "landscapes":
        return Text("none given: at least one landscape (sea, mountain, village…), several separated by ';'")
    if error["type"] == "too_short" and column == "landmarks":
        return Text(
            "none given: one or two landmarks the pictures can show (a lighthouse, a church…), separated by ';'"
        )
    if error["type"] == "too_long" and column == "landmarks":
        return Text("{count} given, two at most: keep the two the pictures should show", count=count)
    return None


def _commune(csv_path: Path, line: int, row: dict[str, str], unnamed: dict[str, int]) -> Commune | None:
    """The commune of one row, its photos read; None for a row a spreadsheet cleared but kept (`;;;;`)."""
    if None in row:
        raise CommunesError(csv_path, Text("line {line}", line=line), "more values than columns")
    if not any(value.strip() for value in row.values()):
        return None
    for column, number in unnamed.items():
        if row.pop(column).strip():
            raise CommunesError(
                csv_path, Text("line {line}", line=line), "column {number} holds a value but has no name", number=number
            )
    photo_folder = (row.pop("photos", None) or "").strip()
    try:
        commune = Commune.model_validate({**row, "line": line})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = (
            Text("line {line}, {field}", line=line, field=field_path(tuple(first["loc"][:1])))
            if first["loc"]
            else Text("line {line}", line=line)
        )
        raise CommunesError(csv_path, where, _how_many(first) or plain_message(first)) from None
    if photo_folder:
        photos_field = Text("line {line}, {field}", line=line, field="photos")
        try:
            usable_path(photo_folder)
        except InvalidValueError as exc:
            raise CommunesError(csv_path, photos_field, exc.text) from None
        photos = load_photo_folder(as_on_disk(csv_path.parent / photo_folder), csv_path, photos_field)
        commune = commune.model_copy(update={"photos": photos})
    return commune


def load_communes(path: str | Path, against_referential: bool = True) -> list[Commune]:
    """Load and validate a communes CSV; errors name the file, the row and the column.

    ``against_referential``: a row whose code names no current commune of the COG, or another
    name than its own, is an error (``visuels check`` lists them all itself)."""
    csv_path = Path(path)
    rows, unnamed = _rows(csv_path)
    communes: list[Commune] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        commune = _commune(csv_path, line, row, unnamed)
        if commune is None:
            continue
        if commune.insee in seen:
            raise CommunesError(
                csv_path,
                Text("line {line}, {field}", line=line, field="insee"),
                "duplicate code {insee} (line {seen})",
                insee=commune.insee,
                seen=seen[commune.insee],
            )
        seen[commune.insee] = line
        communes.append(commune)
    if not communes:
        raise CommunesError(csv_path, None, "no communes in file")
    # A code that names no current commune, or another name than the row's: never rendered.
    for finding in referential_findings(communes) if against_referential else ():
        if finding.blocking:
            raise CommunesError(
                csv_path, Text("line {line}, {field}", line=finding.line, field=finding.field), finding.message
            )
    return communes


def referential_findings(communes: list[Commune]) -> list[Finding]:
    """What the 2026 COG says against a communes file's rows (in file order: line 2 onwards)."""
    referential = load_referential()
    checked = (referential.check_row(c.line or line, c.insee, c.name) for line, c in enumerate(communes, start=2))
    return [finding for finding in checked if finding is not None]


def referential_communes(details: dict[str, Commune]) -> list[Commune]:
    """Every current commune of the COG, by code; where ``details`` (a communes file's rows, by
    code) has the commune, its row, with its landscapes, landmarks and photos."""
    communes = []
    for code, entry in load_referential().current.items():
        if code in details:
            communes.append(details[code])
        else:
            # The COG's own data, already checked: built without the CSV's validation (its
            # landscapes and landmarks, which the COG does not hold, are left empty).
            communes.append(
                Commune.model_construct(
                    insee=code, name=entry.name, department=entry.department, landscapes=[], landmarks=[], photos=()
                )
            )
    return communes


def commune_folders(communes: list[Commune]) -> dict[str, str]:
    """Folder name per INSEE code: the name's slug, plus the code where two names collide.

    Give it the whole communes file, never a selection: a commune's folder must not depend on
    which others are rendered with it (shards, ``--communes``).
    """
    counts: dict[str, int] = {}
    for commune in communes:
        counts[commune.slug] = counts.get(commune.slug, 0) + 1
    return {c.insee: c.slug if counts[c.slug] == 1 else f"{c.slug}-{c.insee.lower()}" for c in communes}
