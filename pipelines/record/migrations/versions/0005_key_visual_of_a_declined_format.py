"""The ledger records, for a format declined from its commune's key visual (a campaign in
key_visual mode), the job key of the key visual's own file: its parent. Rows written before have
none, and their hashes, which never covered the column, stay valid (``ledger.LATER_FIELDS``)."""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.add_column("ledger", sa.Column("key_visual", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("key_visual")
