"""Is a process that left something behind (a temporary file, a job claim) still running?

Only a process of this machine can be asked. "This machine" is more than a host name: two
containers may share one (a fixed ``hostname:`` in compose) while each has its own process ids,
so a process is known by its machine id, the host name with a hash of the kernel's boot id and
the pid namespace. A process of another machine id is judged by age or by expiry instead.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
PID_NAMESPACE = Path("/proc/self/ns/pid")


def host_name() -> str:
    """This host's name, reduced to characters safe in file names."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def machine_id() -> str:
    """Where this process's id means something: ``<host>-<hash of boot id and pid namespace>``.

    Without /proc (not Linux) it is the host name alone, and host names must then be unique.
    """
    try:
        where = BOOT_ID.read_text().strip() + os.readlink(PID_NAMESPACE)
    except OSError:
        return host_name()
    return f"{host_name()}-{hashlib.sha256(where.encode()).hexdigest()[:10]}"


def is_gone(pid: int) -> bool:
    """True when no process of this machine has this id (a killed writer), or only its zombie: a
    killed process waits there until its parent (or, the parent killed too, whoever adopts it)
    collects it, which in a container may be never. Another account's process counts as alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False  # no /proc (not Linux): the signal's answer stands
    return state in ("Z", "X")
