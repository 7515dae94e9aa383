"""The ledger records the starting-noise mark each generated picture was drawn from (its payload),
so `detect --deep` can confirm a mark too worn to decode against what the deployment made. Rows
written before have none, and their hashes, which never covered the column, stay valid
(``ledger.LATER_FIELDS``)."""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.add_column("ledger", sa.Column("noise_mark", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("noise_mark")
