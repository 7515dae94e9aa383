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
    """Keep ``report``, open; its number."""
    received = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    with database.transaction() as connection:
        result = connection.execute(
            insert(label_reports_table).values(**report.model_dump(), received=received, status="open")
        )
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
