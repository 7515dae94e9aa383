"""The database of record: the provenance ledger and the outputs table, behind SQLAlchemy.

SQLite by default (``visuels.sqlite`` in the output folder: one machine, nothing to install);
any SQLAlchemy URL with ``$VISUELS_DATABASE_URL`` (PostgreSQL for several machines). Export
writes a file, then commits its ledger row and its outputs row in one transaction, so a file
counts as done exactly when its record does.

The tables, as queries use them, are described here; ``visuels.record.migrations`` builds and
changes them (Alembic), and every process brings the database up to date when it opens it:
``ledger`` (append-only, hash-chained, one row per export, review or retouch), ``outputs`` (per
job key: the file, its hashes and compliance: what the next run skips), ``claims`` and
``claim_owners`` (which rendering call renders which job now, under a lease), ``sources``
(which model and LoRA files a hash names, for retouching) and ``ledger_checkpoints`` (signed
heads of the ledger).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    create_engine,
    event,
    inspect,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.exc import OperationalError as ServerUnreachable
from sqlalchemy.pool import NullPool
from visuels._internal.atomic import OUTPUT_MODE, make_folders
from visuels.config import settings
from visuels.errors import OperationalError, VisuelsError, first_line
from visuels.record import migrations

DATABASE_FILE = "visuels.sqlite"
OPEN_PATIENCE_S = 60.0  # as long as a writer waits for SQLite's lock (the connections' timeout)
# How long a database server reached once may not answer before the caller is told: a restart,
# a managed database's failover. A nightly rides through them instead of stopping.
RECONNECT_PATIENCE_S = 30.0
RECONNECT_EVERY_S = 0.5
# Rows fetched at a time from a long result, and keys asked for in one IN list (bounded for any
# database): a region-wide campaign's 100,000 records are never all in memory unless kept.
READ_AT_ONCE = 500

LEDGER_FIELDS = (
    "created",
    "file",
    "sha256",
    "phash",
    "watermark",
    "job_key",
    "model_hash",
    "lora_hash",
    "charter_hash",
    "prompt",
    "seed",
    "width",
    "height",
    "run_id",
    "parent_id",
    "approval",
    "key_visual",
    "model_licence",
    "licence_override",
    "noise_mark",
)
_INTEGER_FIELDS = ("seed", "width", "height", "parent_id")
# 64 bits: seeds span 2**32 and beyond (SQLite's INTEGER is 64 bits already; PostgreSQL's is 32).
BigNumber = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()
ledger_table = Table(
    "ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    *(
        Column(name, (BigNumber if name == "seed" else Integer) if name in _INTEGER_FIELDS else Text)
        for name in LEDGER_FIELDS
    ),
    Column("previous_hash", Text, nullable=False),
    Column("row_hash", Text, nullable=False),
    Index("ledger_watermark", "watermark"),
    Index("ledger_job_key", "job_key"),
    Index("ledger_sha256", "sha256"),
    Index("ledger_one_successor", "previous_hash", unique=True),  # the chain cannot fork
)
outputs_table = Table(
    "outputs",
    metadata,
    Column("job_key", Text, primary_key=True),
    Column("campaign", Text, nullable=False),
    Column("file", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("size", BigNumber, nullable=False),
    Column("watermark", Text, nullable=False),
    Column("thumbnail", Text, nullable=False),
    Column("compliance", Text, nullable=False),  # JSON
    Column("inputs", Text, nullable=False),  # JSON: what shaped the picture
    Column("created", Text, nullable=False),
    Column("ledger_id", Integer, nullable=False),
    Index("outputs_campaign", "campaign"),
)
sources_table = Table(
    "sources",
    metadata,
    Column("hash", Text, primary_key=True),  # a model's, LoRA's or charter's hash, as jobs and ledger rows hold it
    Column("kind", Text, nullable=False),  # model, lora or charter
    Column("reference", Text, nullable=False),  # JSON: what to load (a model reference, a LoRA or charter path)
)
campaign_folders_table = Table(
    "campaign_folders",  # the charter each campaign folder belongs to: see campaign_folders.py
    metadata,
    Column("campaign", Text, primary_key=True),  # the campaign's slug, its folder's name
    Column("charter_slug", Text, nullable=False),
    Column("charter_name", Text, nullable=False),  # for the message that refuses another charter's campaign
)
review_pictures_table = Table(
    "review_pictures",  # which pictures each review asks about, as it froze them: see review_batches.py
    metadata,
    Column("review", Text, primary_key=True),  # the batch's id: the render run's that asked for it
    Column("job_key", Text, primary_key=True),
    Column("campaign", Text, nullable=False),
    Column("created", Float, nullable=False),  # seconds since the epoch: one frozen just now may not run yet
    Index("review_pictures_campaign", "campaign"),
)
claim_owners_table = Table(
    "claim_owners",  # the rendering calls holding claims, each a lease it renews: see claims.py
    metadata,
    Column("owner", Text, primary_key=True),  # a random id, one per rendering call
    Column("host", Text, nullable=False),  # for people reading the table
    Column("machine", Text, nullable=False),  # where ``pid`` means something (visuels._internal.liveness)
    Column("pid", Integer, nullable=False),
    Column("expires", Float, nullable=False),  # seconds since the epoch; the owner renews it while alive
)
claims_table = Table(
    "claims",  # which rendering call is rendering which job now: see claims.py
    metadata,
    Column("job_key", Text, primary_key=True),
    Column("owner", Text, nullable=False),  # a claim_owners row; free once that lease lapses
    Index("claims_owner", "owner"),
)
checkpoints_table = Table(
    "ledger_checkpoints",  # signed (count, head hash, time) of the ledger: see marking/checkpoints.py
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("count", Integer, nullable=False),
    Column("head", Text, nullable=False),
    Column("created", Text, nullable=False),
    Column("signature", Text, nullable=False),
    Column("certificate", Text, nullable=False),
)

label_reports_table = Table(
    "label_reports",  # a wrong label reported by the public (visuels.record.reports)
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received", Text, nullable=False),  # UTC, ISO 8601
    Column("kind", Text, nullable=False),  # not_ai, unlabelled or other
    Column("sha256", Text),  # the picture's, when the reporter had it detected first
    Column("where_seen", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("contact", Text),
    Column("language", Text, nullable=False),
    Column("status", Text, nullable=False),  # open, then closed by the region with its answer
    Column("answer", Text),
    Index("label_reports_status", "status"),
)


def in_parts(keys: Sequence[str]) -> Iterator[list[str]]:
    """``keys`` in lists of ``READ_AT_ONCE``, for IN lists any database accepts."""
    for start in range(0, len(keys), READ_AT_ONCE):
        yield list(keys[start : start + READ_AT_ONCE])


def clock(connection: Connection) -> float:
    """Now, in seconds since 1970, by the clock of the database server: what machines sharing it
    compare leases and ages by, whatever their own clocks say (a host without NTP drifts by minutes).
    A SQLite file is shared by the processes of one machine: its clock."""
    if connection.dialect.name == "sqlite":
        return time.time()
    return float(connection.exec_driver_sql("SELECT EXTRACT(EPOCH FROM clock_timestamp())").scalar_one())


class DatabaseError(OperationalError):
    """The database of record cannot be opened or used (unreachable, damaged, locked too long)."""


class DatabaseOptionError(VisuelsError):
    """The database named is not there, or its URL is not one: bad input, not a failing server."""


def database_url(output_root: Path) -> str:
    """``$VISUELS_DATABASE_URL``, else a SQLite file in the output folder."""
    return settings().database_url or f"sqlite:///{output_root.resolve() / DATABASE_FILE}"


SQLITE_HEADER = b"SQLite format 3\x00"  # the first bytes of every SQLite database file
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def url_option(value: str) -> str:
    """A command-line ``--database`` value: a SQLAlchemy URL, the path of a SQLite file, or an output
    folder, whose record is its ``visuels.sqlite``. A file that is neither named nor made as a SQLite
    database (a picture, a report named by mistake) is the option's mistake, said as such; a
    ``.sqlite`` file that does not read as one is a damaged record (the environment failing)."""
    if "://" in value:
        return value
    path = Path(value).resolve()
    if path.is_dir():
        if not (path / DATABASE_FILE).is_file():
            raise DatabaseOptionError(
                value, "--database", "a folder without {name}: name the record's file", name=DATABASE_FILE
            )
        path = path / DATABASE_FILE
    elif path.is_file() and path.suffix.lower() not in SQLITE_SUFFIXES and path.stat().st_size > 0:
        with path.open("rb") as file:
            if file.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                raise DatabaseOptionError(
                    value,
                    "--database",
                    "not a SQLite database: name {name} (in an output folder) or a database URL",
                    name=DATABASE_FILE,
                )
    return f"sqlite:///{path}"


def is_missing(url: str) -> bool:
    """A SQLite database whose file does not exist yet: nothing was ever recorded there."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False
    return parsed.get_backend_name() == "sqlite" and bool(parsed.database) and not Path(parsed.database).is_file()


