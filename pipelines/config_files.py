"""Reading YAML configuration files into pydantic models with file-and-field errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from pipelines.errors import VisuelsError

ModelT = TypeVar("ModelT", bound=BaseModel)


def read_yaml_mapping(path: Path, error_type: type[VisuelsError]) -> dict[str, Any]:
    """Parse a YAML file whose top level must be a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error_type(path, None, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error_type(path, None, f"cannot read file ({exc})") from None
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
        first = exc.errors(include_url=False)[0]
        location = tuple(p for p in first["loc"] if not str(p).startswith("function-"))
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        raise error_type(path, field_path(location), message) from None
