"""Each review's pictures, frozen when it is asked for: a review run's parameters name its batch
rather than carrying 100,000 job keys to Prefect (``visuels.record.review_batches``)."""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_table(
        "review_pictures",
        sa.Column("review", sa.Text, primary_key=True),
        sa.Column("job_key", sa.Text, primary_key=True),
        sa.Column("campaign", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_index("review_pictures_campaign", "review_pictures", ["campaign"])


def downgrade() -> None:
    op.drop_index("review_pictures_campaign", "review_pictures")
    op.drop_table("review_pictures")
