"""The deployment's watermark keys: secret, each with an id, kept in a key ring so that pictures
marked with a key since rotated out are still found.

A key is a random 128-bit number. Whoever holds it can read the invisible mark, and also remove it
or stamp it onto another picture; so it stays with the deployment (its keys folder, 0600) and the
public detects through the deployment's detector, never with the key itself. Its id (``wk-`` and
the first ten hex digits of the key's SHA-256) names it in manifests and detection results without
revealing it.

The ring (``watermark-keys.json`` in the keys folder) lists the keys oldest first; the newest marks
new pictures, and every key in it is tried when detecting. ``$VISUELS_WATERMARK_KEY`` overrides the
ring (a hexadecimal key, or ``demo``). The built-in demo key is public (written below): pictures
marked with it prove nothing, so it marks only when asked for on purpose
(``VISUELS_WATERMARK_KEY=demo``), and a detection that relies on it says "demo key". It is always
tried last, so pictures marked before keys had ids stay detectable.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from visuels._internal.atomic import write_bytes_atomic
from visuels._internal.json_text import read_json
from visuels._internal.lock_files import release, try_lock
from visuels.config import settings
from visuels.errors import VisuelsError
from visuels.marking import watermark

WATERMARK_KEYS = "watermark-keys.json"
KEY_VARIABLE = "VISUELS_WATERMARK_KEY"
KEY_BITS = 128
DEMO_KEY = 0x56495355454C53  # "VISUELS": public on purpose, for the demo and the tests; proves nothing
DEMO_KEY_ID = "demo"
DEMO_SETTING = "demo"  # VISUELS_WATERMARK_KEY=demo: the demo key, chosen on purpose
KEYS_LOCK = ".keys.lock"  # held while keys are made (the ring's, the signing chain's)
KEYS_LOCK_WAIT_S = 60.0  # making keys takes milliseconds: a holder this long is stuck, or gone on another machine
KEYS_LOCK_POLL_S = 0.05


class WatermarkKeyError(VisuelsError):
    """A watermark key that is missing, or a key setting or ring that is not one."""


@dataclass(frozen=True)
class WatermarkKey:
    id: str
    value: int = 0
    created: str = ""  # UTC, ISO 8601; empty for a key set in the environment

    @property
    def demo(self) -> bool:
        return self.value == DEMO_KEY

    def __repr__(self) -> str:  # never the secret, in a log or a traceback
        return f"WatermarkKey(id={self.id!r})"


def key_id(value: int) -> str:
    """The key's public name: derived from it, so the same key has the same id everywhere."""
    if value == DEMO_KEY:
        return DEMO_KEY_ID
    return "wk-" + hashlib.sha256(value.to_bytes(KEY_BITS // 8, "big")).hexdigest()[:10]


def _key(value: int, created: str = "") -> WatermarkKey:
    return WatermarkKey(id=key_id(value), value=value, created=created)


def _parsed(text: str, file: str | Path, field: str) -> int:
    try:
        value = int(text.strip().removeprefix("0x"), 16)
    except ValueError:
        raise WatermarkKeyError(file, field, "'{value}' is not a hexadecimal number", value=text) from None
    if not 0 < value < 2**KEY_BITS:
        raise WatermarkKeyError(file, field, "the key must be a positive number of at most 128 bits")
    return value


def _set_key() -> WatermarkKey | None:
    """The key ``$VISUELS_WATERMARK_KEY`` sets, if it sets one."""
    text = settings().watermark_key.strip()
    if not text:
        return None
    if text.lower() == DEMO_SETTING:
        return _key(DEMO_KEY)
    return _key(_parsed(text, KEY_VARIABLE, None))


def ring(folder: Path) -> list[WatermarkKey]:
    """The keys of the ring in ``folder``, oldest first; none when it has no ring yet."""
    path = folder / WATERMARK_KEYS
    try:
        document = read_json(path)
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        raise WatermarkKeyError(path, None, "not a watermark key ring (JSON)") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise WatermarkKeyError(path, "keys", "a list of keys is expected")
    keys = []
    for number, entry in enumerate(entries):
        field = f"keys[{number}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise WatermarkKeyError(path, field, "a key is expected, in hexadecimal")
        key = _key(_parsed(entry["key"], path, field), str(entry.get("created", "")))
        if entry.get("id") not in (None, key.id):
            raise WatermarkKeyError(path, field, "its id does not match its key (expected {id})", id=key.id)
        keys.append(key)
    return keys


@contextmanager
def keys_folder_alone(folder: Path) -> Iterator[None]:
    """Hold the keys folder's lock (``.keys.lock``) while the block runs, waiting for another
    process that holds it. Two processes starting at once on a fresh machine (the demo beside
    `make serve`, render machines sharing the folder) each made a key and a chain, writing over
    the other's files: pictures marked with a key the ring no longer held, a signer's key that
    was not its certificate's. The second now waits for the first, then finds its keys."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / KEYS_LOCK
    deadline = time.monotonic() + KEYS_LOCK_WAIT_S
    while (holder := try_lock(lock)) is not None:
        if time.monotonic() > deadline:
            raise WatermarkKeyError(
                lock,
                None,
                "another process ({machine}, process {pid}) has been making keys here for {seconds:.0f} s:"
                " if it is gone, delete this file",
                machine=holder.machine or "?",
                pid=holder.pid or "?",
                seconds=KEYS_LOCK_WAIT_S,
            )
        time.sleep(KEYS_LOCK_POLL_S)
    try:
        yield
    finally:
        release(lock)


def add_key(folder: Path) -> WatermarkKey:
    """A new random key, appended to the ring in ``folder`` (made, 0600, if missing): it marks
    from now on; the older ones still detect."""
    with keys_folder_alone(folder):
        return _append_key(folder)


def ensure_key(folder: Path) -> bool:
    """Make the ring's first key unless there is one; True if it was made."""
    if ring(folder):
        return False  # nothing to write: no lock (a deployment's keys folder may be read-only)
    with keys_folder_alone(folder):
        return first_key(folder)


def first_key(folder: Path) -> bool:
    """``ensure_key`` for a caller holding ``keys_folder_alone``."""
    if ring(folder):
        return False
    _append_key(folder)
    return True


def _append_key(folder: Path) -> WatermarkKey:
    keys = ring(folder)
    value = 0
    while value == 0 or value == DEMO_KEY:
        value = secrets.randbits(KEY_BITS)
    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    added = _key(value, created)
    entries = [{"id": key.id, "key": f"{key.value:032x}", "created": key.created} for key in [*keys, added]]
    write_bytes_atomic(folder / WATERMARK_KEYS, (json.dumps({"keys": entries}, indent=1) + "\n").encode(), mode=0o600)
    return added


def active_key(folder: Path) -> WatermarkKey:
    """The key that marks new pictures: the one the environment sets, else the ring's newest."""
    chosen = _set_key()
    if chosen is not None:
        return chosen
    keys = ring(folder)
    if not keys:
        raise WatermarkKeyError(
            folder / WATERMARK_KEYS,
            None,
            "no watermark key: run `visuels keys init` (or set VISUELS_WATERMARK_KEY; 'demo' for the public demo key)",
        )
    return keys[-1]


def known_keys(folder: Path) -> list[WatermarkKey]:
    """Every key to try when detecting, most likely first: the one set, the ring newest first, the
    demo key last (pictures of the demo, and of before keys had ids)."""
    chosen = _set_key()
    candidates = [*([chosen] if chosen else []), *reversed(ring(folder)), _key(DEMO_KEY)]
    unique: dict[str, WatermarkKey] = {}
    for key in candidates:
        unique.setdefault(key.id, key)  # the first of each id
    return list(unique.values())


def find_mark(rgb: np.ndarray, keys: list[WatermarkKey]) -> tuple[watermark.Detection, WatermarkKey | None]:
    """The watermark read with the first key that finds one, and that key; else what the first key
    saw, and None. Each key tried adds its own 2^-32 chances per decoding of a false find."""
    views = watermark.Views(rgb)  # what every key's search shares, computed once
    first = None
    for key in keys:
        found = watermark.detect_in(views, key.value)
        if found.payload is not None:
            return found, key
        first = first or found
    return first or watermark.detect_in(views, DEMO_KEY), None
