"""Write files so that readers never see half of one: temporary name, then ``os.replace``.

A temporary file is named ``.<name>.<host>.<pid>.<random>.tmp`` beside its target, so a run
that starts after a crash can tell its own leftovers (a process of this host that is gone) from
the live temporary files of another process, and remove only those.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from pipelines.errors import ExportError
from pipelines.liveness import host_name, is_gone

OUTPUT_MODE = 0o644  # outputs are read by the other accounts that share them
FOLDER_MODE = 0o755  # and their folders listed, whatever the umask of the process that made them
FOREIGN_STALE_AFTER_S = 24 * 3600  # another host's leftover: its process cannot be asked
_TEMPORARY = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


@contextmanager
def atomic_path(target: Path, mode: int = OUTPUT_MODE) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; move it into place only if the block succeeds.

    A failure to write (a full disk, a folder that is a file, no permission) is an ``ExportError``
    naming ``target``, and leaves neither the temporary file nor a partial ``target``.
    """
    temporary = target.parent / f".{target.name}.{host_name()}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        make_folders(target.parent)
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
        os.chmod(temporary, mode)  # whatever the umask: outputs are shared, keys are not
        yield temporary
        os.replace(temporary, target)
    except OSError as exc:
        blocking = next((folder for folder in target.parents if folder.exists() and not folder.is_dir()), None)
        reason = f"{blocking} is a file, not a folder" if blocking else exc.strerror or str(exc)
        raise ExportError(target, None, f"cannot write it: {reason}") from None
    finally:
        with suppress(OSError):
            temporary.unlink(missing_ok=True)


def make_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each readable and listable by all (FOLDER_MODE)."""
    missing = []
    for path in (folder, *folder.parents):  # on every write: only up to the first that exists
        if path.exists():
            break
        missing.append(path)
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            continue  # another process made it just now, with the same mode
        os.chmod(path, FOLDER_MODE)


def write_bytes_atomic(target: Path, data: bytes, mode: int = OUTPUT_MODE) -> None:
    with atomic_path(target, mode) as temporary:
        temporary.write_bytes(data)


def write_text_atomic(target: Path, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def write_with(target: Path, writer: Callable[[Path], None]) -> None:
    """Let ``writer`` fill a temporary file, then move it onto ``target``."""
    with atomic_path(target) as temporary:
        writer(temporary)


def _is_leftover(path: Path, host: str, now: float) -> bool:
    match = _TEMPORARY.match(path.name)
    if match is None:
        return False
    if match["host"] != host:
        try:
            return now - path.stat().st_mtime > FOREIGN_STALE_AFTER_S
        except FileNotFoundError:
            return False
    return is_gone(int(match["pid"]))  # its writer is gone: killed mid-write


def remove_leftover_temporaries(folder: Path) -> int:
    """Delete the temporary files that crashed writers left under ``folder``; return how many."""
    if not folder.is_dir():
        return 0
    host, now, removed = host_name(), time.time(), 0
    for directory, _subfolders, names in os.walk(folder):
        for name in names:
            path = Path(directory) / name
            if name.endswith(".tmp") and _is_leftover(path, host, now):
                path.unlink(missing_ok=True)
                removed += 1
    return removed
