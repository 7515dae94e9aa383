"""Is a process that left something behind (a temporary file, a job claim) still running?

Only a process of this host can be asked; another host's is judged by age or expiry instead.
"""

from __future__ import annotations

import os
import re
import socket


def host_name() -> str:
    """This host's name, reduced to characters safe in file names."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def is_gone(pid: int) -> bool:
    """True when no process of this host has this id (a killed writer); another account's counts as alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
