"""The database of record, on SQLite and on PostgreSQL: migrations build the tables queries use
and bring an older database under them without losing a row; the ledger refuses updates and
deletes; concurrent writers never fork its hash chain; a signed checkpoint pins one snapshot."""

from __future__ import annotations

import datetime
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, event, func, inspect, select
from visuels.marking.checkpoints import checkpoint_problems, write_checkpoint
from visuels.marking.keys import signing_files
from visuels.record import ledger
from visuels.record.database import READ_AT_ONCE, Database, DatabaseError, DatabaseOptionError, ledger_table, metadata
from visuels.record.ledger import LedgerEntry


def entry(number: int) -> LedgerEntry:
    """A ledger row; its seed beyond 32 bits, as campaigns' seeds are."""
    return LedgerEntry(
        file=f"c/{number}.png",
        sha256=f"{number:064x}",
        phash="0" * 16,
        watermark=f"{number:016x}",
        job_key=f"{number:064x}",
        model_hash="m",
        lora_hash=None,
        charter_hash="c",
        prompt="p",
        seed=2**40 + number,
        width=8,
        height=8,
    )


def test_the_migrated_schema_is_the_one_queries_use(any_database_url: str) -> None:
    database = Database(any_database_url)
    with database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    database.close()


def test_a_postgresql_url_as_libpq_writes_it_opens_with_the_driver_visuels_ships(postgres_url: str) -> None:
    """``postgresql://`` and ``postgres://`` (as psql, Django and hosting panels write them) read
    with psycopg 3; a driver this machine lacks, or another database, is one line of bad input."""
    from tests.postgres import new_database

    url = new_database(postgres_url, "test_libpq_url")
    for written in (
        url.replace("postgresql+psycopg://", "postgresql://"),
        url.replace("postgresql+psycopg://", "postgres://"),
    ):
        database = Database(written)
        with database.transaction() as connection:
            ledger.append(connection, entry(1))
        assert ledger.verify_chain(database)[1] is None and database.url == written  # messages say it as written
        database.close()
    for other, said in [
        (url.replace("+psycopg", "+psycopg2"), "no psycopg2 driver here"),
        ("mysql://visuels@127.0.0.1/visuels", "kept in SQLite or PostgreSQL, not mysql"),
    ]:
        with pytest.raises(DatabaseOptionError, match=said):
            Database(other)


def test_the_ledger_refuses_updates_and_deletes_even_after_its_trigger_was_dropped(any_database_url: str) -> None:
    database = Database(any_database_url)
    with database.transaction() as connection:
        ledger.append(connection, entry(1))
    for statement in ("UPDATE ledger SET prompt = 'other'", "DELETE FROM ledger"):
        with pytest.raises(DatabaseError, match="append-only"), database.transaction() as connection:
            connection.exec_driver_sql(statement)
    trigger = "ledger_append_only ON ledger" if "postgresql" in any_database_url else "ledger_no_delete"
    with database.transaction() as connection:
        connection.exec_driver_sql(f"DROP TRIGGER {trigger}")
    database.close()
    reopened = Database(any_database_url)  # opening the record puts the guard back
    with pytest.raises(DatabaseError, match="append-only"), reopened.transaction() as connection:
        connection.exec_driver_sql("DELETE FROM ledger")
    reopened.close()


def test_writers_at_once_never_fork_the_chain(any_database_url: str) -> None:
    Database(any_database_url).close()  # the schema, before the race
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def writer(number: int) -> None:
        database = Database(any_database_url)
        start.wait()
        try:
            for index in range(15):
                with database.transaction() as connection:
                    ledger.append(connection, entry(number * 100 + index))
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    database = Database(any_database_url)
    assert ledger.verify_chain(database) == (60, None)  # one chain, every row on it
    with database.reading() as connection:
        assert connection.execute(select(func.count(func.distinct(ledger_table.c.previous_hash)))).scalar() == 60
    database.close()


