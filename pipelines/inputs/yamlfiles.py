"""Reading YAML configuration files into pydantic models with file-and-field errors."""

from __future__ import annotations

import re
from difflib import get_close_matches
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from visuels.errors import Text, VisuelsError, plain_message
from visuels.inputs.text_files import decoded_text, not_utf8

ModelT = TypeVar("ModelT", bound=BaseModel)
MERGE_TAG = "tag:yaml.org,2002:merge"  # `<<: *defaults`: its keys may be overridden, as YAML says
INT_TAG = "tag:yaml.org,2002:int"
# A colour written bare where a value starts (`hex: #1B4F72`, `- #fff`, `[#1B4F72, ...`): YAML reads
# it as a comment, so the value is silently empty (or the line no longer parses).
COLOUR = re.compile(r"#(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{6}|[0-9A-Fa-f]{3})(?![0-9A-Za-z])")
VALUE_STARTS = (":", "-", "[", ",", "{")
PLAIN_INTEGER = re.compile(r"^[-+]?(?:0|[1-9][0-9_]*|0b[01_]+|0x[0-9a-fA-F_]+)$")


class _KeyGivenTwice(yaml.constructor.ConstructorError):
    def __init__(self, key: str, first_line: int, mark: yaml.Mark) -> None:
        super().__init__(None, None, "a key given twice", mark)
        self.key, self.first_line = key, first_line


class _ConfigLoader(yaml.SafeLoader):
    """YAML's safe loader, with two of YAML 1.1's surprises taken out.

    A key written twice in one mapping is refused: PyYAML keeps the last silently, so a second
    `formats:` further down a campaign would quietly replace the first. A number written with a
    leading zero stays as written: YAML 1.1 reads `01004` (a commune's INSEE code) as the octal
    number 516, and `1:30` as 90; as YAML 1.2 does, only plain decimals (and 0x, 0b) are integers.
    """

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag != INT_TAG]
        + ([(INT_TAG, PLAIN_INTEGER)] if first and first in "-+0123456789" else [])
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == MERGE_TAG:
                continue
            if (key.tag, key.value) in first_line:
                raise _KeyGivenTwice(key.value, first_line[(key.tag, key.value)], key.start_mark)
            first_line[(key.tag, key.value)] = key.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_yaml_mapping(path: Path, error_type: type[VisuelsError]) -> dict[str, Any]:
    """Parse a YAML file whose top level must be a mapping."""
    try:
        text = decoded_text(path.read_bytes())  # UTF-8, with Windows' mark or not, or UTF-16 (Notepad's "Unicode")
    except FileNotFoundError:
        raise error_type(path, None, "file not found") from None
    except IsADirectoryError:  # an output folder given for its campaign, say
        raise error_type(path, None, "a folder, where a YAML file is wanted") from None
    except UnicodeDecodeError as exc:
        raise error_type(path, None, not_utf8(exc)) from None
    except OSError as exc:
        raise error_type(path, None, "cannot read file ({reason})", reason=exc.strerror or str(exc)) from None
    _refuse_bare_colours(text, path, error_type)
    try:
        data = yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader: plain data, no Python objects
    except _KeyGivenTwice as exc:
        where = Text("line {line}", line=exc.problem_mark.line + 1)
        raise error_type(
            path, where, "{key!r} is given twice (first on line {first})", key=exc.key, first=exc.first_line
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = Text("line {line}", line=mark.line + 1) if mark is not None else None
        problem = getattr(exc, "problem", None)
        if problem:  # the parser's words, in English
            raise error_type(path, where, "invalid YAML: {problem}", problem=problem) from None
        raise error_type(path, where, "invalid YAML") from None
    except RecursionError:  # the parser recurses once a level: a file of 100,000 `[` goes past Python's stack
        raise error_type(path, None, "invalid YAML: nested too deeply to be read") from None
    if not isinstance(data, dict):
        raise error_type(path, None, "expected a mapping of fields at the top level")
    return data


def _comment_start(line: str) -> int | None:
    """Where YAML's comment begins in ``line``: the first # outside quotes, at its start or after a space."""
    quote = None
    for index, character in enumerate(line):
        if quote:
            quote = None if character == quote else quote
        elif character in "\"'":
            quote = character
        elif character == "#" and (index == 0 or line[index - 1] in " \t[,{"):
            return index
    return None


def _refuse_bare_colours(text: str, path: Path, error_type: type[VisuelsError]) -> None:
    for number, line in enumerate(text.splitlines(), start=1):
        start = _comment_start(line)
        before = line[:start].rstrip() if start is not None else ""
        colour = COLOUR.match(line, start) if start is not None and before.endswith(VALUE_STARTS) else None
        if colour:
            raise error_type(
                path,
                Text("line {line}", line=number),
                '{colour} is read as a comment (in YAML, # after a space starts one): write it in quotes, "{colour}"',
                colour=colour.group(0),
            )


def field_path(location: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as ``palette[2].hex``; a key at fault is said by the
    message, at the key's own place (``audiences.Résidents``, not pydantic's ``…Résidents.[key]``)."""
    rendered = ""
    for part in location:
        if part == "[key]":
            continue
        if isinstance(part, int):
            rendered += f"[{part}]"
        else:
            rendered += f".{part}" if rendered else str(part)
    return rendered or "(top level)"


def first_problem(exc: ValidationError, data: Any = None) -> tuple[tuple[int | str, ...], Text]:
    """The error to report first, as (location, message); ``data``: what was validated, when it was
    read from a file, to say each place as the file does.

    A misspelt key fails twice, as an unknown key and as a missing one; the unknown key is the
    cause, so it comes first, with the missing key it probably meant. A field that may be one of
    several kinds fails once per kind: the failure that went deepest into what was written says most.
    """
    errors = exc.errors(include_url=False)
    if data is not None:
        errors = [{**error, "loc": _in_file(error["loc"], error["type"], data)} for error in errors]
    unknown = [error for error in errors if error["type"] == "extra_forbidden"]
    chosen = unknown[0] if unknown else errors[0]
    deeper = [error for error in errors if error["loc"][: len(chosen["loc"])] == chosen["loc"]]
    chosen = chosen if unknown else max(deeper, key=lambda error: len(error["loc"]))
    location = tuple(part for part in chosen["loc"] if not str(part).startswith("function-"))
    if not unknown:
        return location, plain_message(chosen)
    missing = [
        str(error["loc"][-1])
        for error in errors
        if error["type"] == "missing" and tuple(error["loc"][:-1]) == tuple(chosen["loc"][:-1])
    ]
    close = get_close_matches(str(chosen["loc"][-1]), missing, n=1, cutoff=0.5)
    if close:
        return location, Text("unknown key (did you mean '{key}'?)", key=close[0])
    return location, Text("unknown key")


def _in_file(location: tuple[int | str, ...], kind: str, data: Any) -> tuple[int | str, ...]:
    """``location`` without the parts pydantic adds that are not in the file: the kind tried for a
    field that may be one of several (`headline.constrained-str`, `model.diffusers.path`)."""
    kept: list[int | str] = []
    here = data
    for index, part in enumerate(location):
        written = (isinstance(here, dict) and part in here) or (
            isinstance(here, list) and isinstance(part, int) and 0 <= part < len(here)
        )
        if written:
            here = here[part]
        elif part != "[key]" and not (kind == "missing" and index == len(location) - 1):
            continue  # a kind's name, or a key a validator put there (a one-line audience's `prompt`)
        kept.append(part)
    return tuple(kept)


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
        location, message = first_problem(exc, data)
        raise error_type(path, field_path(location), message) from None
