"""CalDAV/CardDAV storage: collections, objects and sync tombstones

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gk.storage.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "dav_collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("displayname", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("color", sa.String(length=32), nullable=True),
        sa.Column("sort_order", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.Text(), nullable=True),
        sa.Column("components", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("pruned_revision", sa.BigInteger(), nullable=False),
        sa.Column("dead_properties", sa.Text(), nullable=False),
        sa.Column("created", gk.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_dav_collections_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dav_collections")),
        sa.UniqueConstraint("user_id", "kind", "name", name=op.f("uq_dav_collections_user_id")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "dav_objects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("uid", sa.Text(), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("component", sa.String(length=16), nullable=False),
        sa.Column("range_start", gk.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("range_end", gk.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("recurring", sa.Boolean(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("emails", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("created", gk.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("modified", gk.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["dav_collections.id"],
            name=op.f("fk_dav_objects_collection_id_dav_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dav_objects")),
        sa.UniqueConstraint("collection_id", "name", name=op.f("uq_dav_objects_collection_id")),
    )
    with op.batch_alter_table("dav_objects", schema=None) as batch_op:
        batch_op.create_index(
            "ix_dav_objects_collection_id_uid", ["collection_id", "uid"], unique=True
        )
        batch_op.create_index(
            "ix_dav_objects_collection_id_revision", ["collection_id", "revision"], unique=False
        )
        batch_op.create_index(
            "ix_dav_objects_collection_id_range_end", ["collection_id", "range_end"], unique=False
        )

    op.create_table(
        "dav_tombstones",
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("deleted", gk.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["dav_collections.id"],
            name=op.f("fk_dav_tombstones_collection_id_dav_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "name", name=op.f("pk_dav_tombstones")),
    )
    with op.batch_alter_table("dav_tombstones", schema=None) as batch_op:
        batch_op.create_index(
            "ix_dav_tombstones_collection_id_revision", ["collection_id", "revision"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("dav_tombstones", schema=None) as batch_op:
        batch_op.drop_index("ix_dav_tombstones_collection_id_revision")
    op.drop_table("dav_tombstones")
    with op.batch_alter_table("dav_objects", schema=None) as batch_op:
        batch_op.drop_index("ix_dav_objects_collection_id_range_end")
        batch_op.drop_index("ix_dav_objects_collection_id_revision")
        batch_op.drop_index("ix_dav_objects_collection_id_uid")
    op.drop_table("dav_objects")
    op.drop_table("dav_collections")
