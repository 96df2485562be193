"""chat: rooms, members and read markers, messages, reactions, mentions, search words, change log

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gk.storage.models

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

UTC = gk.storage.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    sequence = op.create_table(
        "chat_sequence",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_sequence")),
    )
    # The log's one counter row: every chat write locks it.
    op.bulk_insert(sequence, [{"id": 1, "position": 0}])

    op.create_table(
        "chat_rooms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("direct_key", sa.String(length=40), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created", UTC, nullable=False),
        sa.Column("last_activity", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_chat_rooms_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_rooms")),
        sa.UniqueConstraint("direct_key", name=op.f("uq_chat_rooms_direct_key")),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "chat_members",
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("joined", UTC, nullable=False),
        sa.Column("last_read", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["chat_rooms.id"],
            name=op.f("fk_chat_members_room_id_chat_rooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_chat_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("room_id", "user_id", name=op.f("pk_chat_members")),
    )
    with op.batch_alter_table("chat_members", schema=None) as batch_op:
        batch_op.create_index("ix_chat_members_user_id_room_id", ["user_id", "room_id"])

    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created", UTC, nullable=False),
        sa.Column("edited", UTC, nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("reply_to", sa.Integer(), nullable=True),
        sa.Column("reply_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["reply_to"],
            ["chat_messages.id"],
            name=op.f("fk_chat_messages_reply_to_chat_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["chat_rooms.id"],
            name=op.f("fk_chat_messages_room_id_chat_rooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"],
            ["users.id"],
            name=op.f("fk_chat_messages_sender_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.create_index("ix_chat_messages_room_id_id", ["room_id", "id"])
        batch_op.create_index("ix_chat_messages_reply_to_id", ["reply_to", "id"])

    op.create_table(
        "chat_reactions",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("emoji", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["chat_messages.id"],
            name=op.f("fk_chat_reactions_message_id_chat_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_chat_reactions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "emoji", "user_id", name=op.f("pk_chat_reactions")),
    )

    op.create_table(
        "chat_mentions",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["chat_messages.id"],
            name=op.f("fk_chat_mentions_message_id_chat_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_chat_mentions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "user_id", name=op.f("pk_chat_mentions")),
    )
    with op.batch_alter_table("chat_mentions", schema=None) as batch_op:
        batch_op.create_index("ix_chat_mentions_user_id_message_id", ["user_id", "message_id"])

    op.create_table(
        "chat_words",
        sa.Column(
            "word",
            # Byte order on PostgreSQL too: prefixes are index ranges.
            sa.String(length=64).with_variant(sa.String(length=64, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["chat_messages.id"],
            name=op.f("fk_chat_words_message_id_chat_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("word", "message_id", name=op.f("pk_chat_words")),
    )
    with op.batch_alter_table("chat_words", schema=None) as batch_op:
        batch_op.create_index("ix_chat_words_message_id", ["message_id"])

    op.create_table(
        "chat_changes",
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("subject_id", sa.Integer(), nullable=True),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["chat_messages.id"],
            name=op.f("fk_chat_changes_message_id_chat_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["chat_rooms.id"],
            name=op.f("fk_chat_changes_room_id_chat_rooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["users.id"],
            name=op.f("fk_chat_changes_subject_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_chat_changes")),
    )
    with op.batch_alter_table("chat_changes", schema=None) as batch_op:
        batch_op.create_index("ix_chat_changes_room_id_position", ["room_id", "position"])
        batch_op.create_index("ix_chat_changes_subject_id_position", ["subject_id", "position"])


def downgrade() -> None:
    with op.batch_alter_table("chat_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_changes_subject_id_position")
        batch_op.drop_index("ix_chat_changes_room_id_position")
    op.drop_table("chat_changes")
    with op.batch_alter_table("chat_words", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_words_message_id")
    op.drop_table("chat_words")
    with op.batch_alter_table("chat_mentions", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_mentions_user_id_message_id")
    op.drop_table("chat_mentions")
    op.drop_table("chat_reactions")
    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_messages_reply_to_id")
        batch_op.drop_index("ix_chat_messages_room_id_id")
    op.drop_table("chat_messages")
    with op.batch_alter_table("chat_members", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_members_user_id_room_id")
    op.drop_table("chat_members")
    op.drop_table("chat_rooms")
    op.drop_table("chat_sequence")
