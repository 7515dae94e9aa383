"""Reading YAML configuration files into pydantic models with file-and-field errors."""

from __future__ import annotations

from collections.abc import Mapping
from difflib import get_close_matches
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from visuels.errors import VisuelsError

ModelT = TypeVar("ModelT", bound=BaseModel)


def read_yaml_mapping(path: Path, error_type: type[VisuelsError]) -> dict[str, Any]:
    """Parse a YAML file whose top level must be a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error_type(path, None, "file not found") from None
    except UnicodeDecodeError as exc:
        raise error_type(path, None, not_utf8(exc)) from None
    except OSError as exc:
        raise error_type(path, None, f"cannot read file ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise error_type(path, where, f"invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise error_type(path, None, "expected a mapping of fields at the top level")
    return data


def field_path(location: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as ``palette[2].hex``."""
    rendered = ""
    for part in location:
        if isinstance(part, int):
            rendered += f"[{part}]"
        else:
            rendered += f".{part}" if rendered else str(part)
    return rendered or "(top level)"


VALIDATOR_PREFIXES = ("Value error, ", "Assertion failed, ")


def not_utf8(exc: UnicodeDecodeError) -> str:
    """Where a file stops being UTF-8 text, and what to do."""
    return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position {exc.start}): save it as UTF-8"


def plain_message(error: Mapping[str, Any]) -> str:
    """A pydantic error's message without the validator-kind prefix people need not see."""
    if error["type"] == "missing":
        return "required, and missing"
    message = error["msg"]
    for prefix in VALIDATOR_PREFIXES:
        message = message.removeprefix(prefix)
    return message


def first_problem(exc: ValidationError) -> tuple[tuple[int | str, ...], str]:
    """The error to report first, as (location, message).

    A misspelt key fails twice, as an unknown key and as a missing one; the unknown key is the
    cause, so it comes first, with the missing key it probably meant.
    """
    errors = exc.errors(include_url=False)
    unknown = [error for error in errors if error["type"] == "extra_forbidden"]
    chosen = unknown[0] if unknown else errors[0]
    location = tuple(part for part in chosen["loc"] if not str(part).startswith("function-"))
    if not unknown:
        return location, plain_message(chosen)
    missing = [
        str(error["loc"][-1])
        for error in errors
        if error["type"] == "missing" and tuple(error["loc"][:-1]) == tuple(chosen["loc"][:-1])
    ]
    close = get_close_matches(str(chosen["loc"][-1]), missing, n=1, cutoff=0.5)
    return location, "unknown key" + (f" (did you mean '{close[0]}'?)" if close else "")


def validate_model(
    model_type: type[ModelT],
    data: dict[str, Any],
    path: Path,
    error_type: type[VisuelsError],
) -> ModelT:
    """Validate ``data`` and report the first problem as ``file: field: message``."""
    try:
        return model_type.model_validate(data)
    except ValidationError as exc:
        location, message = first_problem(exc)
        raise error_type(path, field_path(location), message) from None
