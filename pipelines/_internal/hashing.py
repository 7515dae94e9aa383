"""Content hashes used in job keys and provenance."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from visuels._internal.atomic import write_text_atomic
from visuels._internal.json_text import read_json
from visuels.errors import ExportError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# What json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False) makes, its
# encoder made once: planning a region hashes 640,000 values.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_json(value: Any) -> str:
    """Hash a JSON-serialisable value in a canonical form (sorted keys, no spaces)."""
    return hashlib.sha256(_CANONICAL.encode(value).encode("utf-8")).hexdigest()


def cached_sha256_file(path: Path, cache_file: Path) -> str:
    """sha256 of a (possibly multi-GB) file, remembered by path, size and modification time."""
    stat = path.stat()
    entry_key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        cache = read_json(cache_file)
    except (OSError, ValueError):
        cache = {}
    if not isinstance(cache, dict):  # damaged by hand or by a full disk: only a cache, made again
        cache = {}
    if entry_key in cache:
        return cache[entry_key]
    digest = sha256_file(path)
    cache[entry_key] = digest
    try:
        write_text_atomic(cache_file, json.dumps(cache, indent=0, sort_keys=True))
    except ExportError as exc:  # only a cache: the hash is right, it is worked out again next time
        log.warning("the file-hash cache %s cannot be written (%s): hashes are worked out again", cache_file, exc)
    return digest