def test_a_database_made_before_migrations_is_brought_under_them_with_its_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'visuels.sqlite'}"
    old = create_engine(url)
    with old.begin() as connection:  # the tables as the release before migrations made them
        metadata.create_all(connection)
        ledger.append(connection, entry(0))
        newer = ("ledger_one_successor", "claims_owner", "ledger_sha256", "review_pictures_campaign")  # migrations
        for statement in [
            *(f"DROP INDEX {index}" for index in newer),
            "DROP TABLE claims",
            "DROP TABLE claim_owners",
            "DROP TABLE label_reports",
            "DROP TABLE campaign_folders",
            "DROP TABLE review_pictures",
            "ALTER TABLE ledger DROP COLUMN key_visual",
            "ALTER TABLE ledger DROP COLUMN model_licence",
            "ALTER TABLE ledger DROP COLUMN licence_override",
            "ALTER TABLE ledger DROP COLUMN noise_mark",
        ]:
            connection.exec_driver_sql(statement)
    old.dispose()
    database = Database(url)
    with database.transaction() as connection:
        ledger.append(connection, entry(1))
    database.close()
    database = Database(url)  # opened again: nothing left to migrate
    assert ledger.verify_chain(database) == (2, None)  # its row kept, one added
    database.close()
    with create_engine(url).connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == "0010"
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []


def test_a_database_server_restarted_mid_run_is_waited_for_not_taken_for_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The PostgreSQL server restarted (a maintenance, a managed database's failover) while a render
    ran: the next picture's record failed with "connection refused" and the whole run stopped, to be
    run again. A server reached once is now asked again for up to half a minute, then said."""
    from visuels.record import database as database_module

    from tests.postgres import missing_reason, postgres_server, start_server, stop_server

    if missing_reason() is not None:
        pytest.skip(missing_reason())
    with postgres_server() as url:  # its own server: the session's serves other tests meanwhile
        database = Database(url)
        with database.transaction() as connection:
            ledger.append(connection, entry(0))
        folder, port = stop_server(url)
        restarted = threading.Timer(2.0, start_server, args=(folder, port))
        restarted.start()
        try:
            with database.transaction() as connection:  # asked while the server is down
                ledger.append(connection, entry(1))
        finally:
            restarted.join()
        assert ledger.verify_chain(database) == (2, None)
        monkeypatch.setattr(database_module, "RECONNECT_PATIENCE_S", 1.0)
        folder, port = stop_server(url)  # down for longer than that
        with pytest.raises(DatabaseError, match=r"did not answer for 1 s .*run the command again"), database.reading():
            pass
        start_server(folder, port)
        database.close()


def test_an_append_while_a_checkpoint_is_read_never_makes_the_ledger_look_rewritten(
    tmp_path: Path, any_database_url: str
) -> None:
    """Another machine exports right after the checkpoint's first statement: the signed count and
    head must still belong together, or `ledger verify` reports a rewrite nobody made."""
    database, other = Database(any_database_url), Database(any_database_url)
    with database.transaction() as connection:
        for number in range(3):
            ledger.append(connection, entry(number))
    appended: list[int] = []

    def append_meanwhile(*_arguments: object) -> None:
        if not appended:  # once, between the reading transaction's statements
            appended.append(1)
            with other.transaction() as connection:
                ledger.append(connection, entry(3))

    event.listen(database.engine, "after_cursor_execute", append_meanwhile)
    try:
        checkpoint = write_checkpoint(database, tmp_path, signing_files())
    finally:
        event.remove(database.engine, "after_cursor_execute", append_meanwhile)
    assert appended and checkpoint.count in (3, 4)
    assert checkpoint_problems(database, tmp_path, signing_files()) == []
    database.close()
    other.close()


def test_runs_ending_together_never_leave_an_older_checkpoint_over_a_newer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two machines' runs end together: the one that read the ledger first wrote its checkpoint
    last, and the newest checkpoint (in the database and beside the outputs) pinned fewer rows."""
    import json

    from visuels.marking import checkpoints
    from visuels.marking.checkpoints import CHECKPOINT_FILE

    database = Database(f"sqlite:///{tmp_path / 'record.sqlite'}")
    with database.transaction() as connection:
        for number in range(3):
            ledger.append(connection, entry(number))
    slow_head = checkpoints._head(database)  # the slow run read the ledger here...
    with database.transaction() as connection:
        ledger.append(connection, entry(3))
    fast = write_checkpoint(database, tmp_path, signing_files())  # ...the other read and wrote after it
    with monkeypatch.context() as patched:
        patched.setattr(checkpoints, "_head", lambda _database: slow_head)
        slow = write_checkpoint(database, tmp_path, signing_files())
    assert (slow.count, fast.count) == (3, 4)
    assert json.loads((tmp_path / CHECKPOINT_FILE).read_text())["count"] == 4
    assert checkpoints._longest_recorded(database).count == 4  # what `ledger verify` holds the ledger to
    assert checkpoint_problems(database, tmp_path, signing_files()) == []
    database.close()


def test_a_checkpoint_edited_beside_the_outputs_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    """`ledger verify` read the checkpoint file's certificate and key as if they could not be
    wrong: an edited certificate ended in a traceback, an RSA one in a failed assertion."""
    import json

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from visuels.marking.checkpoints import CHECKPOINT_FILE

    database = Database(f"sqlite:///{tmp_path / 'record.sqlite'}")
    with database.transaction() as connection:
        ledger.append(connection, entry(1))
    write_checkpoint(database, tmp_path, signing_files())
    beside = tmp_path / CHECKPOINT_FILE
    written = json.loads(beside.read_text())
    name = x509.Name([])
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.UTC)
    rsa_certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(rsa_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(rsa_key, hashes.SHA256())
    )
    for certificate, said in (
        ("-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n", "holds no readable certificate"),
        (rsa_certificate.public_bytes(serialization.Encoding.PEM).decode(), "has a bad signature"),
    ):
        beside.write_text(json.dumps(written | {"certificate": certificate}))
        # As read where the signer's files are not (another machine than the one that signs).
        problems = [str(problem) for problem in checkpoint_problems(database, tmp_path, None)]
        assert any(said in problem and str(beside) in problem for problem in problems), problems
    database.close()


