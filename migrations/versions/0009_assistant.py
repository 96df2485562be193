"""assistant: conversations and their messages

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-21 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gk.storage.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

UTC = gk.storage.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "assistant_conversations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("created", UTC, nullable=False),
        sa.Column("updated", UTC, nullable=False),
        sa.Column("confirmation_id", sa.String(length=32), nullable=True),
        sa.Column("pending", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_assistant_conversations_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assistant_conversations")),
        sa.UniqueConstraint(
            "confirmation_id", name=op.f("uq_assistant_conversations_confirmation_id")
        ),
    )
    op.create_index(
        "ix_assistant_conversations_user_id_updated",
        "assistant_conversations",
        ["user_id", "updated"],
    )
    op.create_table(
        "assistant_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("created", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["assistant_conversations.id"],
            name=op.f("fk_assistant_messages_conversation_id_assistant_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assistant_messages")),
        sa.UniqueConstraint(
            "conversation_id", "seq", name=op.f("uq_assistant_messages_conversation_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("assistant_messages")
    op.drop_index("ix_assistant_conversations_user_id_updated", "assistant_conversations")
    op.drop_table("assistant_conversations")