def output_root_of(url: str, default: Path) -> Path:
    """The output folder a database records files relative to: a SQLite file's folder, else ``default``."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return default
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return Path(parsed.database).resolve().parent
    return default


def display_url(url: str) -> str:
    """The database as messages show it: a SQLite file by its path; never a password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return parsed.database
    return parsed.render_as_string(hide_password=True)


def _create_shared_file(path: Path) -> None:
    """A new SQLite file readable by the other accounts that share the outputs, whatever the
    umask (SQLite gives its -wal and -shm files the mode of the database file)."""
    try:
        make_folders(path.parent)
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, OUTPUT_MODE)
    except FileExistsError:
        return
    except OSError as exc:  # a file where its folder should be, a folder it may not write in, a full disk
        raise DatabaseError(path, None, "cannot create the record here: {reason}", reason=exc.strerror) from None
    os.fchmod(descriptor, OUTPUT_MODE)
    os.close(descriptor)


def _driven(url: str) -> URL:
    """``url`` parsed, with the driver visuels ships: a PostgreSQL URL as libpq and other tools
    write it (``postgresql://``, ``postgres://``) is read with psycopg 3, not with SQLAlchemy's
    default driver (psycopg2, not installed); a database other than SQLite or PostgreSQL is refused."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseOptionError(
            url, None, "not a database URL (expected e.g. sqlite:///path or postgresql://…)"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        # Each connection of the pool would open its own empty database: the record would keep nothing.
        raise DatabaseOptionError(
            url, None, "a SQLite database in memory keeps nothing: name its file, e.g. sqlite:///outputs/visuels.sqlite"
        )
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseOptionError(
            display_url(url),
            None,
            "the record is kept in SQLite or PostgreSQL, not {backend}",
            backend=parsed.drivername,
        )
    return parsed


class Database:
    """One connection pool to the database of record; create one per process and pass it along."""

    def __init__(self, url: str, must_exist: bool = False) -> None:
        self.url = url
        parsed = _driven(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if must_exist and is_missing(url):
            raise DatabaseOptionError(str(parsed.database), None, "database not found")
        if self.is_sqlite:
            _create_shared_file(Path(str(parsed.database)))
        try:
            self.engine = self._engine(parsed)
        except ImportError:  # a driver named that this machine does not have
            raise DatabaseOptionError(
                display_url(url),
                None,
                "no {driver} driver here: write postgresql://… (read with psycopg 3)",
                driver=parsed.get_driver_name(),
            ) from None
        except SQLAlchemyError as exc:
            raise DatabaseError(display_url(url), None, _problem(exc, "not a usable database")) from None
        if must_exist:
            self._refuse_a_database_without_record()
        deadline = time.monotonic() + OPEN_PATIENCE_S
        while True:
            try:
                with self.engine.begin() as connection:
                    migrations.upgrade(connection)
                return
            except SQLAlchemyError as exc:
                # SQLite may answer "locked" at once, without waiting for the lock (seen when two
                # processes open a new database at the same moment): asked again, it waits as usual.
                if not (self.is_sqlite and "database is locked" in str(exc) and time.monotonic() < deadline):
                    raise DatabaseError(display_url(url), None, _problem(exc, "not a usable database")) from None
            time.sleep(0.05)

    def _refuse_a_database_without_record(self) -> None:
        """A command that reads the record, given another application's database (or an empty
        one), says so instead of building the record's tables in it."""
        try:
            tables = self._table_names()
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise DatabaseError(display_url(self.url), None, _problem(exc, "not a usable database")) from None
        if not tables & {"alembic_version", "ledger"}:  # a database made before migrations has its ledger
            self.engine.dispose()
            raise DatabaseOptionError(
                display_url(self.url), None, "holds no visuels record: name the database the renders recorded into"
            )

    def _table_names(self) -> set[str]:
        if not self.is_sqlite:
            with self.engine.connect() as connection:
                return set(inspect(connection).get_table_names())
        # Read-only, outside the engine: its connections switch the file to WAL, which writes it.
        location = Path(str(make_url(self.url).database)).resolve().as_uri() + "?mode=ro"
        with closing(sqlite3.connect(location, uri=True)) as connection:
            return {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _engine(self, url: URL) -> Engine:
        if not self.is_sqlite:
            return create_engine(url, pool_pre_ping=True)
        # One connection per use: worker processes and threads each open their own.
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _configure(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
            cursor = dbapi_connection.cursor()
            # WAL: readers never block the writer; NORMAL: a killed process loses no commit.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            # Writers take the lock at BEGIN, so two writers never both read the ledger's tip.
            options = connection.get_execution_options()
            if "patience_ms" in options:  # this connection waits less for the lock than the others
                connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(options['patience_ms'])}")
            connection.exec_driver_sql("BEGIN" if options.get("read_only", False) else "BEGIN IMMEDIATE")

        return engine

    @contextmanager
    def transaction(self, patience_s: float | None = None) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back on any exception.

        ``patience_s``: how long to wait for a lock before giving up with a ``DatabaseError``
        (default: as long as any writer, ``OPEN_PATIENCE_S``); claim renewals ask for less.
        """
        try:
            with self._connect(patience_s) as connection:
                if patience_s is not None:
                    connection = connection.execution_options(patience_ms=round(patience_s * 1000))
                with connection.begin():
                    if patience_s is not None and not self.is_sqlite:
                        milliseconds = round(patience_s * 1000)
                        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {milliseconds}")
                        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")
                    yield connection
        except SQLAlchemyError as exc:
            raise DatabaseError(display_url(self.url), None, _problem(exc)) from None

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read-only transaction (it takes no write lock on SQLite)."""
        try:
            with self._connect() as connection:
                connection = connection.execution_options(read_only=True)
                with connection.begin():
                    yield connection
        except SQLAlchemyError as exc:
            raise DatabaseError(display_url(self.url), None, _problem(exc)) from None

    def _connect(self, patience_s: float | None = None) -> Connection:
        """A connection; a server that does not answer (it was reached when this database was
        opened) is asked again for up to ``RECONNECT_PATIENCE_S``, or ``patience_s`` if shorter."""
        waited = min(patience_s or RECONNECT_PATIENCE_S, RECONNECT_PATIENCE_S)
        deadline = time.monotonic() + waited
        while True:
            try:
                return self.engine.connect()
            except ServerUnreachable as exc:
                if self.is_sqlite:
                    raise
                if time.monotonic() >= deadline:
                    raise DatabaseError(
                        display_url(self.url),
                        None,
                        "the server did not answer for {seconds:.0f} s ({reason}): once it is back, run the"
                        " command again; what was recorded is kept",
                        seconds=waited,
                        reason=_first_line(exc),
                    ) from None
            time.sleep(RECONNECT_EVERY_S)

    def close(self) -> None:
        self.engine.dispose()


# What SQLite says of a damaged file: nothing in it can be trusted, so the message says what to do.
_DAMAGED = ("file is not a database", "database disk image is malformed")
REPAIR_HINT = (
    "restore it from a backup and check it with `visuels ledger verify`; with no backup, move it"
    " aside and render again: every picture is rendered and recorded anew"
)


def _problem(exc: Exception, what: str = "") -> str:
    reason = _first_line(exc)
    described = f"{what} ({reason})" if what else reason
    return f"{described}: {REPAIR_HINT}" if any(text in reason for text in _DAMAGED) else described


def _first_line(exc: Exception) -> str:
    return first_line(getattr(exc, "orig", None) or exc)  # the driver's own message, where it has one
