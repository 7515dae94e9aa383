"""Claims become leases of registered owners: each rendering call registers a random owner id
with its machine and process, and renews that one row; its claims are free once the lease
lapses (or, on its own machine, once its process is gone). The claims in flight are dropped:
they are held only while a render runs, and a render does not run across an upgrade. The
ledger gets an index on ``sha256`` (verify and finalize look files up by it)."""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "claim_owners",
        sa.Column("owner", sa.Text, primary_key=True),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("machine", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
    )
    op.drop_index("claims_owner", "claims")
    op.drop_table("claims")
    op.create_table(
        "claims",
        sa.Column("job_key", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
    )
    op.create_index("claims_owner", "claims", ["owner"])
    op.create_index("ledger_sha256", "ledger", ["sha256"])


def downgrade() -> None:
    op.drop_index("ledger_sha256", "ledger")
    op.drop_index("claims_owner", "claims")
    op.drop_table("claims")
    op.create_table(
        "claims",
        sa.Column("job_key", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
    )
    op.create_index("claims_owner", "claims", ["owner"])
    op.drop_table("claim_owners")
