"""The ledger records the licence of the model that made each file and, where a campaign used a
model whose licence refuses publication, the reason it recorded. Rows written before have none,
and their hashes, which never covered the columns, stay valid (``ledger.LATER_FIELDS``)."""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.add_column("ledger", sa.Column("model_licence", sa.Text))
    op.add_column("ledger", sa.Column("licence_override", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("licence_override")
        batch.drop_column("model_licence")
