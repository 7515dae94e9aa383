"""Job claims: which rendering call is rendering which job now, held in the database of record.

Two runs of one campaign at once (a nightly and a designer's, two machines, two shards that
overlap) split its jobs instead of rendering them twice: before a batch is generated, its jobs
are claimed, and a job another call holds is left to it. Export deletes a job's claim in the
transaction that records its file.

A claim names its owner (``host:pid:tag``, one per rendering call) and expires ``CLAIM_TTL_S``
after it was last renewed; the owner's keeper thread renews it every ``RENEW_EVERY_S`` while the
call runs. So a claim outlives its owner by at most a minute, and not at all when the owner was a
process of this host that is gone (a killed run: the next one need not wait). Hosts' clocks are
assumed to agree to within a few seconds (NTP). A render worker claims its whole chunk when it
starts it, so the run that sent the chunk can tell a worker at work from a dead one.

Claiming is one ``INSERT … ON CONFLICT (job_key) DO UPDATE … WHERE <the claim is free> RETURNING
job_key``: PostgreSQL locks each conflicting row for the statement, and SQLite's writers are
serialised (``BEGIN IMMEDIATE``), so two callers can never both get a job.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from sqlalchemy import Connection, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from pipelines import manifest
from pipelines.database import Database, DatabaseError, claims_table, outputs_table
from pipelines.jobs import RenderJob
from pipelines.liveness import host_name, is_gone

CLAIM_TTL_S = 40.0  # a dead owner on another host is noticed within a minute
RENEW_EVERY_S = 10.0
KEYS_PER_STATEMENT = 500  # bounded IN lists and VALUES, for any database


def new_owner() -> str:
    return f"{host_name()}:{os.getpid()}:{secrets.token_hex(4)}"


def _owner_is_gone(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return host == host_name() and pid.isdigit() and is_gone(int(pid))


def release_job(connection: Connection, key: str) -> None:
    """Drop a job's claim, in the caller's transaction (export: the job is done)."""
    connection.execute(delete(claims_table).where(claims_table.c.job_key == key))


def abandoned(database: Database, output_root: Path, jobs: list[RenderJob]) -> bool:
    """Some of ``jobs`` are not done, and none is claimed by a caller still renewing its claims:
    for the run that sent them to a render worker, the sign that the worker is gone."""
    with database.reading() as connection:
        if len(_done(connection, output_root, jobs)) == len(jobs):
            return False
        for part in _parts([job.key for job in jobs]):
            live = select(claims_table.c.job_key).where(
                claims_table.c.job_key.in_(part), claims_table.c.expires >= time.time()
            )
            if connection.execute(live.limit(1)).first() is not None:
                return False
    return True


def _done(connection: Connection, output_root: Path, jobs: list[RenderJob]) -> set[str]:
    """The keys of ``jobs`` whose file is recorded and on disk at its recorded size."""
    recorded: dict[str, tuple[str, int]] = {}
    for part in _parts([job.key for job in jobs]):
        rows = connection.execute(
            select(outputs_table.c.job_key, outputs_table.c.file, outputs_table.c.size).where(
                outputs_table.c.job_key.in_(part)
            )
        )
        recorded |= {key: (file, size) for key, file, size in rows}
    return {job.key for job in jobs if manifest.is_done(output_root, job.relative_path, recorded.get(job.key))}


def _parts(keys: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(keys), KEYS_PER_STATEMENT):
        yield keys[start : start + KEYS_PER_STATEMENT]


class JobClaims:
    """The claims of one rendering call; use as a context manager, which releases what is left."""

    def __init__(self, database_url: str, output_root: Path) -> None:
        self.owner = new_owner()
        self.output_root = output_root
        self._database = Database(database_url)
        self._stop = threading.Event()
        self._keeper = threading.Thread(target=self._renew_until_stopped, name="claims", daemon=True)

    def take(self, jobs: list[RenderJob]) -> list[RenderJob]:
        """Claim the jobs of ``jobs`` that are neither done nor claimed by a live caller; return those."""
        keys = [job.key for job in jobs]
        claimed: set[str] = set()
        with self._database.transaction() as connection:
            for part in _parts(keys):
                claimed |= self._claim(connection, part)
            done = _done(connection, self.output_root, [job for job in jobs if job.key in claimed])
            for key in done:  # recorded since this call's plan was made: nothing to render
                release_job(connection, key)
        return [job for job in jobs if job.key in claimed and job.key not in done]

    def unfinished(self, jobs: list[RenderJob]) -> list[RenderJob]:
        """The jobs of ``jobs`` whose file is not yet recorded and on disk."""
        with self._database.reading() as connection:
            done = _done(connection, self.output_root, jobs)
        return [job for job in jobs if job.key not in done]

    def _claim(self, connection: Connection, keys: list[str]) -> set[str]:
        now = time.time()
        owners = connection.execute(
            select(claims_table.c.owner).where(claims_table.c.job_key.in_(keys)).distinct()
        ).scalars()
        gone = [owner for owner in owners if owner != self.owner and _owner_is_gone(owner)]
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(claims_table).values(
            [{"job_key": key, "owner": self.owner, "expires": now + CLAIM_TTL_S} for key in keys]
        )
        free = or_(claims_table.c.expires < now, claims_table.c.owner == self.owner, claims_table.c.owner.in_(gone))
        statement = statement.on_conflict_do_update(
            index_elements=[claims_table.c.job_key],
            set_={"owner": statement.excluded.owner, "expires": statement.excluded.expires},
            where=free,
        ).returning(claims_table.c.job_key)
        return set(connection.execute(statement).scalars())

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(RENEW_EVERY_S):
            try:
                with self._database.transaction() as connection:
                    connection.execute(
                        update(claims_table)
                        .where(claims_table.c.owner == self.owner)
                        .values(expires=time.time() + CLAIM_TTL_S)
                    )
            except DatabaseError:
                continue  # busy: the claims last a few more renewals

    def __enter__(self) -> JobClaims:
        self._keeper.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._keeper.join()
        try:
            with self._database.transaction() as connection:
                connection.execute(delete(claims_table).where(claims_table.c.owner == self.owner))
        except DatabaseError:
            if error is None:
                raise
            # Already failing: that error is the one to report; these claims expire by themselves.
        finally:
            self._database.close()
