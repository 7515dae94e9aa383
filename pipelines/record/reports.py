"""Reports of a wrong AI label, sent by the public through the detector service, kept in the record
for the region to review and answer: the Code of Practice asks deployers to correct a mislabel
without undue delay, so each report stays open until someone closes it with what was done."""

from __future__ import annotations

import datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import insert, select, update
from visuels.record.database import Database, label_reports_table

ReportKind = Literal["not_ai", "unlabelled", "other"]  # labelled AI but is not; AI but not labelled


class LabelReport(BaseModel):
    """What a member of the public says is wrong, as the report form sends it."""

    kind: ReportKind
    where_seen: str = Field(min_length=1, max_length=500)  # an address, a publication, a place
    description: str = Field(min_length=1, max_length=2000)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")  # from a detection result
    contact: str | None = Field(default=None, max_length=200)
    language: Literal["en", "fr"] = "en"


def add_report(database: Database, report: LabelReport) -> int:
    """Keep ``report``, open; its number. The same report sent again while it is open (a form sent
    twice, a page reloaded) is the one kept already: the region answers each report once."""
    received = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    table, fields = label_reports_table, report.model_dump()
    with database.transaction() as connection:
        if connection.dialect.name != "sqlite":  # SQLite's writers are one at a time already
            connection.exec_driver_sql("LOCK TABLE label_reports IN SHARE ROW EXCLUSIVE MODE")
        same = select(table.c.id).where(
            table.c.status == "open", *(table.c[name].is_not_distinct_from(value) for name, value in fields.items())
        )
        kept = connection.execute(same.limit(1)).scalar_one_or_none()
        if kept is not None:
            return int(kept)
        result = connection.execute(insert(table).values(**fields, received=received, status="open"))
    return int(result.inserted_primary_key[0])


def reports(database: Database, include_closed: bool = False) -> list[dict]:
    """The reports, oldest first: the open ones, or all."""
    query = select(label_reports_table).order_by(label_reports_table.c.id)
    if not include_closed:
        query = query.where(label_reports_table.c.status == "open")
    with database.reading() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


def close_report(database: Database, number: int, answer: str) -> bool:
    """Close report ``number`` with what the region did; False if there is no open one by that number."""
    with database.transaction() as connection:
        changed = connection.execute(
            update(label_reports_table)
            .where(label_reports_table.c.id == number, label_reports_table.c.status == "open")
            .values(status="closed", answer=answer)
        )
    return changed.rowcount == 1
