"""A throwaway PostgreSQL server for tests: Debian's `postgresql` package, a cluster in a temporary
folder, listening on 127.0.0.1 only, run as the `postgres` account (``initdb`` refuses root)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from visuels.flows.processes import free_port

BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)  # the newest version first


def missing_reason() -> str | None:
    """Why no server can be started here, or None."""
    if not BINARIES or not (BINARIES[0] / "initdb").is_file():
        return "PostgreSQL is not installed (Debian's postgresql package)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres account to run the server as"
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != "postgres":
        return "the server runs as the postgres account: needs root or that account"
    return None


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server with its data in a new temporary folder (one the postgres account can reach:
    pytest's own are its owner's only); yield the SQLAlchemy URL of its database `visuels`."""
    binaries = BINARIES[0]
    folder = Path(tempfile.mkdtemp(prefix="visuels-postgres-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    run = {"check": True, "capture_output": True, "text": True, "timeout": 120}
    subprocess.run(_as_postgres([str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]), **run)
    port = free_port()
    start_server(folder, port)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([str(binaries / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)]).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError((folder / "log").read_text())
            time.sleep(0.2)
        subprocess.run(
            [str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "visuels"], **run
        )
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/visuels"
    finally:
        subprocess.run(
            _as_postgres([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            timeout=120,
        )
        # Hundreds of databases' files: removed in the background, so that a slow disk at the end
        # of the session never counts against the last test's time limit.
        subprocess.Popen(["rm", "-rf", str(folder)], start_new_session=True)


def start_server(folder: Path, port: int) -> None:
    """Start the server whose cluster is in ``folder``/data (made by ``postgres_server``) on ``port``."""
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} -c fsync=off"
    command = [str(BINARIES[0] / "pg_ctl"), "-D", str(folder / "data"), "-o", options, "-l", str(folder / "log")]
    subprocess.run(_as_postgres([*command, "-w", "start"]), check=True, capture_output=True, timeout=120)


def stop_server(url: str) -> tuple[Path, int]:
    """Stop the server of ``url`` (started by ``postgres_server``), as a restart or a failover
    would; its folder and port, to start it again with ``start_server``."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    for pid_file in Path(tempfile.gettempdir()).glob("visuels-postgres-*/data/postmaster.pid"):
        if str(port) in pid_file.read_text().splitlines()[3:4]:
            folder = pid_file.parent.parent
            command = [str(BINARIES[0] / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "-w", "stop"]
            subprocess.run(_as_postgres(command), check=True, capture_output=True, timeout=120)
            return folder, port
    raise LookupError(f"no server of this session listens on port {port}")


def new_database(server_url: str, name: str) -> str:
    """Create an empty database ``name`` on the server of ``server_url``; return its URL."""
    from sqlalchemy import create_engine

    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        engine.dispose()
    return f"{server_url.rsplit('/', 1)[0]}/{name}"
