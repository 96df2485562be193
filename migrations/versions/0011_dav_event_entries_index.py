"""a covering index for time-range reports over events

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-21 20:30:00
"""

from __future__ import annotations

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

COLUMNS = [
    "collection_id", "component", "range_end", "range_start", "name", "etag", "size",
    "modified", "recurring",
]  # fmt: skip


def upgrade() -> None:
    with op.batch_alter_table("dav_objects", schema=None) as batch_op:
        batch_op.create_index("ix_dav_objects_event_entries", COLUMNS)


def downgrade() -> None:
    with op.batch_alter_table("dav_objects", schema=None) as batch_op:
        batch_op.drop_index("ix_dav_objects_event_entries")
