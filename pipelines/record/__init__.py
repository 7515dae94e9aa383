"""The database of record: the hash-chained ledger, the outputs table (what is done, where), the
model sources, claims' tables, and their migrations (SQLite or PostgreSQL).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visuels._internal.faces import lazy_attributes

if TYPE_CHECKING:
    from visuels.record.database import Database, DatabaseError, database_url
    from visuels.record.ledger import LedgerEntry, verify_chain

__all__ = ["Database", "DatabaseError", "LedgerEntry", "database_url", "verify_chain"]
__getattr__ = lazy_attributes(
    __name__,
    {
        "database": ["Database", "DatabaseError", "database_url"],
        "ledger": ["LedgerEntry", "verify_chain"],
    },
)
