"""the instances of recurring events by month, computed when they are written

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "dav_series_months",
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("zone_key", sa.String(length=64), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("spans", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["object_id"], ["dav_objects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("object_id", "zone_key", "month"),
    )


def downgrade() -> None:
    op.drop_table("dav_series_months")
