"""covering indexes for a folder's counters and first unseen message, and its messages with keywords

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 13:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_folder_id_seen_uid_size", ["folder_id", "seen", "uid", "size"]
        )
        batch_op.create_index(
            "ix_messages_folder_id_with_keywords",
            ["folder_id"],
            sqlite_where=sa.text("keywords != ''"),
            postgresql_where=sa.text("keywords != ''"),
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_folder_id_with_keywords")
        batch_op.drop_index("ix_messages_folder_id_seen_uid_size")
