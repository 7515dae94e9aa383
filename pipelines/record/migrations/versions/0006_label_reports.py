"""Reports of a wrong AI label, sent by the public through the detector service, kept for the
region to review and answer (``visuels.record.reports``)."""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "label_reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("received", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text),
        sa.Column("where_seen", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("contact", sa.Text),
        sa.Column("language", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("answer", sa.Text),
    )
    op.create_index("label_reports_status", "label_reports", ["status"])


def downgrade() -> None:
    op.drop_index("label_reports_status", "label_reports")
    op.drop_table("label_reports")
