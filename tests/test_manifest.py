"""manifest.json, the record's export for people and tools: written, and checked by a run with
nothing to do, an entry at a time, so that a region-wide campaign's (100,000 entries, 3 KB each)
is never held in memory whole."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest
from visuels.record import manifest
from visuels.record.database import Database, database_url

pytestmark = pytest.mark.timeout(120)


def _entry(number: int, padding: int = 0) -> dict:
    return {
        "file": f"c/Sète/{number}.png",
        "sha256": f"{number:064x}",
        "size": 1000 + number,
        "watermark": f"{number:016x}",
        "thumbnail": f"c/thumbnails/{number}.jpg",
        "compliance": {"passed": number % 3 != 0, "reasons": ["texte « coupé »\nà la ligne"], "pad": "x" * padding},
        "inputs": {"commune": "Sète", "seed": number, "formats": [], "nested": {}},
        "created": "2026-12-06T10:00:00Z",
        "ledger_id": number,
    }


def _record(database: Database, count: int, padding: int = 0) -> list[str]:
    keys = [f"{number * 7919 % 100003:05d}key" for number in range(count)]  # not recorded in order
    with database.transaction() as connection:
        for number, key in enumerate(keys):
            manifest.add(connection, key, "c", _entry(number, padding))
    return keys


def _whole_text(database: Database, name: str, current: set[str]) -> str:
    """What manifest.json said when it was made whole in memory: the format tools read."""
    recorded = sorted(manifest.entries(database, "c").items())
    files = {key: {**entry, "current": key in current} for key, entry in recorded}
    return json.dumps({"campaign": name, "files": files}, indent=2, ensure_ascii=False) + "\n"


def test_manifest_json_lists_every_entry_in_the_format_it_always_had(any_database_url: str, tmp_path: Path) -> None:
    database = Database(any_database_url)
    name = "Été 2027 — « Vivre »"
    empty = manifest.write_manifest_json(database, tmp_path, "c", name, set())
    assert empty.read_text(encoding="utf-8") == _whole_text(database, name, set())
    assert json.loads(empty.read_text(encoding="utf-8")) == {"campaign": name, "files": {}}
    keys = _record(database, 2 * manifest.READ_AT_ONCE + 3)  # fetched in three parts
    current = set(keys[::2])
    path = manifest.write_manifest_json(database, tmp_path, "c", name, current)
    assert path.read_text(encoding="utf-8") == _whole_text(database, name, current)
    files = json.loads(path.read_text(encoding="utf-8"))["files"]
    assert list(files) == sorted(keys) and sum(entry["current"] for entry in files.values()) == len(current)
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    database.close()


def test_a_run_with_nothing_to_do_finds_any_difference_from_the_record(any_database_url: str, tmp_path: Path) -> None:
    database = Database(any_database_url)
    keys = _record(database, manifest.READ_AT_ONCE + 1)
    current = set(keys)
    assert not manifest.manifest_is_up_to_date(database, tmp_path, "c", "C", current)  # none written yet
    path = manifest.write_manifest_json(database, tmp_path, "c", "C", current)
    assert manifest.manifest_is_up_to_date(database, tmp_path, "c", "C", current)
    assert not manifest.manifest_is_up_to_date(database, tmp_path, "c", "C", current - {keys[-1]})  # another plan
    assert not manifest.manifest_is_up_to_date(database, tmp_path, "c", "Renamed", current)
    text = path.read_bytes()
    for damaged in (text[:-1], text + b" ", text[:100], text.replace(b"Sete", b"S\xc3\xa8te", 1)[:-1] + b"!"):
        path.write_bytes(damaged)
        assert not manifest.manifest_is_up_to_date(database, tmp_path, "c", "C", current)
    path.write_bytes(text)
    with database.transaction() as connection:  # a picture exported again since
        manifest.add(connection, keys[-1], "c", {**_entry(7), "sha256": "f" * 64})
    assert not manifest.manifest_is_up_to_date(database, tmp_path, "c", "C", current)
    database.close()


def test_entries_of_some_keys_are_read_without_the_others(any_database_url: str) -> None:
    database = Database(any_database_url)
    keys = _record(database, manifest.READ_AT_ONCE + 20)
    asked = [*keys[5:], "no-such-key"]  # more than one query's worth
    found = manifest.entries(database, "c", asked)
    assert set(found) == set(keys[5:])
    assert found[keys[5]] == manifest.entries(database, "c")[keys[5]]
    assert manifest.entries(database, "other", asked) == {}
    database.close()


def test_writing_and_checking_manifest_json_hold_a_small_part_of_it_at_once(tmp_path: Path) -> None:
    database = Database(database_url(tmp_path))
    keys = _record(database, 6000, padding=1500)  # about 12 MB of JSON
    size = manifest.write_manifest_json(database, tmp_path, "c", "C", set(keys)).stat().st_size
    tracemalloc.start()
    try:
        manifest.write_manifest_json(database, tmp_path, "c", "C", set(keys))
        written_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        assert manifest.manifest_is_up_to_date(database, tmp_path, "c", "C", set(keys))
        checked_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert size > 10_000_000
    assert written_peak < size / 4 and checked_peak < size / 4, (size, written_peak, checked_peak)
    database.close()


def test_entries_asked_by_key_are_found_by_key_not_by_reading_the_campaign(tmp_path: Path) -> None:
    """With the campaign in the query, SQLite (which keeps no statistics) walked the campaign's
    index for each 500 keys asked: a region's review listing took 31 s, 21 of them there."""
    from sqlalchemy import event

    database = Database(database_url(tmp_path))
    keys = _record(database, 5)
    with database.transaction() as connection:  # another campaign's, asked for by key: not this one's
        manifest.add(connection, "other-key", "d", _entry(9))
    asked: list[tuple[str, object]] = []
    event.listen(database.engine, "before_cursor_execute", lambda *args: asked.append((args[2], args[3])))
    assert set(manifest.entries(database, "c", [*keys[:3], "other-key"])) == set(keys[:3])
    statement, parameters = next((text, values) for text, values in asked if "FROM outputs" in text)
    with database.reading() as connection:
        plan = " ".join(row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
    assert "outputs_campaign" not in plan and "sqlite_autoindex_outputs_1" in plan, plan
    database.close()


def test_each_entry_gives_the_campaigns_entries_a_few_at_a_time(any_database_url: str, tmp_path: Path) -> None:
    """What a caller keeping a part of each entry reads (the report: a region's entries whole weigh
    a gigabyte)."""
    database = Database(any_database_url)
    keys = _record(database, 6 * manifest.READ_AT_ONCE + 3, padding=2000)
    with database.transaction() as connection:
        manifest.add(connection, "other-key", "d", _entry(9))
    assert dict(manifest.each_entry(database, "c")) == manifest.entries(database, "c")
    assert sorted(key for key, _ in manifest.each_entry(database, "c")) == sorted(keys)
    tracemalloc.start()
    try:
        whole = manifest.entries(database, "c")
        whole_peak = tracemalloc.get_traced_memory()[1]
        del whole
        tracemalloc.reset_peak()
        kept = {key: entry["sha256"] for key, entry in manifest.each_entry(database, "c")}
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(kept) == len(keys) and peak < whole_peak / 3, (peak, whole_peak)
    database.close()
