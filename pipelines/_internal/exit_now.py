"""Ending this process at once, as a kill ends it, from any thread, and quietly."""

from __future__ import annotations

import gc
import os
from contextlib import suppress
from multiprocessing.synchronize import SemLock
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` now: no exit handler runs (one may wait for ever on what made
    the process end). The named semaphores of its worker pools are unlinked first, as their
    finalizers would: else multiprocessing's resource tracker unlinks them once the process is gone
    and prints a warning of "leaked semaphore objects" under the command's last line."""
    for held in gc.get_objects():
        # type(), not isinstance(): some objects answer `__class__` with a warning (lazy modules)
        if issubclass(type(held), SemLock) and held._semlock.name is not None:  # forkserver and spawn pools
            with suppress(OSError):  # unlinked already
                SemLock._cleanup(held._semlock.name)
    os._exit(code)
