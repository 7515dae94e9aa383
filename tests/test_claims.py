"""Job claims: a job is rendered by one call at a time; a dead owner's claims lapse; done jobs are
never claimed; concurrent callers split a campaign's jobs without overlap. On SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import insert, select, update

from pipelines import claims
from pipelines.claims import JobClaims
from pipelines.database import Database, claims_table, outputs_table
from pipelines.liveness import host_name


def fake_jobs(count: int) -> list[SimpleNamespace]:
    return [SimpleNamespace(key=f"{n:064x}", relative_path=f"c/{n}.png") for n in range(count)]


def keys(jobs: list) -> list[str]:
    return [job.key for job in jobs]


def hold(url: str, key: str, owner: str, expires: float) -> None:
    """A claim left in the database by another caller."""
    database = Database(url)
    with database.transaction() as connection:
        connection.execute(insert(claims_table).values(job_key=key, owner=owner, expires=expires))
    database.close()


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


def test_the_claims_of_a_dead_process_of_this_host_are_free_at_once(tmp_path: Path, any_database_url: str) -> None:
    url, jobs = any_database_url, fake_jobs(3)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    far_future = time.time() + 3600
    hold(url, jobs[0].key, f"{host_name()}:{dead.stdout.strip()}:dead0000", far_future)  # killed
    hold(url, jobs[1].key, "other-host:1:live0000", far_future)  # alive elsewhere, as far as we know
    hold(url, jobs[2].key, "other-host:2:gone0000", time.time() - 1)  # stopped renewing: expired
    with JobClaims(url, tmp_path) as claim:
        assert keys(claim.take(jobs)) == [jobs[0].key, jobs[2].key]


def test_a_job_recorded_since_the_plan_is_not_claimed(tmp_path: Path, any_database_url: str) -> None:
    url, jobs = any_database_url, fake_jobs(2)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "0.png").write_bytes(b"x" * 10)
    database = Database(url)
    with database.transaction() as connection:
        row = {"campaign": "c", "sha256": "", "watermark": "", "thumbnail": "", "compliance": "{}", "inputs": "{}"}
        connection.execute(
            insert(outputs_table).values(job_key=jobs[0].key, file="c/0.png", size=10, created="", ledger_id=1, **row)
        )
    with JobClaims(url, tmp_path) as claim:
        assert keys(claim.take(jobs)) == [jobs[1].key]
        assert keys(claim.unfinished(jobs)) == [jobs[1].key]
        with database.reading() as connection:  # the done job's claim was not kept
            assert list(connection.execute(select(claims_table.c.job_key)).scalars()) == [jobs[1].key]
    database.close()


def test_claims_are_renewed_while_their_caller_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, any_database_url: str
) -> None:
    monkeypatch.setattr(claims, "RENEW_EVERY_S", 0.05)
    url, jobs = any_database_url, fake_jobs(1)
    database = Database(url)
    with JobClaims(url, tmp_path) as claim:
        claim.take(jobs)
        with database.reading() as connection:
            first = connection.execute(select(claims_table.c.expires)).scalar_one()
        time.sleep(0.3)
        with database.reading() as connection:
            assert connection.execute(select(claims_table.c.expires)).scalar_one() > first
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


def test_jobs_are_abandoned_when_unfinished_and_no_live_caller_holds_any(tmp_path: Path, any_database_url: str) -> None:
    url, jobs = any_database_url, fake_jobs(2)
    database = Database(url)
    assert claims.abandoned(database, tmp_path, jobs)  # nobody on them: a worker that never claimed, or died
    hold(url, jobs[1].key, "other-host:1:live0000", time.time() + 30)
    assert not claims.abandoned(database, tmp_path, jobs)  # one is being renewed: the worker is alive
    with database.transaction() as connection:
        connection.execute(update(claims_table).values(expires=time.time() - 1))  # it stopped renewing
    assert claims.abandoned(database, tmp_path, jobs)
    database.close()
