"""expunged UIDs with their modseq, for QRESYNC's VANISHED (EARLIER)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "vanished_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("folder_id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["folder_id"],
            ["mail_folders.id"],
            name=op.f("fk_vanished_messages_folder_id_mail_folders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vanished_messages")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("vanished_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_vanished_messages_folder_id_modseq", ["folder_id", "modseq"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("vanished_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_vanished_messages_folder_id_modseq")
    op.drop_table("vanished_messages")