def test_two_machines_recording_one_model_at_once_both_succeed(any_database_url: str) -> None:
    """Two renders of one campaign start together (two machines on PostgreSQL): each records its
    model's hash. The second used to see no row (the first not yet committed), insert, then fail on
    the unique key once the first committed: a run ended with exit 3 for nothing."""
    from visuels.inputs.model_refs import DemoModelRef
    from visuels.record import model_sources
    from visuels.record.database import sources_table

    database = Database(any_database_url)
    failures: list[BaseException] = []

    def second_machine() -> None:
        try:
            model_sources.record(Database(any_database_url), "m" * 64, DemoModelRef(), None, None)
        except BaseException as exc:  # the test reports what the thread met
            failures.append(exc)

    with database.transaction() as first:  # the first machine's transaction, not yet committed
        first.execute(
            sources_table.insert().values(hash="m" * 64, kind="model", reference=DemoModelRef().model_dump_json())
        )
        thread = threading.Thread(target=second_machine)
        thread.start()
        thread.join(timeout=1.0)  # it waits on the first's lock (SQLite: the write lock; PostgreSQL: the row)
    thread.join(timeout=30)
    assert not thread.is_alive() and failures == []
    assert model_sources.model_for(database, "m" * 64) == DemoModelRef()
    database.close()


