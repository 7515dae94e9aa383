"""One exception type per domain, each naming the file and the field at fault, and what it means.

The CLI turns any :class:`VisuelsError` into a one-line message and its exit code, which say
one thing each (README, "Exit codes"):

- 0: done, nothing to report;
- 1: a finding (``check``, ``verify``, ``finalize``, ``ledger verify``: a file is not as it should be);
- 2: bad input (a file, a field, an option): fix it and run again;
- 3: the environment failed (a full disk, the database unreachable, a worker lost, a GPU too
  small): nothing was wrong with the input, someone must look at the machine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic_core import PydanticKnownError

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 3


class Text:
    """A message as an English ``str.format`` pattern and its values, so it can be said in the
    reader's language: ``str()`` gives the English, ``said(words)`` the words' language (a value
    that is itself a :class:`Text` is said in that language too)."""

    def __init__(self, pattern: str, /, **values: Any) -> None:
        self.pattern = pattern
        self.values: Mapping[str, Any] = values

    def said(self, words: Callable[..., str]) -> str:
        values = {name: value.said(words) if isinstance(value, Text) else value for name, value in self.values.items()}
        return words(self.pattern, **values)

    def __str__(self) -> str:
        return self.said(_english)

    def __repr__(self) -> str:
        return f"Text({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Text) and (self.pattern, dict(self.values)) == (other.pattern, dict(other.values))

    def __hash__(self) -> int:
        return hash(self.pattern)


def _english(pattern: str, /, **values: Any) -> str:
    return pattern.format(**values) if values else pattern


def with_a_point(value: str) -> str | None:
    """``5,5`` (a decimal as French writes it) as Python reads it, ``5.5``; None for anything else."""
    return value.strip().replace(",", ".") if re.fullmatch(r"\s*[-+]?\d+,\d+\s*", value) else None


def first_line(exc: BaseException) -> str:
    """An exception's message in one line (its first), or its type's name where it has none."""
    message = str(exc)
    return message.splitlines()[0] if message else type(exc).__name__


class InvalidValueError(ValueError):
    """Raised by a pydantic validator: the value's problem as a :class:`Text` pattern and values,
    so the message reaches the reader in their language (``ValueError`` would carry only English)."""

    def __init__(self, pattern: str, /, **values: Any) -> None:
        self.text = Text(pattern, **values)
        super().__init__(str(self.text))


def plain_message(error: Mapping[str, Any]) -> Text:
    """A pydantic error's message as a pattern the reader's language has: our validators'
    :class:`InvalidValueError`, else pydantic's own pattern for its kind of error (filled with its
    context), without the validator-kind prefix people need not see."""
    if error["type"] == "missing":
        return Text("required, and missing")
    context = dict(error.get("ctx") or {})
    cause = context.get("error")
    if isinstance(cause, InvalidValueError):
        return cause.text
    if isinstance(cause, Exception):  # a plain ValueError or assertion: its English words
        return Text(str(cause))
    given = error.get("input")
    if given is None or (error["type"] == "string_too_short" and isinstance(given, str) and not given.strip()):
        # `season:` with nothing after it (YAML's null), "" or a prompt of spaces alone
        return Text("empty: give it a value")
    if error["type"] == "float_parsing" and isinstance(given, str) and (meant := with_a_point(given)):
        return Text("'{value}': write the number with a point, {number}", value=given, number=meant)
    if error["type"] == "list_type" and re.fullmatch(r"[\w-]+", str(given)):  # `formats: story`
        return Text("a list is expected: write [{value}]", value=given)
    if error["type"] == "union_tag_invalid":  # pydantic's words name its "tags" and "discriminator"
        name = context["discriminator"].strip("'")
        return Text(
            "{name} '{tag}' is not one of {expected}", name=name, tag=context["tag"], expected=context["expected_tags"]
        )
    if error["type"] == "union_tag_not_found":
        return Text("its {name} is missing", name=context["discriminator"].strip("'"))
    if error["type"] == "model_type":  # pydantic's words name our class
        return Text("Input should be a valid dictionary")
    # A list or table with too few or too many entries: pydantic's words ("Dictionary should have at
    # least 1 item after validation, not 0") name its own steps.
    if error["type"] == "too_short":
        return Text(
            "at least {minimum} needed ({actual} here)", minimum=context["min_length"], actual=context["actual_length"]
        )
    if error["type"] == "too_long":
        return Text(
            "at most {maximum} allowed ({actual} here)", maximum=context["max_length"], actual=context["actual_length"]
        )
    if error["type"] in ("string_too_short", "string_too_long") and isinstance(given, str):
        # Pydantic's words leave out how long the text is: a designer shortening a headline needs it.
        bound = context.get("min_length", context.get("max_length"))
        said = {"bound": bound, "plural": "" if bound == 1 else "s", "actual": len(given)}
        if error["type"] == "string_too_short":
            return Text("at least {bound} character{plural} ({actual} here)", **said)
        return Text("at most {bound} character{plural} ({actual} here)", **said)
    try:
        pattern = PydanticKnownError(error["type"], context or None).message_template
    except (KeyError, TypeError, ValueError):  # a custom kind: pydantic's own message
        return Text(error["msg"])
    # Said as pydantic says them: a bound of 0.0 reads 0.
    context = {
        name: int(value) if isinstance(value, float) and value.is_integer() else value
        for name, value in context.items()
    }
    if "{expected_plural}" in pattern:  # pydantic works this one out itself, from the length
        length = context.get("min_length", context.get("max_length", 0))
        context["expected_plural"] = "" if length == 1 else "s"
    return Text(pattern, **context) if context else Text(pattern)


class VisuelsError(Exception):
    """Bad input: carries the file and the field so the message can point at them.

    ``message`` is an English pattern filled with ``values`` (``"unknown commune '{name}'"``,
    ``name=...``), or a :class:`Text`: the command line and the studio say it in the reader's
    language (``said``), ``str()`` in English (logs, run states)."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, file: str | Path, field: str | Text | None, message: str | Text, /, **values: Any) -> None:
        self.file = str(file)
        self.field_text = field if isinstance(field, Text) else None  # "line 3, insee": said too
        self.field = str(field) if field is not None else None
        self.text = message if isinstance(message, Text) else Text(message, **values)
        self.message = str(self.text)
        super().__init__(str(self))

    def said(self, words: Callable[..., str]) -> str:
        """``file: field: message``, the message in the language of ``words``."""
        field = self.field_text.said(words) if self.field_text else self.field
        said = f"{self.file}: {field}: {self.text.said(words)}" if field else f"{self.file}: {self.text.said(words)}"
        return _one_line(said)

    @property
    def where(self) -> str:
        return f"{self.file}: {self.field}" if self.field else self.file

    def __str__(self) -> str:
        return _one_line(f"{self.where}: {self.message}")

    def __reduce__(self) -> tuple:
        # Rebuilt from its parts when it crosses a process boundary (a CPU worker's error).
        return (type(self), (self.file, self.field_text or self.field, self.text))


def _one_line(message: str) -> str:
    """``message`` on one line, a line break a value brought in (a file name, a commune's name
    typed with one) shown as ``\\n``: the error stays the one line it is said to be."""
    return message.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")


class OperationalError(VisuelsError):
    """The environment failed (disk, database, a worker, the device), not the input: exit code 3."""

    exit_code = EXIT_ENVIRONMENT


class SettingsError(VisuelsError):
    """A ``VISUELS_*`` environment variable that is not valid (the variable is its file)."""

    language = ""  # the language setting where it is valid: what to say this in


class CharterError(VisuelsError):
    """A brand charter (charter.yaml and its assets) is invalid."""


class CommunesError(VisuelsError):
    """A communes CSV file is invalid."""


class CampaignError(VisuelsError):
    """A campaign file is invalid or names something that does not exist."""


class ModelError(VisuelsError):
    """A model reference cannot be resolved or loaded."""


class ExportError(OperationalError):
    """An output cannot be written or recorded (a full disk, a CPU worker that died)."""


class WorkerLostError(OperationalError):
    """A process doing part of the work stopped (a render worker, a lost claim on its jobs)."""


class ReviewError(VisuelsError):
    """A review decision that cannot be applied (unknown file, missing comment...)."""
