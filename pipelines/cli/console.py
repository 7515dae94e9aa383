"""What every command shares: the consoles it prints to, and how it finds the database of record."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from rich.console import Console
from visuels._internal.i18n import locale_language, user_language, words
from visuels.config import settings
from visuels.errors import SettingsError, Text, VisuelsError, with_a_point
from visuels.inputs.yamlfiles import first_problem

if TYPE_CHECKING:
    from visuels.record.database import Database


# soft_wrap: a message stays on one line whatever the terminal width.
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


def say_refused(refused: VisuelsError) -> int:
    """Say why a command was refused or failed, in one line in the user's language; its exit code."""
    t = words(user_language())
    errors.print(t("error: {message}", message=refused.said(t)), highlight=False, markup=False)
    return refused.exit_code


def settings_refused() -> int:
    """0 when every ``VISUELS_*`` variable is valid; else the first that is not, said in one line
    (in the language setting's language, else the locale's), and its exit code."""
    try:
        settings()
    except SettingsError as exc:
        t = words(exc.language or locale_language())
        errors.print(t("error: {message}", message=exc.said(t)), highlight=False, markup=False)
        return exc.exit_code
    return 0


def not_empty(value: str) -> str:
    """An option's value that says something: a script's ``--database "$DB"`` whose variable is unset
    would otherwise mean the default."""
    if not value.strip():
        raise argparse.ArgumentTypeError("empty: give it a value")  # cli.parser translates
    return value


def a_path(value: str) -> Path:
    """A file or folder named on the command line; never an empty name, which ``Path`` reads as the
    working folder (``visuels verify "$FILE"`` with ``FILE`` unset checked every picture below it)."""
    return Path(not_empty(value))


def whole_number(value: str) -> int:
    """An integer, as ``int`` reads it, said in words where it is not (argparse says "invalid int value")."""
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a whole number") from None  # cli.parser translates


def positive(value: str) -> int:
    number = whole_number(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number}: must be at least 1")
    return number


def number(value: str) -> float:
    """A decimal number, as ``float`` reads it; ``0,5`` (as French writes it) says to write ``0.5``."""
    try:
        return float(value)
    except ValueError:
        if meant := with_a_point(value):
            raise argparse.ArgumentTypeError(f"'{value}': write the number with a point, {meant}") from None
        raise argparse.ArgumentTypeError(f"'{value}' is not a number") from None  # cli.parser translates


def port(value: str) -> int:
    number = positive(value)
    if number > 65535:
        raise argparse.ArgumentTypeError(f"{number}: a port is a number from 1 to 65535")
    return number


def option_error(source: str, exc: ValidationError) -> VisuelsError:
    """A validation error of a command line value, named as its option: ``--max-communes``."""
    location, message = first_problem(exc)
    option = next((str(part) for part in reversed(location) if isinstance(part, str)), "")  # not a list index
    return VisuelsError(source, "--" + option.replace("_", "-"), message)


def names(value: str) -> list[str]:
    """A comma-separated option's names; given, it names one at least (``--communes ,`` is not
    every commune)."""
    found = [name.strip() for name in value.split(",") if name.strip()]
    if not found:
        raise argparse.ArgumentTypeError(f"'{value}' names nothing: give names separated by commas")
    return found


def database_url_option(option: str | None, near: Path | None = None) -> str:
    """The database ``--database`` names; else ``$VISUELS_DATABASE_URL``; else the ``visuels.sqlite``
    of the output folder ``near`` (a file) lies in, whatever ``--output-dir`` made it; else ./outputs'."""
    from visuels.record.database import DATABASE_FILE, DatabaseOptionError, database_url, is_missing, url_option

    if option:
        return url_option(option)
    if near is not None and not settings().database_url:
        for folder in near.resolve().parents:
            if (folder / DATABASE_FILE).is_file():
                return f"sqlite:///{folder / DATABASE_FILE}"
    url = database_url(Path("outputs"))
    if is_missing(url):
        looked = Text("in the folders above {folder} and ", folder=near) if near is not None else ""
        raise DatabaseOptionError(
            near or "outputs",
            "--database",
            "no {DATABASE_FILE} found {looked}in ./outputs: give --database",
            DATABASE_FILE=DATABASE_FILE,
            looked=looked,
        )
    return url


def record_near(path: Path) -> str | None:
    """The record a file would be in, as ``database_url_option`` finds it; None where there is none (a
    picture that reached someone outside the project: it is judged from its own marks)."""
    from visuels.record.database import DatabaseOptionError

    try:
        return database_url_option(None, path)
    except DatabaseOptionError:
        return None


def open_record(option: str | None, near: Path | None = None) -> Database:
    """The database of record for a command; it must exist already."""
    from visuels.record.database import Database

    return Database(database_url_option(option, near), must_exist=True)


def record_folder(database: Database) -> Path:
    """Where the files this database records are (their ledger names are relative to it)."""
    from visuels.record.database import output_root_of

    return output_root_of(database.url, Path("outputs"))
