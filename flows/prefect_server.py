"""A Prefect server behind the project's web guard, that ends with the process that started it.

    .venv/bin/python -m visuels.flows.prefect_server --port 4200 [--host 127.0.0.1] [--parent PID] [--temporary]

Prefect's own ``prefect server start`` answers any ``Host`` and any ``Origin``, so a web page the
user visits could drive it (DNS rebinding, cross-site POSTs: start, resume or cancel runs). This
serves the same app (``prefect.server.api.server.create_app``, its UI and services) behind
``visuels._internal.web_guard.LocalOnly``. ``make serve`` starts it for the pool; the CLI starts a
``--temporary`` one (no UI) for a run, instead of Prefect's ephemeral server, which a killed CLI
leaves running. With ``--parent``, it stops by itself when that process is gone, however it died.
Bound beyond loopback, ``make serve`` also turns on Prefect's API authentication and CSRF
protection (``visuels.flows.serve``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from visuels._internal.liveness import is_gone
from visuels.flows.processes import die_with_parent, free_port_or_refuse, stop, wait_until_healthy

PARENT_CHECK_S = 1.0
SERVER_CHECK_S = 1.0
SHUTDOWN_PATIENCE_S = 10.0
START_PATIENCE_S = 120.0  # a first start migrates Prefect's database: slow on a busy machine
DRAIN_PATIENCE_S = 15.0


def _stop_when_gone(parent: int) -> None:
    while not is_gone(parent):
        time.sleep(PARENT_CHECK_S)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's own shutdown: the database closed cleanly
    time.sleep(SHUTDOWN_PATIENCE_S)
    os._exit(0)


def command(port: int, host: str = "127.0.0.1", allowed: list[str] | None = None, temporary: bool = False) -> list[str]:
    """How to start one, watching the process that runs this."""
    arguments = [sys.executable, "-m", "visuels.flows.prefect_server", "--port", str(port), "--host", host]
    arguments += ["--parent", str(os.getpid())]
    for name in allowed or []:
        arguments += ["--allow-host", name]
    return arguments + (["--temporary"] if temporary else [])


@contextmanager
def temporary_server(port: int, on_lost: Callable[[], None] | None = None) -> Iterator[str]:
    """A Prefect server for one command's runs, on ``port`` of 127.0.0.1; yields its API URL. It
    stops when the block ends, and by itself if this process is killed. ``on_lost`` is called, from
    another thread, if the server stops by itself while the block runs (killed, out of memory)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    free_port_or_refuse(port)
    environment = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false")
    environment.pop("PREFECT_API_URL", None)
    server = subprocess.Popen(
        command(port, temporary=True),
        env=environment,
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=die_with_parent,
    )
    api_url = f"http://127.0.0.1:{port}/api"
    ended = threading.Event()
    try:
        wait_until_healthy(api_url, server, START_PATIENCE_S)
        if on_lost is not None:
            watch = threading.Thread(target=_watch, args=(server, ended, on_lost), daemon=True, name="server-watch")
            watch.start()
        with temporary_settings({PREFECT_API_URL: api_url}):
            try:
                yield api_url
            finally:
                ended.set()
                if server.poll() is None:  # nothing to send to a server that is gone
                    _send_what_is_queued()
    finally:
        ended.set()
        stop([server])


def _watch(server: subprocess.Popen, ended: threading.Event, on_lost: Callable[[], None]) -> None:
    while not ended.wait(SERVER_CHECK_S):
        if server.poll() is not None:
            on_lost()
            return


def _send_what_is_queued() -> None:
    """Send the run's queued logs and events while the server still answers: stopped first, the
    process would spend a minute retrying them at exit."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        service.drain_all(timeout=DRAIN_PATIENCE_S, at_exit=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--allow-host", action="append", default=[], help="a name it is reached by (repeatable)")
    parser.add_argument("--parent", type=int, help="stop when this process is gone")
    parser.add_argument("--temporary", action="store_true", help="for one command's runs: no UI")
    args = parser.parse_args(argv)
    if args.parent:
        threading.Thread(target=_stop_when_gone, args=(args.parent,), daemon=True, name="parent-watch").start()
    if args.temporary:
        os.environ["PREFECT_UI_ENABLED"] = "false"
    import uvicorn
    from prefect.server.api.server import create_app
    from visuels._internal.web_guard import LocalOnly

    # A temporary server runs no background services (scheduler, late runs...), as Prefect's own
    # ephemeral one: a command's runs need the API only, and it starts in seconds.
    app = LocalOnly(create_app(final=True, ephemeral=args.temporary), hosts=[args.host, *args.allow_host])
    uvicorn.run(app, host=args.host, port=args.port, log_level="error", lifespan="on", timeout_keep_alive=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
