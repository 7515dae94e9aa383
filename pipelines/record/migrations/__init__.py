"""The database of record's schema, built and changed by Alembic migrations (``versions/``).

Every process that opens the database brings it to the newest revision first (``upgrade``): a
fresh SQLite file, a database an older release made, or an empty PostgreSQL database alike.
Several processes may open it at once: SQLite's writers are serialised, and on PostgreSQL an
advisory lock makes the others wait while one migrates.

A new revision: add ``versions/NNNN_what.py`` (``revision``, ``down_revision``, ``upgrade()``), and
change the tables of ``visuels.record.database`` (what queries use) to match;
``tests/test_database.py`` checks that both agree.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

_ADVISORY_LOCK = 0x76697375656C73  # "visuels": one migrating process at a time on PostgreSQL
APPEND_ONLY_TABLES = ("ledger", "ledger_checkpoints")


def append_only_guards(dialect: str) -> list[str]:
    """The statements that make the ledger and its checkpoints refuse UPDATE and DELETE. They are
    run again at every opening, so a dropped trigger is back at once; what was done while it was
    missing, the signed checkpoints catch (marking/checkpoints.py)."""
    if dialect == "postgresql":
        return [
            "CREATE OR REPLACE FUNCTION visuels_append_only() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'the ledger is append-only'; END $$",
            *(
                f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}"
                " FOR EACH ROW EXECUTE FUNCTION visuels_append_only()"
                for table in APPEND_ONLY_TABLES
            ),
        ]
    return [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb} BEFORE {verb.upper()} ON {table}"
        " BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
        for table in APPEND_ONLY_TABLES
        for verb in ("update", "delete")
    ]


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection) -> None:
    """Bring the schema to the newest revision, and its append-only guards back, in the caller's
    transaction."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK})")
    config = _config(connection)
    current = MigrationContext.configure(connection).get_current_revision()
    if current != ScriptDirectory.from_config(config).get_current_head():
        command.upgrade(config, "head")
    for statement in append_only_guards(connection.dialect.name):
        connection.exec_driver_sql(statement)
