"""Job claims: a job is rendered by one call at a time; claims are leases of registered owners;
a dead owner's claims lapse; an owner that cannot renew stops; only the owner releases a claim,
when its file is recorded; concurrent callers split a campaign's jobs without overlap. On SQLite
and PostgreSQL."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import insert, select, text, update
from visuels._internal.liveness import host_name, machine_id
from visuels.engine import claims
from visuels.engine.claims import JobClaims
from visuels.errors import WorkerLostError
from visuels.record import manifest
from visuels.record.database import Database, DatabaseError, claim_owners_table, claims_table, outputs_table

QUICK = {"lease_s": 1.2, "renew_every_s": 0.1, "renew_patience_s": 0.1, "stop_margin_s": 0.6}


def fake_jobs(count: int) -> list[SimpleNamespace]:
    return [SimpleNamespace(key=f"{n:064x}", relative_path=f"c/{n}.png") for n in range(count)]


def keys(jobs: list) -> list[str]:
    return [job.key for job in jobs]


def hold(
    url: str, key: str, owner: str, expires: float, machine: str = "other-machine", pid: int = 1, host: str = "other"
) -> None:
    """A claim left in the database by another caller, with its lease."""
    database = Database(url)
    with database.transaction() as connection:
        known = connection.execute(select(claim_owners_table.c.owner).where(claim_owners_table.c.owner == owner))
        if known.first() is None:
            connection.execute(
                insert(claim_owners_table).values(owner=owner, host=host, machine=machine, pid=pid, expires=expires)
            )
        connection.execute(insert(claims_table).values(job_key=key, owner=owner))
    database.close()


def dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout)


def test_a_claimed_job_is_not_given_to_another_caller_until_released(tmp_path: Path, any_database_url: str) -> None:
    url, jobs = any_database_url, fake_jobs(4)
    with JobClaims(url, tmp_path) as first:
        assert keys(first.take(jobs[:3])) == keys(jobs[:3])
        with JobClaims(url, tmp_path) as second:
            assert keys(second.take(jobs)) == keys(jobs[3:])  # only the one nobody holds
            assert first.take(jobs[3:]) == []
            assert keys(first.take(jobs[:1])) == keys(jobs[:1])  # its own claims stay its own
    with JobClaims(url, tmp_path) as third:  # both released theirs on leaving
        assert keys(third.take(jobs)) == keys(jobs)
    database = Database(url)
    with database.reading() as connection:  # and their leases with them
        assert connection.execute(select(claim_owners_table)).first() is None
    database.close()


def test_the_claims_of_a_dead_process_of_this_machine_are_free_at_once(tmp_path: Path, any_database_url: str) -> None:
    url, jobs = any_database_url, fake_jobs(3)
    far_future = time.time() + 3600
    hold(url, jobs[0].key, "killed", far_future, machine=machine_id(), pid=dead_pid())
    hold(url, jobs[1].key, "alive-elsewhere", far_future)  # alive, as far as its lease says
    hold(url, jobs[2].key, "stopped-renewing", time.time() - 1)  # its lease lapsed
    with JobClaims(url, tmp_path) as claim:
        assert keys(claim.claimable(jobs)) == [jobs[0].key, jobs[2].key]  # read-only, the same answer
        assert keys(claim.take(jobs)) == [jobs[0].key, jobs[2].key]


def test_a_killed_process_nobody_has_collected_yet_holds_nothing(tmp_path: Path, any_database_url: str) -> None:
    """A killed process stays a zombie until its parent collects it (in a container, maybe never):
    its claims and its half-written files are free all the same."""
    import subprocess

    from visuels._internal.atomic import remove_leftover_temporaries
    from visuels._internal.liveness import is_gone

    child = subprocess.Popen(["sleep", "60"])
    child.kill()
    deadline = time.monotonic() + 10
    while not is_gone(child.pid) and time.monotonic() < deadline:  # dead, not yet waited for
        time.sleep(0.05)
    try:
        assert Path(f"/proc/{child.pid}").exists()  # still there, as a zombie
        assert is_gone(child.pid)
        url, jobs = any_database_url, fake_jobs(1)
        hold(url, jobs[0].key, "killed", time.time() + 3600, machine=machine_id(), pid=child.pid)
        with JobClaims(url, tmp_path) as claim:
            assert keys(claim.take(jobs)) == [jobs[0].key]
        leftover = tmp_path / "out" / f".a.png.{machine_id()}.{child.pid}.0a1b2c3d.tmp"
        leftover.parent.mkdir()
        leftover.write_bytes(b"half")
        assert remove_leftover_temporaries(tmp_path / "out") == 1
    finally:
        child.wait()


def test_a_container_sharing_the_host_name_is_another_machine(tmp_path: Path, any_database_url: str) -> None:
    """Same host name, another pid namespace: its pid means nothing here, so its live claims stay its own."""
    url, jobs = any_database_url, fake_jobs(1)
    twin = f"{host_name()}-0123456789"  # a container with this host's name, as a compose file can give
    assert twin != machine_id()
    hold(url, jobs[0].key, "container", time.time() + 3600, machine=twin, pid=dead_pid(), host=host_name())
    with JobClaims(url, tmp_path) as claim:
        assert claim.take(jobs) == []


def test_a_job_recorded_since_the_plan_is_not_claimed(tmp_path: Path, any_database_url: str) -> None:
    url, jobs = any_database_url, fake_jobs(2)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "0.png").write_bytes(b"x" * 10)
    created = "2026-12-06T10:00:00+00:00"
    manifest.stamp_as_exported(tmp_path / "c" / "0.png", created)
    database = Database(url)
    with database.transaction() as connection:
        row = {"campaign": "c", "sha256": "", "watermark": "", "thumbnail": "", "compliance": "{}", "inputs": "{}"}
        connection.execute(
            insert(outputs_table).values(
                job_key=jobs[0].key, file="c/0.png", size=10, created=created, ledger_id=1, **row
            )
        )
    with JobClaims(url, tmp_path) as claim:
        assert keys(claim.take(jobs)) == [jobs[1].key]
        assert keys(claim.unfinished(jobs)) == [jobs[1].key]
        with database.reading() as connection:  # the done job's claim was not kept
            assert list(connection.execute(select(claims_table.c.job_key)).scalars()) == [jobs[1].key]
    database.close()


def _lease(database: Database, owner: str) -> float:
    with database.reading() as connection:
        query = select(claim_owners_table.c.expires).where(claim_owners_table.c.owner == owner)
        return connection.execute(query).scalar_one()


def test_the_lease_is_renewed_while_its_caller_runs(tmp_path: Path, any_database_url: str) -> None:
    url, jobs = any_database_url, fake_jobs(1)
    database = Database(url)
    with JobClaims(url, tmp_path, **QUICK) as claim:
        claim.take(jobs)
        first = _lease(database, claim.owner)
        time.sleep(0.5)
        assert _lease(database, claim.owner) > first
        assert claim.lost_reason is None
        claim.check()
    database.close()


def test_a_lapsed_lease_is_never_renewed_and_its_owner_stops(tmp_path: Path, any_database_url: str) -> None:
    url, jobs = any_database_url, fake_jobs(2)
    database = Database(url)
    with JobClaims(url, tmp_path, **QUICK | {"renew_every_s": 30.0}) as claim:
        claim.take(jobs[:1])
        with database.transaction() as connection:  # it was paused longer than its lease
            connection.execute(update(claim_owners_table).values(expires=time.time() - 1))
        assert not claim._renew()
        with database.reading() as connection:
            assert _lease(database, claim.owner) < time.time()  # still lapsed: anyone may take its jobs
    database.close()


def test_a_renewal_that_keeps_failing_stops_the_owner_before_its_lease_lapses(
    tmp_path: Path, any_database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url, jobs = any_database_url, fake_jobs(2)

    def unreachable(self: JobClaims) -> bool:
        raise DatabaseError(url, None, "could not connect to server")

    monkeypatch.setattr(JobClaims, "_renew", unreachable)
    with caplog.at_level(logging.WARNING, logger="visuels.engine.claims"), JobClaims(url, tmp_path, **QUICK) as claim:
        claim.take(jobs[:1])
        started = time.monotonic()
        while claim.lost_reason is None and time.monotonic() - started < 5:
            time.sleep(0.05)
        stopped_after = time.monotonic() - started
        assert claim.lost_reason is not None and "could not renew" in claim.lost_reason
        assert stopped_after < QUICK["lease_s"]  # before the lease could lapse and another take its jobs
        with pytest.raises(WorkerLostError, match="this run stopped"):
            claim.take(jobs[1:])
    assert "could not renew the claims" in caplog.text  # every failed renewal is logged


def test_a_lock_held_longer_than_the_renewal_waits_stops_the_owner(tmp_path: Path, any_database_url: str) -> None:
    """A slow lock: another writer holds the database (SQLite) or the owner's row (PostgreSQL)."""
    url, jobs = any_database_url, fake_jobs(1)
    database = Database(url)
    with JobClaims(url, tmp_path, **QUICK) as claim:
        claim.take(jobs)
        with database.engine.connect() as blocker:
            transaction = blocker.begin()
            if database.is_sqlite:
                blocker.exec_driver_sql("UPDATE claims SET owner = owner WHERE 0")  # holds the write lock
            else:
                blocker.execute(text("SELECT 1 FROM claim_owners FOR UPDATE"))
            started = time.monotonic()
            while claim.lost_reason is None and time.monotonic() - started < 5:
                time.sleep(0.05)
            transaction.rollback()
        assert claim.lost_reason is not None
        with pytest.raises(WorkerLostError):
            claim.check()
    database.close()


