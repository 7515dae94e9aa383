"""One process at a time trains a run: its lock, ``lora/<charter>/.<run>.lock``, beside its folder.

Two processes resuming one run at once (a form sent twice, a resume on two machines) trained in
one folder: the first to finish renamed it, the second failed at its end with a traceback and
left a folder behind that could not be resumed. The lock is taken before anything is trained and
given back once the run's folder has its final name (or the run stops). It is a lock file
(``visuels._internal.lock_files``): one held by a process of this machine that is gone is taken
over, one of another machine is said.

A new run is named by its start, to the second. Two trainings of one charter launched together
shared that name: the second was refused as if it resumed the first. It takes the next free name
now (``NAME-2``…), which sorts after the first and before the next second's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from visuels._internal.lock_files import release, try_lock
from visuels.errors import VisuelsError
from visuels.inputs.lora_runs import PARTIAL_SUFFIX

LOCK_SUFFIX = ".lock"
RUNS_IN_ONE_SECOND = 99  # new runs of one charter started in the same second: named NAME, NAME-2… NAME-99


def run_folders(folder: Path, run: str) -> tuple[Path, Path]:
    """A run's folder while it trains (``.<run>.partial``) and once complete (``<run>``)."""
    return folder / f".{run}{PARTIAL_SUFFIX}", folder / run


def _lock_of(final: Path) -> Path:
    return final.with_name(f".{final.name}{LOCK_SUFFIX}")


class RunLockedError(VisuelsError):
    """Another process trains this run now."""


@contextmanager
def training_alone(partial: Path, final: Path, field: str | None) -> Iterator[tuple[Path, Path]]:
    """Hold the lock of the run whose folder is ``partial`` (``final`` once complete) while the block
    runs; ``RunLockedError`` (said of ``field``) when another process holds it, or when the run
    was completed meanwhile by the process that held it."""
    lock = _lock_of(final)
    lock.parent.mkdir(parents=True, exist_ok=True)
    _take(lock, field)
    try:
        if final.exists():  # finished by the process that held the lock before this one got it
            raise RunLockedError(final, field, "this run is already complete")
        yield partial, final
    finally:
        release(lock)


@contextmanager
def new_run_alone(folder: Path, name: str) -> Iterator[tuple[Path, Path]]:
    """A new run's folders (partial, final) under ``folder``, its lock held while the block runs:
    named ``name`` (its start, to the second), or where a run of that name exists or starts at the
    same moment (two trainings of one charter launched together, a form sent twice), the first free
    of ``name-2``, ``name-3``…: each launch trains, none is refused for another's name."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(1, RUNS_IN_ONE_SECOND + 1):
        partial, final = run_folders(folder, name if number == 1 else f"{name}-{number}")
        lock = _lock_of(final)
        if partial.exists() or final.exists() or try_lock(lock) is not None:
            continue
        try:
            if not (partial.exists() or final.exists()):  # not made by the process whose lock this was
                yield partial, final
                return
        finally:
            release(lock)
    raise RunLockedError(
        folder, None, "{count} runs of this charter started in one second: start it again", count=RUNS_IN_ONE_SECOND
    )


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
