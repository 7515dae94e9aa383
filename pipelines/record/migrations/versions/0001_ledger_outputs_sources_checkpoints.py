"""The ledger (append-only, hash-chained), outputs, sources and ledger checkpoints.

A database made before migrations existed already has these: every step here is "if not exists",
so it is brought under Alembic as it is.
"""

import sqlalchemy as sa
from alembic import op
from visuels.record.migrations import append_only_guards

revision = "0001"
down_revision = None

LEDGER_TEXT = ("created", "file", "sha256", "phash", "watermark", "job_key", "model_hash", "lora_hash")
LEDGER_MORE_TEXT = ("charter_hash", "prompt")


def upgrade() -> None:
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *(sa.Column(name, sa.Text) for name in LEDGER_TEXT + LEDGER_MORE_TEXT),
        sa.Column("seed", sa.Integer),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.Column("run_id", sa.Text),
        sa.Column("parent_id", sa.Integer),
        sa.Column("approval", sa.Text),
        sa.Column("previous_hash", sa.Text, nullable=False),
        sa.Column("row_hash", sa.Text, nullable=False),
        if_not_exists=True,
    )
    op.create_index("ledger_watermark", "ledger", ["watermark"], if_not_exists=True)
    op.create_index("ledger_job_key", "ledger", ["job_key"], if_not_exists=True)
    op.create_table(
        "outputs",
        sa.Column("job_key", sa.Text, primary_key=True),
        sa.Column("campaign", sa.Text, nullable=False),
        sa.Column("file", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("watermark", sa.Text, nullable=False),
        sa.Column("thumbnail", sa.Text, nullable=False),
        sa.Column("compliance", sa.Text, nullable=False),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("created", sa.Text, nullable=False),
        sa.Column("ledger_id", sa.Integer, nullable=False),
        if_not_exists=True,
    )
    op.create_index("outputs_campaign", "outputs", ["campaign"], if_not_exists=True)
    op.create_table(
        "sources",
        sa.Column("hash", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        if_not_exists=True,
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("head", sa.Text, nullable=False),
        sa.Column("created", sa.Text, nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("certificate", sa.Text, nullable=False),
        if_not_exists=True,
    )
    for statement in append_only_guards(op.get_context().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    raise RuntimeError("the ledger is a record of what was published: it is never dropped")
