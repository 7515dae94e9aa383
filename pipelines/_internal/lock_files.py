"""Lock files: one process at a time does a piece of work, among the processes of a machine and
the machines that share a folder (a LoRA run's training, the making of a signing chain).

A lock is created whole (written under a temporary name, then linked in place, which fails where
it exists: never two holders) and says who holds it: its machine and process. Its holder removes
it when done; one held by a process of this machine that is gone (killed) is taken over, one of
another machine is left to the caller to say.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from visuels._internal.liveness import is_gone, machine_id

TRIES = 3  # a lock given back, or a dead holder's taken over, between two looks: tried again


@dataclass(frozen=True)
class Holder:
    """The process holding a lock; ``pid`` None when it could not be read (the lock just changed hands)."""

    machine: str
    pid: int | None


def try_lock(lock: Path) -> Holder | None:
    """Take ``lock``: None once this process holds it, else who does."""
    mine = f"{machine_id()} {os.getpid()}\n"
    holder = Holder("", None)
    for _ in range(TRIES):
        descriptor, written = tempfile.mkstemp(dir=lock.parent, prefix=".lock-", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(mine)
            os.link(written, lock)
            return None
        except FileExistsError:
            pass
        finally:
            Path(written).unlink(missing_ok=True)
        holder = _holder(lock)
        if holder.pid is None:  # given back between the two: try again
            continue
        if holder.machine == machine_id() and is_gone(holder.pid):
            lock.unlink(missing_ok=True)  # its process was killed: the work is free
            continue
        return holder
    return holder


def release(lock: Path) -> None:
    lock.unlink(missing_ok=True)


def _holder(lock: Path) -> Holder:
    """Who holds ``lock``: its machine and process id (nothing readable: a lock just given back)."""
    try:
        machine, pid = lock.read_text(encoding="utf-8").split()
        return Holder(machine, int(pid))
    except (OSError, ValueError):
        return Holder("", None)
