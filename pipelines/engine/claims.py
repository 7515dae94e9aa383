"""Job claims: which rendering call is rendering which job now, held in the database of record.

Two runs of one campaign at once (a nightly and a designer's, two machines, two shards that
overlap) split its jobs instead of rendering them twice: before a batch is generated, its jobs
are claimed, and a job another call holds is left to it.

A claim is a lease. Each rendering call registers an owner (a random id, with its machine and
process, in ``claim_owners``) and renews that one row every eighth of the lease, each try waiting
at most a tenth of it for a lock; its claims are free once the lease has lapsed (the
``claim_lease_s`` setting, 40 s by default, after the last renewal: a dead owner on another
machine is noticed within a minute),
or at once when the owner was a process of this machine that is gone (``visuels._internal.liveness``: a
container sharing the host name is another machine). A lapsed lease is never renewed again.

An owner that cannot renew stops before its lease can lapse: once five eighths of the lease
have passed since its last renewal, ``take`` and ``check`` raise, so it starts no more work and
its run fails loudly. What it has already generated is protected by the fence: export confirms,
in the transaction that records a file and before the file is moved into place, that the job's
claim is still this owner's, and only then deletes it (``settle``). A claim is released only by
its owner, only when its file is recorded. Leases are written and compared by the database
server's clock (``visuels.record.database.clock``): machines whose own clocks disagree (a host
without NTP) still agree on which lease is live. A render worker claims its whole chunk when it
starts it, so the run that sent the chunk can tell a worker at work from a dead one.

Claiming is one ``INSERT … ON CONFLICT (job_key) DO UPDATE … WHERE <the claim is free> RETURNING
job_key``: PostgreSQL locks each conflicting row for the statement, and SQLite's writers are
serialised (``BEGIN IMMEDIATE``), so two callers can never both get a job.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from pathlib import Path
from types import TracebackType

from sqlalchemy import Connection, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from visuels._internal.liveness import host_name, is_gone, machine_id
from visuels.config import settings
from visuels.errors import WorkerLostError
from visuels.planning.jobs import RenderJob
from visuels.record import manifest
from visuels.record.database import (
    Database,
    DatabaseError,
    claim_owners_table,
    claims_table,
    clock,
    in_parts,
)

log = logging.getLogger(__name__)

# Shares of the lease (the ``claim_lease_s`` setting): with the default 40 s, renewed every 5 s,
# each renewal waiting 4 s for a lock (then tried again at the next turn), and an owner that could
# not renew stopping 15 s before its lease would lapse.
RENEW_EVERY_SHARE = 1 / 8
RENEW_PATIENCE_SHARE = 1 / 10
STOP_MARGIN_SHARE = 3 / 8
FORGET_OWNERS_AFTER_S = 3600.0  # lapsed owners' rows are deleted by the next owner to register


def settle(connection: Connection, key: str, owner: str) -> None:
    """In the transaction that records ``key``'s file, before the file is moved into place: confirm
    the claim is ``owner``'s, and release it. Another owner's claim (this one's lapsed and was
    taken) or none at all: ``WorkerLostError``, and the caller records nothing."""
    query = select(claims_table.c.owner).where(claims_table.c.job_key == key)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()  # a taker waits until this transaction ends
    holder = connection.execute(query).scalar_one_or_none()
    if holder != owner:
        raise WorkerLostError(
            key[:12],
            None,
            "this run's claim on the picture lapsed before it was recorded (it could not renew it in time);"
            + (" another run is rendering it" if holder else " it was released")
            + ": it is not recorded here",
        )
    connection.execute(delete(claims_table).where(claims_table.c.job_key == key, claims_table.c.owner == owner))


def abandoned(database: Database, output_root: Path, jobs: list[RenderJob]) -> bool:
    """Some of ``jobs`` are not done, and none is claimed by an owner whose lease is live: for the
    run that sent them to a render worker, the sign that the worker is gone."""
    with database.reading() as connection:
        if len(_done(connection, output_root, jobs)) == len(jobs):
            return False
        now = clock(connection)
        for part in in_parts([job.key for job in jobs]):
            live = (
                select(claims_table.c.job_key)
                .join(claim_owners_table, claim_owners_table.c.owner == claims_table.c.owner)
                .where(claims_table.c.job_key.in_(part), claim_owners_table.c.expires >= now)
            )
            if connection.execute(live.limit(1)).first() is not None:
                return False
    return True


def _done(connection: Connection, output_root: Path, jobs: list[RenderJob]) -> set[str]:
    """The keys of ``jobs`` whose file is recorded and on disk as it was exported."""
    recorded = manifest.recorded_of(connection, [job.key for job in jobs])
    return {job.key for job in jobs if manifest.is_done(output_root, job.relative_path, recorded.get(job.key))}


def _free_owners(connection: Connection, owners: set[str], now: float) -> list[str]:
    """Of ``owners``, those whose claims anyone may take: no lease, a lapsed one, or a process of
    this machine that is gone. A lapsed lease is never renewed, so the answer cannot go stale."""
    if not owners:
        return []
    rows = connection.execute(
        select(
            claim_owners_table.c.owner,
            claim_owners_table.c.machine,
            claim_owners_table.c.pid,
            claim_owners_table.c.expires,
        ).where(claim_owners_table.c.owner.in_(owners))
    ).all()
    live = {
        owner
        for owner, machine, pid, expires in rows
        if expires >= now and not (machine == machine_id() and is_gone(pid))
    }
    return sorted(owners - live)


class JobClaims:
    """The claims of one rendering call; use as a context manager, which registers its lease, keeps
    it renewed, and releases what is left at the end."""

    def __init__(
        self,
        database_url: str,
        output_root: Path,
        lease_s: float | None = None,
        renew_every_s: float | None = None,
        renew_patience_s: float | None = None,
        stop_margin_s: float | None = None,
    ) -> None:
        self.owner = secrets.token_hex(8)
        self.output_root = output_root
        self.lease_s = settings().claim_lease_s if lease_s is None else lease_s
        self.renew_every_s = renew_every_s or self.lease_s * RENEW_EVERY_SHARE
        self.renew_patience_s = renew_patience_s or self.lease_s * RENEW_PATIENCE_SHARE
        self.stop_margin_s = stop_margin_s or self.lease_s * STOP_MARGIN_SHARE
        self.lost_reason: str | None = None  # set by the keeper when the lease can no longer be trusted
        self._database_url = database_url
        self._database: Database | None = None
        self._stop = threading.Event()
        self._keeper = threading.Thread(target=self._renew_until_stopped, name="claims", daemon=True)

    @property
    def database(self) -> Database:
        if self._database is None:
            raise RuntimeError("JobClaims is used as a context manager: `with JobClaims(...) as claims:`")
        return self._database

    def check(self) -> None:
        """Raise ``WorkerLostError`` when this owner's lease can no longer be trusted: start nothing more."""
        if self.lost_reason is not None:
            raise WorkerLostError(
                "claims",
                None,
                "this run stopped: {lost_reason}; run it again to render what is missing",
                lost_reason=self.lost_reason,
            )

    def take(self, jobs: list[RenderJob]) -> list[RenderJob]:
        """Claim the jobs of ``jobs`` that are neither done nor claimed by a live owner; return those."""
        self.check()
        keys = [job.key for job in jobs]
        claimed: set[str] = set()
        with self.database.transaction() as connection:
            for part in in_parts(keys):
                claimed |= self._claim(connection, part)
            done = _done(connection, self.output_root, [job for job in jobs if job.key in claimed])
            for key in done:  # recorded since this call's plan was made: nothing to render
                connection.execute(delete(claims_table).where(claims_table.c.job_key == key))
        return [job for job in jobs if job.key in claimed and job.key not in done]

    def unfinished(self, jobs: list[RenderJob]) -> list[RenderJob]:
        """The jobs of ``jobs`` whose file is not yet recorded and on disk."""
        with self.database.reading() as connection:
            done = _done(connection, self.output_root, jobs)
        return [job for job in jobs if job.key not in done]

    def claimable(self, jobs: list[RenderJob]) -> list[RenderJob]:
        """Read-only: the jobs of ``jobs`` held by no live owner (nobody's, or a lapsed or dead one's).
        A call waiting for others asks this first and claims only when it finds some."""
        holders: dict[str, str] = {}
        with self.database.reading() as connection:
            now = clock(connection)
            for part in in_parts([job.key for job in jobs]):
                rows = connection.execute(
                    select(claims_table.c.job_key, claims_table.c.owner).where(claims_table.c.job_key.in_(part))
                )
                holders |= dict(rows.all())
            free = set(_free_owners(connection, set(holders.values()) - {self.owner}, now))
        return [job for job in jobs if holders.get(job.key) in free or job.key not in holders]

    def _claim(self, connection: Connection, keys: list[str]) -> set[str]:
        now = clock(connection)
        owners = set(
            connection.execute(
                select(claims_table.c.owner).where(claims_table.c.job_key.in_(keys)).distinct()
            ).scalars()
        )
        free = _free_owners(connection, owners - {self.owner}, now)
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(claims_table).values([{"job_key": key, "owner": self.owner} for key in keys])
        statement = statement.on_conflict_do_update(
            index_elements=[claims_table.c.job_key],
            set_={"owner": statement.excluded.owner},
            where=or_(claims_table.c.owner == self.owner, claims_table.c.owner.in_(free)),
        ).returning(claims_table.c.job_key)
        return set(connection.execute(statement).scalars())

    def _register(self) -> None:
        with self.database.transaction() as connection:
            now = clock(connection)
            connection.execute(
                delete(claim_owners_table).where(claim_owners_table.c.expires < now - FORGET_OWNERS_AFTER_S)
            )
            connection.execute(
                insert(claim_owners_table).values(
                    owner=self.owner,
                    host=host_name(),
                    machine=machine_id(),
                    pid=os.getpid(),
                    expires=now + self.lease_s,
                )
            )

    def _renew(self) -> bool:
        """Extend the lease; False when it had lapsed already (then it stays lapsed)."""
        with self.database.transaction(patience_s=self.renew_patience_s) as connection:
            now = clock(connection)
            renewed = connection.execute(
                update(claim_owners_table)
                .where(claim_owners_table.c.owner == self.owner, claim_owners_table.c.expires >= now)
                .values(expires=now + self.lease_s)
            )
        return renewed.rowcount == 1

    def _renew_until_stopped(self) -> None:
        last_renewed = time.monotonic()
        while not self._stop.wait(self.renew_every_s):
            try:
                if not self._renew():
                    self._lose("its lease on its jobs lapsed before it could be renewed")
                    return
                last_renewed = time.monotonic()
            except DatabaseError as exc:
                late = time.monotonic() - last_renewed
                log.warning("could not renew the claims of this run (%.0f s since the last renewal): %s", late, exc)
                if late > self.lease_s - self.stop_margin_s:
                    self._lose(f"it could not renew its claims for {late:.0f} s ({exc.message})")
                    return
            except Exception as exc:  # a bug must not silently end the renewals: stop the run instead
                log.exception("the claims keeper failed")
                self._lose(f"its claims keeper failed ({type(exc).__name__}: {exc})")
                return

    def _lose(self, reason: str) -> None:
        log.error("this run stops taking work: %s", reason)
        self.lost_reason = reason

    def __enter__(self) -> JobClaims:
        self._database = Database(self._database_url)
        try:
            self._register()
        except BaseException:
            self._database.close()
            raise
        self._keeper.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._keeper.join()
        try:
            with self.database.transaction() as connection:
                connection.execute(delete(claims_table).where(claims_table.c.owner == self.owner))
                connection.execute(delete(claim_owners_table).where(claim_owners_table.c.owner == self.owner))
        except DatabaseError:
            if error is None:
                raise
            # Already failing: that error is the one to report; the lease lapses by itself.
        finally:
            self.database.close()