def test_only_the_owner_settles_its_claim_and_only_while_it_holds_it(tmp_path: Path, any_database_url: str) -> None:
    url, jobs = any_database_url, fake_jobs(2)
    database = Database(url)
    with JobClaims(url, tmp_path) as late, JobClaims(url, tmp_path) as taker:
        late.take(jobs)
        with database.transaction() as connection:  # late's lease lapsed (a long pause)...
            connection.execute(
                update(claim_owners_table).where(claim_owners_table.c.owner == late.owner).values(expires=0.0)
            )
        assert keys(taker.take(jobs[:1])) == keys(jobs[:1])  # ...and another run took one of its jobs
        with pytest.raises(WorkerLostError, match="another run is rendering it"), database.transaction() as connection:
            claims.settle(connection, jobs[0].key, late.owner)
        with database.transaction() as connection:  # the taker's claim is untouched, and settles
            claims.settle(connection, jobs[0].key, taker.owner)
        with pytest.raises(WorkerLostError, match="it was released"), database.transaction() as connection:
            claims.settle(connection, jobs[0].key, late.owner)
        with database.transaction() as connection:  # its other job, nobody took: still its own
            claims.settle(connection, jobs[1].key, late.owner)
    database.close()


def test_callers_at_once_split_the_jobs_and_none_is_claimed_twice(tmp_path: Path, any_database_url: str) -> None:
    url, jobs = any_database_url, fake_jobs(120)
    Database(url).close()  # the schema, before the race
    taken: list[list[str]] = [[] for _ in range(4)]
    start, end = threading.Barrier(4), threading.Barrier(4)

    def caller(number: int) -> None:
        with JobClaims(url, tmp_path) as claim:
            start.wait()
            for first in range(0, len(jobs), 5):  # batch by batch, all in the same order: the worst case
                taken[number] += keys(claim.take(jobs[first : first + 5]))
            end.wait()  # nothing is exported here: leaving would release the claims for the others

    threads = [threading.Thread(target=caller, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [key for part in taken for key in part]
    assert sorted(everything) == sorted(keys(jobs))  # each job exactly once, whoever was quickest


def test_jobs_are_abandoned_when_unfinished_and_no_live_owner_holds_any(tmp_path: Path, any_database_url: str) -> None:
    url, jobs = any_database_url, fake_jobs(2)
    database = Database(url)
    assert claims.abandoned(database, tmp_path, jobs)  # nobody on them: a worker that never claimed, or died
    hold(url, jobs[1].key, "worker", time.time() + 30)
    assert not claims.abandoned(database, tmp_path, jobs)  # its lease is live: the worker is alive
    with database.transaction() as connection:
        connection.execute(update(claim_owners_table).values(expires=time.time() - 1))  # it stopped renewing
    assert claims.abandoned(database, tmp_path, jobs)
    database.close()


@pytest.mark.parametrize("drift_s", [120.0, -120.0])
def test_machines_whose_clocks_drift_compare_leases_by_the_servers_clock(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, drift_s: float
) -> None:
    """A render machine sharing PostgreSQL whose own clock runs two minutes ahead (a host without NTP)
    saw a live owner's lease as lapsed and took its jobs; one running behind registered a lease that
    was lapsed already for the others. Leases are read and written by the server's clock."""
    from uuid import uuid4

    from tests.postgres import new_database

    url, jobs = new_database(postgres_url, f"test_{uuid4().hex[:12]}"), fake_jobs(4)
    true_time = time.time
    with JobClaims(url, tmp_path, renew_every_s=30.0) as on_time:
        assert keys(on_time.take(jobs[:2])) == keys(jobs[:2])
        with monkeypatch.context() as patched:
            patched.setattr(time, "time", lambda: true_time() + drift_s)  # this process's clock
            with JobClaims(url, tmp_path, renew_every_s=30.0) as drifted:
                assert keys(drifted.take(jobs)) == keys(jobs[2:])  # the on-time owner's are live
                assert drifted.claimable(jobs) == []
                assert not claims.abandoned(drifted.database, tmp_path, jobs)
                patched.undo()
                assert keys(on_time.take(jobs)) == keys(jobs[:2])  # its own, and no more
                assert on_time.claimable(jobs[2:]) == []  # the drifted owner's lease is live too
