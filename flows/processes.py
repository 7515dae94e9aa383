"""Starting and stopping the processes a command or ``make serve`` runs, so that none outlives it.

A child started with ``die_with_parent`` gets SIGTERM from Linux when its parent dies, even of a
SIGKILL; ``stop`` asks, then kills what is still running after a while; a port already taken is
refused in one line before anything starts.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import suppress

from visuels.errors import OperationalError

STOP_PATIENCE_S = 20.0  # how long stopping waits for a process before it kills it
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child, before it runs (``preexec_fn``): Linux sends it SIGTERM when the process that
    started it dies. Elsewhere nothing happens: children then watch their parent's pid themselves."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_port_or_refuse(port: int, host: str = "127.0.0.1") -> None:
    """Refuse to start on a port something already listens on (a server of an earlier start that
    still runs would otherwise answer in the new one's place)."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            raise OperationalError(
                f"port {port}",
                None,
                "is taken: a server from another start still runs there (stop it), or choose another --port",
            ) from None


def wait_until_healthy(api_url: str, server: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the Prefect server did not answer on {api_url} within {timeout:.0f} s")


def stop(processes: list[subprocess.Popen], patience_s: float = STOP_PATIENCE_S) -> None:
    """Ask each process to stop (the last started first), then kill those still running after
    ``patience_s``: a worker that waits on a run's process must not keep Ctrl-C waiting."""
    for process in reversed(processes):
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + patience_s
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
