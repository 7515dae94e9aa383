"""Signed checkpoints of the ledger, so that a cut or rewritten chain shows.

The hash chain shows an edited row, but a chain cut at its tail, or rewritten from the start
after the append-only triggers were dropped, is consistent again. A checkpoint pins it: the
ledger's row count and head hash at a time, signed with the signing key, kept in the database
and, the longest only, in ``ledger-checkpoint.json`` beside the outputs (a copy of the database
rewritten whole still disagrees with the file). A later ledger must be at least as long and hold
the same row at that count. Each render run ends with a checkpoint.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel
from sqlalchemy import func, insert, select
from visuels._internal.atomic import write_text_atomic
from visuels._internal.json_text import read_json
from visuels.errors import Text
from visuels.marking.keys import SigningFiles, read_certificates, read_private_key
from visuels.record.database import Database, checkpoints_table, ledger_table

CHECKPOINT_FILE = "ledger-checkpoint.json"


class Checkpoint(BaseModel):
    count: int
    head: str
    created: str
    signature: str  # base64 ECDSA P-256 / SHA-256 of ``payload``
    certificate: str  # PEM of the signer's certificate

    def payload(self) -> bytes:
        return f"visuels ledger checkpoint\n{self.count}\n{self.head}\n{self.created}".encode()


def _head(database: Database) -> tuple[int, str]:
    """The ledger's row count and its last row's hash, read by one statement: one snapshot, so an
    append committing meanwhile (another machine's export) can never pair a count with another
    row's hash (PostgreSQL gives each statement of a transaction its own snapshot by default)."""
    ledger = ledger_table.alias("tip")
    earlier = ledger_table.alias("earlier")
    count_to_tip = select(func.count()).select_from(earlier).where(earlier.c.id <= ledger.c.id).scalar_subquery()
    with database.reading() as connection:
        tip = connection.execute(select(count_to_tip, ledger.c.row_hash).order_by(ledger.c.id.desc()).limit(1)).first()
    return (tip[0], tip[1]) if tip else (0, "")


def _hash_of_row(database: Database, position: int) -> str:
    """The chain hash of the ledger's ``position``-th row (1 for the first), in id order."""
    with database.reading() as connection:
        query = select(ledger_table.c.row_hash).order_by(ledger_table.c.id).offset(position - 1).limit(1)
        return connection.execute(query).scalar_one()


def _leaf_certificate(signing: SigningFiles) -> x509.Certificate:
    return read_certificates(signing.chain)[0]


def write_checkpoint(database: Database, output_root: Path, signing: SigningFiles) -> Checkpoint:
    """Sign the ledger's current length and head; record it in the database and beside the outputs."""
    count, head = _head(database)
    key = read_private_key(signing.private_key)
    certificate = _leaf_certificate(signing).public_bytes(serialization.Encoding.PEM).decode("ascii")
    unsigned = Checkpoint(
        count=count, head=head, created=datetime.now(UTC).isoformat(timespec="seconds"), signature="", certificate=""
    )
    signature = base64.b64encode(key.sign(unsigned.payload(), ec.ECDSA(hashes.SHA256()))).decode("ascii")
    checkpoint = unsigned.model_copy(update={"signature": signature, "certificate": certificate})
    with database.transaction() as connection:
        connection.execute(insert(checkpoints_table).values(**checkpoint.model_dump()))
    # Runs ending together (machines sharing the database): the one that read the ledger first may
    # write last. The file holds the longest checkpoint recorded, never an older one over a newer.
    longest = _longest_recorded(database) or checkpoint
    write_text_atomic(output_root / CHECKPOINT_FILE, longest.model_dump_json(indent=2) + "\n")
    return checkpoint


def _longest_recorded(database: Database) -> Checkpoint | None:
    """The checkpoint that pins the most rows (the ledger only grows: the newest but for runs that
    ended together)."""
    order = (checkpoints_table.c.count.desc(), checkpoints_table.c.id.desc())
    with database.reading() as connection:
        row = connection.execute(select(checkpoints_table).order_by(*order).limit(1)).first()
    return Checkpoint(**{name: row._mapping[name] for name in Checkpoint.model_fields}) if row else None


def _signature_problem(checkpoint: Checkpoint, where: Text | str, signing: SigningFiles | None) -> Text | None:
    try:
        certificate = x509.load_pem_x509_certificate(checkpoint.certificate.encode("utf-8"))
    except ValueError:
        return Text("the checkpoint in {where} holds no readable certificate (damaged)", where=where)
    if signing is not None and signing.chain.is_file() and certificate != _leaf_certificate(signing):
        return Text(
            "the checkpoint in {where} is signed by another certificate than this deployment's signer", where=where
        )
    public_key = certificate.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        return Text("the checkpoint in {where} has a bad signature (edited)", where=where)
    try:
        public_key.verify(base64.b64decode(checkpoint.signature), checkpoint.payload(), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return Text("the checkpoint in {where} has a bad signature (edited)", where=where)
    return None


def checkpoint_problems(database: Database, output_root: Path, signing: SigningFiles | None) -> list[Text]:
    """What the ledger's checkpoints say is wrong with it now: nothing when it only grew since."""
    found: list[tuple[Text | str, Checkpoint]] = []
    recorded = _longest_recorded(database)
    if recorded is not None:
        found.append((Text("the database"), recorded))
    beside, written_beside = output_root / CHECKPOINT_FILE, None
    if beside.is_file():
        try:
            written_beside = Checkpoint(**read_json(beside))
        except (ValueError, TypeError):
            return [Text("{file} is not a ledger checkpoint (damaged)", file=beside)]
        found.append((str(beside), written_beside))
    problems = []
    rows, _ = _head(database)
    for where, checkpoint in found:
        bad_signature = _signature_problem(checkpoint, where, signing)
        if bad_signature:
            problems.append(bad_signature)
        elif rows < checkpoint.count:
            problems.append(
                Text(
                    "the ledger was cut: {rows} rows, the checkpoint of {created} in {where} signed {count}",
                    rows=rows,
                    created=checkpoint.created,
                    where=where,
                    count=checkpoint.count,
                )
            )
        elif checkpoint.count and _hash_of_row(database, checkpoint.count) != checkpoint.head:
            problems.append(
                Text(
                    "the ledger was rewritten: its row {count} is not the one the checkpoint of {created} in {where}"
                    " signed",
                    count=checkpoint.count,
                    created=checkpoint.created,
                    where=where,
                )
            )
    if written_beside is not None and (recorded is None or written_beside.count > recorded.count):
        problems.append(Text("the database lost checkpoints: {file} is newer than any it holds", file=beside))
    return problems
