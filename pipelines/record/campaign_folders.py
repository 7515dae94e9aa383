"""Which charter each campaign folder belongs to.

A campaign's folder, manifest and report are named after the campaign's name alone. Two regions
rendering a campaign of the same name ("Été 2027") into one output folder would mix their pictures,
and each run would mark the other region's pictures as no longer current. The first run of a
campaign records its charter; a campaign of that name under another charter is refused.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite
from visuels.errors import CampaignError
from visuels.record.database import Database, campaign_folders_table


class CharterIdentity(BaseModel):
    """A charter as a campaign folder records it: its slug (which stays) and its name (for people)."""

    model_config = ConfigDict(frozen=True)

    slug: str
    name: str


def _recorded(connection: Connection, campaign: str) -> CharterIdentity | None:
    table = campaign_folders_table
    query = select(table.c.charter_slug, table.c.charter_name).where(table.c.campaign == campaign)
    row = connection.execute(query).first()
    return CharterIdentity(slug=row.charter_slug, name=row.charter_name) if row else None


def _refusal(file: Path, field: str | None, campaign: str, owner: CharterIdentity) -> CampaignError:
    return CampaignError(
        file,
        field,
        "a campaign named '{campaign}' of charter '{other}' is in this output folder already:"
        " rename this campaign, or render it into another output folder",
        campaign=campaign,
        other=owner.name,
    )


def check_free(database: Database, campaign: str, charter: CharterIdentity, campaign_file: Path, name: str) -> None:
    """Planning (which writes nothing): refuse campaign ``name`` if its folder, ``campaign``,
    belongs to another charter."""
    with database.reading() as connection:
        owner = _recorded(connection, campaign)
    if owner is not None and owner.slug != charter.slug:
        raise _refusal(campaign_file, "name", name, owner)


def claim(database: Database, campaign: str, charter: CharterIdentity, charter_file: Path) -> None:
    """Rendering: record ``charter`` as the folder's unless it has one; refuse if it has another's
    (two machines starting two such campaigns at once: the second is refused here)."""
    table = campaign_folders_table
    with database.transaction() as connection:
        # Two machines starting one campaign record it at once: the second insert is a no-op.
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        row = {"campaign": campaign, "charter_slug": charter.slug, "charter_name": charter.name}
        connection.execute(dialect.insert(table).values(row).on_conflict_do_nothing(index_elements=["campaign"]))
        owner = _recorded(connection, campaign)
    if owner is not None and owner.slug != charter.slug:
        raise _refusal(charter_file, None, campaign, owner)
