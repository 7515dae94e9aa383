"""Write files so that readers never see half of one: temporary name, then ``os.replace``.

A temporary file is named ``.<name>.<machine>.<pid>.<random>.tmp`` beside its target, so a run
that starts after a crash can tell its own leftovers (a process of this machine that is gone)
from the live temporary files of another process, and remove only those (``visuels._internal.liveness``
says what "this machine" is: a container sharing the host name is another).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from visuels._internal.liveness import is_gone, machine_id
from visuels.errors import ExportError, Text, VisuelsError

OUTPUT_MODE = 0o644  # outputs are read by the other accounts that share them
FOLDER_MODE = 0o755  # and their folders listed, whatever the umask of the process that made them
FOREIGN_STALE_AFTER_S = 24 * 3600  # another machine's leftover: its process cannot be asked
NO_HARD_LINKS = (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EMLINK)  # exFAT, some network shares
KEPT_COPIES = 999  # names tried for a kept copy before giving up
_TEMPORARY = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


class StagedFile:
    """A file written under a temporary name beside its target, moved onto it only by ``publish``."""

    def __init__(self, target: Path, temporary: Path) -> None:
        self.target = target
        self.path = temporary  # where to write
        self.published = False

    def publish(self) -> None:
        """Move the written file onto its target (a rename: it needs no room on the disk)."""
        try:
            os.replace(self.path, self.target)
        except OSError as exc:
            raise _write_error(self.target, exc) from None
        self.published = True


@contextmanager
def staged(target: Path, mode: int = OUTPUT_MODE) -> Iterator[StagedFile]:
    """Yield a temporary file next to ``target``, which the block publishes when its work is done:
    export publishes a picture only once its claim is confirmed, inside its record's transaction.

    A failure to write (a full disk, a folder that is a file, no permission) is an ``ExportError``
    naming ``target``; an unpublished temporary is removed whatever happens.
    """
    temporary = target.parent / f".{target.name}.{machine_id()}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    file = StagedFile(target, temporary)
    try:
        make_folders(target.parent)
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
        os.chmod(temporary, mode)  # whatever the umask: outputs are shared, keys are not
        yield file
    except OSError as exc:
        raise _write_error(target, exc) from None
    finally:
        if not file.published:
            with suppress(OSError):
                temporary.unlink(missing_ok=True)


def _write_error(target: Path, exc: OSError) -> ExportError:
    blocking = next((folder for folder in target.parents if folder.exists() and not folder.is_dir()), None)
    reason = f"{blocking} is a file, not a folder" if blocking else exc.strerror or str(exc)
    return ExportError(target, None, "cannot write it: {reason}", reason=reason)


@contextmanager
def atomic_path(target: Path, mode: int = OUTPUT_MODE) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; move it into place only if the block succeeds."""
    with staged(target, mode) as file:
        yield file.path
        file.publish()


def check_output_folder(folder: Path, field: str | None = None, kind: Text | None = None) -> None:
    """Refuse, before anything is written, a folder (``kind``: the output folder, the keys folder...)
    that cannot be made or written in: a file in its place or above it, a folder this process may
    not write in; said of its first part that exists, and of ``field`` (the option or setting)."""
    kind = kind or Text("output folder")
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not existing.is_dir():
        raise VisuelsError(existing, field, "is a file: the {kind} must be a folder", kind=kind)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise VisuelsError(existing, field, "no permission to write here: choose another {kind}", kind=kind)
    try:  # what the permissions do not say: a file system made by the kernel (/proc), read-only
        os.rmdir(tempfile.mkdtemp(prefix=".visuels-probe-", dir=existing))
    except OSError as exc:
        raise VisuelsError(
            existing,
            field,
            "cannot make a folder here ({reason}): choose another {kind}",
            reason=exc.strerror,
            kind=kind,
        ) from exc


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


def keep_copy(source: Path, named: Callable[[int], Path]) -> Path:
    """A copy of ``source`` under the first free name of ``named(1)``, ``named(2)``…, never over
    another file, or the one that holds its bytes already (kept by a run cut short); returns it.
    Hard-linked where the file system allows it, else copied. ``FileExistsError`` when every
    name is taken."""
    data = source.read_bytes()
    for number in range(1, KEPT_COPIES + 1):
        copy = named(number)
        if copy.is_file() and copy.stat().st_size == len(data) and copy.read_bytes() == data:
            return copy
        if copy.exists():
            continue
        try:
            os.link(source, copy)  # fails, rather than replace, a file that appeared meanwhile
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in NO_HARD_LINKS:
                raise
            with staged(copy) as staging:
                shutil.copyfile(source, staging.path)
                staging.publish()
        return copy
    raise FileExistsError(errno.EEXIST, f"{KEPT_COPIES} copies are kept already", str(source))


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


def remove_if_leftover(path: Path) -> None:
    """Delete ``path`` if it is a temporary file whose writer crashed (for a caller already walking
    its folder: ``remove_leftover_temporaries`` walks one itself)."""
    if path.name.endswith(".tmp") and _is_leftover(path, machine_id(), time.time()):
        path.unlink(missing_ok=True)


def remove_leftover_temporaries(folder: Path) -> int:
    """Delete the temporary files that crashed writers left under ``folder``; return how many."""
    if not folder.is_dir():
        return 0
    host, now, removed = machine_id(), time.time(), 0
    for directory, _subfolders, names in os.walk(folder):
        for name in names:
            path = Path(directory) / name
            if name.endswith(".tmp") and _is_leftover(path, host, now):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def remove_leftovers_of(target: Path) -> None:
    """Delete the temporaries of ``target`` alone that writers killed mid-write left beside it: for
    writes into folders no render sweeps (a designer's folder of edits), each retry of a killed
    write would leave one more copy of the picture there. It lists the folder: not for outputs,
    whose flat folders (thumbnails/) hold a campaign's worth of files."""
    own = re.compile(re.escape(f".{target.name}.") + r"[A-Za-z0-9_-]+\.\d+\.[0-9a-f]{8}\.tmp")
    host, now = machine_id(), time.time()
    with suppress(OSError), os.scandir(target.parent) as entries:  # a sweep that fails leaves them: no harm
        for entry in entries:
            if own.fullmatch(entry.name) and _is_leftover(Path(entry.path), host, now):
                Path(entry.path).unlink(missing_ok=True)
