"""One process at a time trains a run: its lock, ``lora/<charter>/.<run>.lock``, beside its folder.

Two processes resuming one run at once (a form sent twice, a resume on two machines) trained in
one folder: the first to finish renamed it, the second failed at its end with a traceback and
left a folder behind that could not be resumed. The lock is taken before anything is trained and
given back once the run's folder has its final name (or the run stops). It is a lock file
(``visuels._internal.lock_files``): one held by a process of this machine that is gone is taken
over, one of another machine is said.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from visuels._internal.lock_files import release, try_lock
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
        release(lock)


def _take(lock: Path, field: str | None) -> None:
    holder = try_lock(lock)
    if holder is None:
        return
    if holder.pid is None:
        raise RunLockedError(lock, field, "this run is being trained by another process: wait for it to end")
    raise RunLockedError(
        lock,
        field,
        "this run is being trained by another process ({machine}, process {pid}): wait for it to end;"
        " if that process is gone, delete this file",
        machine=holder.machine,
        pid=holder.pid,
    )
