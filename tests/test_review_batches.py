"""The pictures of each review, frozen in the record when the review is asked for (SQLite and
PostgreSQL): what awaits a decision, what a review asks about, however often it is asked again."""

from __future__ import annotations

from pathlib import Path

import pytest
from visuels.errors import ReviewError
from visuels.record import ledger, manifest
from visuels.record.database import READ_AT_ONCE, Database
from visuels.record.review_batches import (
    awaiting_decision,
    pictures_of_review,
    record_review,
    review_sizes,
)

pytestmark = pytest.mark.timeout(120)


def _export(database: Database, campaign: str, count: int, start: int = 0) -> list[str]:
    """``count`` outputs of ``campaign``, each with its export row ("pending")."""
    keys = [f"{campaign}{number:060x}" for number in range(start, start + count)]
    with database.transaction() as connection:
        for key in keys:
            row = ledger.LedgerEntry(
                file=f"{campaign}/{key}.png",
                sha256=key,
                phash="0" * 16,
                watermark=key[:16],
                job_key=key,
                model_hash="m",
                lora_hash=None,
                charter_hash="c",
                prompt="p",
                seed=1,
                width=8,
                height=8,
            )
            row_id = ledger.append(connection, row)
            entry = {
                "file": row.file,
                "sha256": key,
                "size": 8,
                "watermark": key[:16],
                "thumbnail": "",
                "ledger_id": row_id,
            }
            manifest.add(connection, key, campaign, entry | {"compliance": {}, "inputs": {}, "created": "2026-12-06"})
    return keys


def _decide(database: Database, keys: list[str], approval: str) -> None:
    """A designer's decision on ``keys``: a new row for each, pointing at its export."""
    with database.transaction() as connection:
        for key in keys:
            previous = ledger.by_job_key(database, key)
            fields = {name: previous[name] for name in ledger.LedgerEntry.model_fields}
            ledger.append(
                connection, ledger.LedgerEntry(**fields | {"approval": approval, "parent_id": previous["id"]})
            )


def test_what_awaits_a_decision_is_the_exported_and_undecided(any_database_url: str) -> None:
    database = Database(any_database_url)
    keys = _export(database, "c", READ_AT_ONCE + 7)  # asked for in two parts
    other = _export(database, "d", 3)
    _decide(database, keys[:2], "approved (by Léa)")
    _decide(database, keys[2:3], "rejected: too dark")
    assert awaiting_decision(database, "c") == sorted(keys[3:])
    assert awaiting_decision(database, "c", among=keys[:5] + other) == sorted(keys[3:5])  # the plan's, this campaign's
    assert awaiting_decision(database, "d") == sorted(other)
    database.close()


def test_a_review_keeps_the_pictures_it_was_asked_about(any_database_url: str) -> None:
    database = Database(any_database_url)
    keys = _export(database, "c", 2 * READ_AT_ONCE + 3)
    assert pictures_of_review(database, "run-1") == []  # no such review
    assert record_review(database, "run-1", "c", keys[5:]) == keys[5:]
    # Asked again (a render run started again, a review resumed), after more pictures were
    # exported or some decided: the same pictures, the ones the designer was shown.
    more = _export(database, "c", 4, start=len(keys))
    assert record_review(database, "run-1", "c", keys + more) == sorted(keys[5:])
    assert pictures_of_review(database, "run-1") == sorted(keys[5:])
    assert record_review(database, "run-2", "c", more) == more
    assert review_sizes(database, ["run-1", "run-2", "run-3"]) == {"run-1": len(keys) - 5, "run-2": 4}
    database.close()


def test_looking_for_a_review_in_a_folder_with_no_record_makes_none(tmp_path: Path) -> None:
    """A review run whose output folder was moved (the studio's home counts its pictures): asking
    made an empty database where the folder had been."""
    from visuels.review.decisions import count_to_review, freeze_review, pictures_to_review, review_listing

    gone = tmp_path / "moved" / "outputs"
    assert freeze_review(gone, "c", "run-1") == [] and pictures_to_review(gone, "run-1", []) == []
    assert count_to_review(gone, ["run-1"]) == {}
    with pytest.raises(ReviewError, match="no output for job"):
        review_listing(gone, "c", ["0" * 64])
    assert not (tmp_path / "moved").exists()


def test_no_picture_is_frozen_for_two_reviews_that_may_both_ask(
    any_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two machines ending two runs of one campaign at once: each froze their shared pictures,
    neither review being in Prefect yet when the other looked."""
    import threading

    from visuels.record import review_batches

    database = Database(any_database_url)
    keys = _export(database, "c", READ_AT_ONCE + 100)
    frozen: dict[str, list[str]] = {}
    start = threading.Barrier(2)

    def freeze(review: str) -> None:
        other = Database(any_database_url)
        start.wait()
        frozen[review] = record_review(other, review, "c", keys)
        other.close()

    machines = [threading.Thread(target=freeze, args=(review,)) for review in ("machine-a", "machine-b")]
    for machine in machines:
        machine.start()
    for machine in machines:
        machine.join(timeout=60)
    assert sorted(frozen["machine-a"] + frozen["machine-b"]) == sorted(keys)  # each once, none lost
    # Past RECENT_S, a review not in the orchestrator (never started) leaves its pictures free;
    # one still open there does not.
    monkeypatch.setattr(review_batches, "RECENT_S", 0.0)
    assert record_review(database, "later", "c", keys, open_reviews=["machine-a"]) == frozen["machine-b"]
    database.close()


def test_a_review_started_by_hand_finds_its_campaign_by_folder_or_by_name(tmp_path: Path) -> None:
    """The form asks for the campaign's folder; a designer types its name, or a folder not there."""
    from visuels.errors import Text
    from visuels.review.decisions import campaign_folder

    field = Text("Campaign folder")
    (tmp_path / "ete-2027-vivre-en-solane").mkdir()
    (tmp_path / "hiver-2027").mkdir()
    assert campaign_folder(tmp_path, "ete-2027-vivre-en-solane", field) == "ete-2027-vivre-en-solane"
    assert campaign_folder(tmp_path, "Été 2027 — Vivre en Solane", field) == "ete-2027-vivre-en-solane"
    with pytest.raises(ReviewError) as refused:
        campaign_folder(tmp_path, "Printemps", field)
    assert str(refused.value).endswith(
        "Campaign folder: no campaign 'Printemps' in this output folder"
        " (its campaigns: ete-2027-vivre-en-solane, hiver-2027)"
    )
    with pytest.raises(ReviewError):
        campaign_folder(tmp_path / "ete-2027-vivre-en-solane", "..", field)
