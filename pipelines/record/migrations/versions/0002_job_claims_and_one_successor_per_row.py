"""Job claims (which call renders which job now), and one successor per ledger row: the hash
chain cannot fork, whatever the writers do at once."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("job_key", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
        if_not_exists=True,  # a database of the release just before migrations may have it
    )
    op.create_index("claims_owner", "claims", ["owner"], if_not_exists=True)
    op.create_index("ledger_one_successor", "ledger", ["previous_hash"], unique=True)


def downgrade() -> None:
    op.drop_index("ledger_one_successor", "ledger")
    op.drop_index("claims_owner", "claims")
    op.drop_table("claims")
