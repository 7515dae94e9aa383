"""Seeds and file sizes in 64 bits on PostgreSQL, whose INTEGER has 32 (a seed spans 2**32 and
beyond). SQLite's INTEGER has 64 bits already: nothing to change there."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.alter_column("ledger", "seed", type_=sa.BigInteger)
        op.alter_column("outputs", "size", type_=sa.BigInteger)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.alter_column("outputs", "size", type_=sa.Integer)
        op.alter_column("ledger", "seed", type_=sa.Integer)
