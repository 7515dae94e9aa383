"""One process at a time trains a run: its lock, ``lora/<charter>/.<run>.lock``, beside its folder.

Two processes resuming one run at once (a form sent twice, a resume on two machines) trained in
one folder: the first to finish renamed it, the second failed at its end with a traceback and
left a folder behind that could not be resumed. The lock is taken before anything is trained and
given back once the run's folder has its final name (or the run stops). It is created whole
(written under a temporary name, then linked in place: a lock that exists says who holds it); one
held by a process of this machine that is gone is taken over, one of another machine is said.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from visuels._internal.liveness import is_gone, machine_id
from visuels.errors import VisuelsError

LOCK_SUFFIX = ".lock"


class RunLockedError(VisuelsError):
    """Another process trains this run now."""


@contextmanager
def training_alone(partial: Path, final: Path, field: str | None) -> Iterator[None]:
    """Hold the lock of the run whose folder is ``partial`` (``final`` once complete) while the block
    runs; ``RunLockedError`` (said of ``field``) when another process holds it, or when the run
    was completed meanwhile by the process that held it."""
    lock = final.with_name(f".{final.name}{LOCK_SUFFIX}")
    lock.parent.mkdir(parents=True, exist_ok=True)
    _take(lock, field)
    try:
        if final.exists():  # finished by the process that held the lock before this one got it
            raise RunLockedError(final, field, "this run is already complete")
        yield
    finally:
        lock.unlink(missing_ok=True)


def _take(lock: Path, field: str | None) -> None:
    holder = f"{machine_id()} {os.getpid()}\n"
    for _ in range(3):  # a lock given back, or a stale one taken over, meanwhile: tried again
        descriptor, written = tempfile.mkstemp(dir=lock.parent, prefix=".lock-", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(holder)
            os.link(written, lock)  # fails where the lock exists: never two holders
            return
        except FileExistsError:
            pass
        finally:
            Path(written).unlink(missing_ok=True)
        machine, pid = _holder(lock)
        if pid is None:  # given back between the two: try again
            continue
        if machine == machine_id() and is_gone(pid):
            lock.unlink(missing_ok=True)  # its process was killed: the run is free to resume
            continue
        raise RunLockedError(
            lock,
            field,
            "this run is being trained by another process ({machine}, process {pid}): wait for it to end;"
            " if that process is gone, delete this file",
            machine=machine,
            pid=pid,
        )
    raise RunLockedError(lock, field, "this run is being trained by another process: wait for it to end")


def _holder(lock: Path) -> tuple[str, int | None]:
    """Who holds ``lock``: its machine and process id (nothing readable: a lock just given back)."""
    try:
        machine, pid = lock.read_text(encoding="utf-8").split()
        return machine, int(pid)
    except (OSError, ValueError):
        return "", None
