"""The pictures each review asks about, frozen when the review is asked for.

A render run that asks for review records its pictures here under one id (the render run's) and
hands the review run that id, not the pictures' job keys: a region's night is 100,000 pictures,
whose keys would weigh 7 MB in every Prefect page and listing that shows the run. A review started
by hand freezes its pictures under its own id when it first starts, and finds them again each time
it is resumed, so what a designer approves is what the review showed.

A picture awaits a decision while it is exported and its newest ledger row says "pending". What a
run killed before it asked for review exported, or a run with review off, or a review that ran out
of time: the next review of the campaign asks about it (see ``awaiting_decision``). No picture is
frozen for two reviews that may both ask about it: one at a time freezes (a lock), leaving out
what the reviews still open ask about, and what was frozen in the last ``RECENT_S`` (its review
may not be in the orchestrator yet: two machines ending two runs of one campaign at once).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import Connection, delete, func, insert, select
from visuels.record.database import Database, clock, in_parts, outputs_table, review_pictures_table
from visuels.record.ledger import approvals

RECENT_S = 600.0  # a review frozen this recently may not be in the orchestrator yet


def record_review(
    database: Database, review: str, campaign: str, keys: Sequence[str], open_reviews: Collection[str] = ()
) -> list[str]:
    """Freeze as the pictures of ``review`` those of ``keys`` that no other review asks about (one
    of ``open_reviews``, or one frozen in the last ``RECENT_S``), unless it has pictures already (a
    render run asked again, a review resumed): the review's pictures either way."""
    table = review_pictures_table
    with database.transaction() as connection:
        now = clock(connection)  # another machine's review is compared by the same clock
        if connection.dialect.name != "sqlite":  # SQLite's writers are one at a time already
            connection.exec_driver_sql("LOCK TABLE review_pictures IN SHARE ROW EXCLUSIVE MODE")
        frozen = list(connection.execute(select(table.c.job_key).where(table.c.review == review)).scalars())
        if frozen:
            return sorted(frozen)
        recent = select(table.c.review).where(table.c.campaign == campaign, table.c.created >= now - RECENT_S)
        others = (set(open_reviews) | set(connection.execute(recent.distinct()).scalars())) - {review}
        asked = _pictures_of(connection, others)
        free = [key for key in dict.fromkeys(keys) if key not in asked]
        for part in in_parts(free):
            rows = [{"review": review, "job_key": key, "campaign": campaign, "created": now} for key in part]
            connection.execute(insert(table), rows)
    return free


def forget_review(database: Database, review: str) -> None:
    """Forget the pictures of a review that could not be started: they await the next one."""
    table = review_pictures_table
    with database.transaction() as connection:
        connection.execute(delete(table).where(table.c.review == review))


def pictures_of_review(database: Database, review: str) -> list[str]:
    """The job keys ``review`` asks about (none for an id no review recorded)."""
    table = review_pictures_table
    with database.reading() as connection:
        query = select(table.c.job_key).where(table.c.review == review).order_by(table.c.job_key)
        return list(connection.execute(query).scalars())


def review_sizes(database: Database, reviews: Collection[str]) -> dict[str, int]:
    """How many pictures each of ``reviews`` asks about, counted by the database."""
    table = review_pictures_table
    sizes: dict[str, int] = {}
    with database.reading() as connection:
        for part in in_parts(sorted(reviews)):
            query = select(table.c.review, func.count()).where(table.c.review.in_(part)).group_by(table.c.review)
            sizes.update({review: count for review, count in connection.execute(query)})
    return sizes


def _pictures_of(connection: Connection, reviews: Collection[str]) -> set[str]:
    """The job keys any of ``reviews`` asks about."""
    table = review_pictures_table
    found: set[str] = set()
    for part in in_parts(sorted(reviews)):
        found.update(connection.execute(select(table.c.job_key).where(table.c.review.in_(part))).scalars())
    return found


def awaiting_decision(database: Database, campaign: str, among: Collection[str] | None = None) -> list[str]:
    """The campaign's exported pictures (of ``among`` only, if given) that no designer has decided
    on yet, by job key."""
    table = outputs_table
    with database.reading() as connection:
        exported = list(connection.execute(select(table.c.job_key).where(table.c.campaign == campaign)).scalars())
    if among is not None:
        wanted = set(among)
        exported = [key for key in exported if key in wanted]
    decided = approvals(database, exported)
    return sorted(key for key in exported if decided.get(key, "pending") == "pending")
