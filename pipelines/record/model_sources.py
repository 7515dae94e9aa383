"""Which model, LoRA and charter files a hash names: recorded as a run renders, read back to
retouch, lay out and finalize its pictures.

Jobs and ledger rows hold only hashes. To retouch a picture with the model, LoRA and scale that
made it, the studio needs to know what to load; to check an edit against the charter it was made
with, which charter that is: each render records its model reference, LoRA path and charter file
under their hashes, once.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from visuels.inputs.model_refs import LoraWeights, ModelRef
from visuels.record.database import Database, sources_table

_MODEL_REF: TypeAdapter[ModelRef] = TypeAdapter(ModelRef)


def record(
    database: Database, model_hash: str, model: ModelRef, lora_hash: str | None, lora: LoraWeights | None
) -> None:
    """Remember what ``model_hash`` (and ``lora_hash``) name, unless already known."""
    wanted = {model_hash: ("model", model.model_dump_json())}
    if lora_hash and lora:
        wanted[lora_hash] = ("lora", json.dumps({"path": lora.path}))
    _insert(database, wanted)


def record_charter(database: Database, charter_hash: str, charter_file: Path) -> None:
    """Remember which charter file ``charter_hash`` names, unless already known."""
    _insert(database, {charter_hash: ("charter", json.dumps({"path": str(charter_file.resolve())}))})


def _insert(database: Database, wanted: dict[str, tuple[str, str]]) -> None:
    with database.transaction() as connection:
        # Two machines starting one campaign record the same hashes at once: the second insert of a
        # hash is a no-op, never a unique-key failure (PostgreSQL runs the two transactions side by side).
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        rows = [{"hash": hash_, "kind": kind, "reference": reference} for hash_, (kind, reference) in wanted.items()]
        connection.execute(dialect.insert(sources_table).values(rows).on_conflict_do_nothing(index_elements=["hash"]))


def _reference(database: Database, hash_: str, kind: str) -> str | None:
    with database.reading() as connection:
        query = select(sources_table.c.reference).where(sources_table.c.hash == hash_, sources_table.c.kind == kind)
        return connection.scalar(query)


def model_for(database: Database, model_hash: str) -> ModelRef | None:
    reference = _reference(database, model_hash, "model")
    return _MODEL_REF.validate_json(reference) if reference else None


def lora_path_for(database: Database, lora_hash: str) -> str | None:
    reference = _reference(database, lora_hash, "lora")
    return json.loads(reference)["path"] if reference else None


def charter_file_for(database: Database, charter_hash: str) -> Path | None:
    """The charter file a render recorded under ``charter_hash`` (it may have moved or changed since)."""
    reference = _reference(database, charter_hash, "charter")
    return Path(json.loads(reference)["path"]) if reference else None
