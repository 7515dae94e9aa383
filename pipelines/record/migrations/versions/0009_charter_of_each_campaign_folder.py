"""Each campaign folder records the charter it belongs to: two campaigns of one name under two
charters would otherwise share a folder, a manifest and a report (``visuels.record.campaign_folders``).
Folders made before have no row; their next run records theirs."""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "campaign_folders",
        sa.Column("campaign", sa.Text, primary_key=True),
        sa.Column("charter_slug", sa.Text, nullable=False),
        sa.Column("charter_name", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("campaign_folders")