def test_two_machines_starting_two_campaigns_of_one_name_record_one_charter(
    tmp_path: Path, any_database_url: str
) -> None:
    """Both machines record the folder's charter at once: one wins; the other charter is refused,
    the winner's own second claim is not."""
    from visuels.errors import CampaignError
    from visuels.record import campaign_folders
    from visuels.record.campaign_folders import CharterIdentity

    solane, ardenne = (
        CharterIdentity(slug="solane", name="Région Solane"),
        CharterIdentity(slug="ardenne", name="Ardenne"),
    )
    databases = [Database(any_database_url), Database(any_database_url)]
    outcomes: dict[str, str] = {}

    def start(database: Database, charter: CharterIdentity) -> None:
        try:
            campaign_folders.claim(database, "ete-2027", charter, tmp_path / "charter.yaml")
            outcomes[charter.slug] = "recorded"
        except CampaignError as exc:
            outcomes[charter.slug] = str(exc)

    threads = [threading.Thread(target=start, args=pair) for pair in zip(databases, (solane, ardenne), strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winner = next(slug for slug, outcome in outcomes.items() if outcome == "recorded")
    loser = next(slug for slug in outcomes if slug != winner)
    assert "is in this output folder already" in outcomes[loser], outcomes
    campaign_folders.claim(databases[0], "ete-2027", solane if winner == "solane" else ardenne, tmp_path)
    for database in databases:
        database.close()


def test_the_ledger_tells_whether_a_watermarks_picture_was_drawn_from_marked_noise(tmp_path: Path) -> None:
    """`detect --deep` reads no starting-noise mark where the ledger says none was drawn (a photo's
    picture, one from before the mark); an edit of a marked picture keeps most of its mark."""
    database = Database(f"sqlite:///{tmp_path / 'record.sqlite'}")
    with database.transaction() as connection:
        from_photo = ledger.append(connection, entry(1))
        marked = ledger.append(connection, entry(2).model_copy(update={"noise_mark": "ab" * 8}))
        ledger.append(connection, entry(3).model_copy(update={"parent_id": marked}))  # a retouch of it
        ledger.append(connection, entry(4).model_copy(update={"parent_id": from_photo}))
    drawn = {number: ledger.drawn_from_marked_noise(database, f"{number:016x}") for number in (1, 2, 3, 4, 5)}
    database.close()
    assert drawn == {1: False, 2: True, 3: True, 4: False, 5: None}


def test_a_picture_without_its_watermark_is_found_by_the_nearest_perceptual_hash(any_database_url: str) -> None:
    """Every row's hash is compared, more rows than one read brings; the nearest within reach wins,
    the oldest of equals; a derivative's row (its hash set when marked) never blocks the search."""
    database = Database(any_database_url)
    hashes = {1: "ffff0000ffff0000", 2: "ffff0000ffff0003", 3: "ffff0000ffff0001", 4: "ffff0000ffff0001"}
    with database.transaction() as connection:
        ledger.append(connection, entry(0).model_copy(update={"phash": ""}))
        for number in range(5, 5 + READ_AT_ONCE):  # distinct pictures: far from the ones looked for
            ledger.append(
                connection, entry(number).model_copy(update={"phash": f"{number * 0x9E3779B97F4A7C15 % 2**64:016x}"})
            )
        for number, phash in hashes.items():
            ledger.append(connection, entry(number).model_copy(update={"phash": phash}))
    found = ledger.nearest_by_phash(database, "ffff0000ffff0000", within=6)
    assert found is not None and found["watermark"] == f"{1:016x}"
    found = ledger.nearest_by_phash(database, "ffff0000ffff0005", within=6)  # 1 bit from rows 3 and 4, 2 from 2
    assert found is not None and found["watermark"] == f"{3:016x}" and found["seed"] == 2**40 + 3
    assert ledger.nearest_by_phash(database, "0000ffff0000ffff", within=6) is None
    database.close()


def test_verify_names_the_first_row_edited_behind_the_ledgers_back(any_database_url: str) -> None:
    """Read a part at a time, the chain is checked whole: a row edited past the first part is
    found, and the count is every row's."""
    database = Database(any_database_url)
    with database.transaction() as connection:
        ids = [ledger.append(connection, entry(number)) for number in range(READ_AT_ONCE + 40)]
    assert ledger.verify_chain(database) == (len(ids), None)
    trigger = "ledger_append_only ON ledger" if "postgresql" in any_database_url else "ledger_no_update"
    edited = ids[READ_AT_ONCE + 10]
    with database.transaction() as connection:
        connection.exec_driver_sql(f"DROP TRIGGER {trigger}")
        connection.execute(ledger_table.update().where(ledger_table.c.id == edited).values(prompt="other"))
    assert ledger.verify_chain(database) == (len(ids), edited)
    database.close()


def test_a_record_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    """Its folder a file (an output folder mistyped onto a picture), or a SQLite database in memory,
    which every connection would open empty: said in one line, nothing made."""
    picture = tmp_path / "poster.png"
    picture.write_bytes(b"not a folder")
    with pytest.raises(DatabaseError, match="cannot create the record here: Not a directory") as raised:
        Database(f"sqlite:///{picture}/visuels.sqlite")
    assert raised.value.file == str(picture / "visuels.sqlite") and picture.read_bytes() == b"not a folder"
    for in_memory in ("sqlite://", "sqlite:///:memory:"):
        with pytest.raises(DatabaseOptionError, match="in memory keeps nothing"):
            Database(in_memory)


def test_a_command_that_reads_the_record_leaves_another_applications_database_as_it_was(
    any_database_url: str,
) -> None:
    """``ledger verify``, ``layers``, ``retouch``… given a database the renders did not record into
    say so, and build no table in it; once a render has recorded there, they open it."""
    foreign = create_engine(any_database_url.replace("postgresql://", "postgresql+psycopg://"))
    with foreign.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    with pytest.raises(DatabaseOptionError, match="holds no visuels record"):
        Database(any_database_url, must_exist=True)
    assert set(inspect(foreign).get_table_names()) == {"notes"}
    Database(any_database_url).close()  # a render records there
    Database(any_database_url, must_exist=True).close()
    assert {"notes", "ledger", "alembic_version"} <= set(inspect(foreign).get_table_names())
    foreign.dispose()
