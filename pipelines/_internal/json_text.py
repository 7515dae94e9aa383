"""JSON from files that come from elsewhere (model configs, safetensors headers, detection
results, C2PA manifests): Python's parser recurses once per level of nesting, so a document of
a hundred thousand ``[`` raised RecursionError, which no reader expects. Here it is a ValueError,
as any other malformed JSON is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def loads(text: str | bytes) -> Any:
    """``json.loads``; a document nested too deeply to parse is a ValueError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply to be read") from None


def read_json(path: Path) -> Any:
    """The JSON document in the UTF-8 file ``path`` (OSError and ValueError as ``json.loads``)."""
    return loads(path.read_text(encoding="utf-8"))
