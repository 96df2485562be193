"""
The database schema, as SQLAlchemy 2.x declarative models.

Every change here needs an alembic revision in ``migrations/versions``; a
test compares these models with the newest migration.  Types stay portable
(SQLite and PostgreSQL): no JSON operators, no arrays, times in UTC.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class UTCDateTime(TypeDecorator[datetime.datetime]):
    """
    A timestamp stored as UTC and always read back timezone-aware (SQLite
    has no time zones; PostgreSQL gets C{timestamp with time zone}).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(datetime.UTC)

    def process_result_value(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)
        return value.astimezone(datetime.UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        # SQLite keeps the naive UTC text SQLAlchemy wrote ("2026-11-21
        # 10:00:00.000000"): one C-level parse instead of two layers of
        # processors, which were a sixth of a 1,000-event calendar query.
        parse = datetime.datetime.fromisoformat
        utc = datetime.UTC

        def process(value: str | None) -> datetime.datetime | None:
            if value is None:
                return None
            parsed = parse(value)
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=utc)
            return parsed.astimezone(utc)

        return process


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Domain(Base):
    """A mail domain served locally."""

    __tablename__ = "domains"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Lower-case, IDNA (A-label) form.
    name: Mapped[str] = mapped_column(String(253), unique=True)
    created: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    """An account: a mailbox, calendars, contacts, chat identity."""

    __tablename__ = "users"
    # AUTOINCREMENT: SQLite would otherwise give a deleted user's id to the
    # next new user, who would inherit whatever still refers to that id.
    __table_args__ = (UniqueConstraint("domain_id", "local_part"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="RESTRICT"))
    #: Lower-case local part; C{email} is C{local_part@domain} and unique.
    local_part: Mapped[str] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    #: Argon2id PHC string.
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Bytes of mail allowed; L{None} means no limit.
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)

    domain: Mapped[Domain] = relationship()


class Alias(Base):
    """
    An address delivered elsewhere: C{source} is C{local@domain} or, for a
    catch-all, C{@domain}; C{target} is one address, local or not.
    """

    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("source", "target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(320), index=True)
    target: Mapped[str] = mapped_column(String(320))
    created: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AppPassword(Base):
    """A password for one IMAP/SMTP/DAV client, revocable on its own."""

    __tablename__ = "app_passwords"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    #: SHA-256 hex of the generated secret (high-entropy, so no slow hash needed).
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class APIToken(Base):
    """A bearer token for the MCP endpoint and other API clients."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    #: SHA-256 hex of the token.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class MailFolder(Base):
    """One IMAP mailbox of a user, backed by one Maildir++ folder."""

    __tablename__ = "mail_folders"
    __table_args__ = (UniqueConstraint("user_id", "name"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    #: The IMAP name, "/"-separated hierarchy, C{INBOX} for the inbox.
    name: Mapped[str] = mapped_column(String(255))
    #: RFC 6154 attribute such as C{\\Sent}, or L{None}.
    special_use: Mapped[str | None] = mapped_column(String(20), nullable=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uidnext: Mapped[int] = mapped_column(BigInteger, default=1)
    highest_modseq: Mapped[int] = mapped_column(BigInteger, default=1)
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(Base):
    """
    The index entry of one stored message: where its file is, its flags,
    and the parsed envelope, so that listing and header search never open
    the file.
    """

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("folder_id", "uid"),
        Index("ix_messages_folder_id_internal_date", "folder_id", "internal_date"),
        Index("ix_messages_message_id", "message_id"),
        # Covering indexes: a folder's counters, its first unseen message
        # and its keywords without reading the (wide) rows: SELECT/STATUS.
        Index("ix_messages_folder_id_seen_uid_size", "folder_id", "seen", "uid", "size"),
        # Partial: only messages with keywords (few), not the keyword text,
        # which may outgrow a PostgreSQL B-tree entry.
        Index(
            "ix_messages_folder_id_with_keywords",
            "folder_id",
            sqlite_where=text("keywords != ''"),
            postgresql_where=text("keywords != ''"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("mail_folders.id", ondelete="CASCADE"))
    uid: Mapped[int] = mapped_column(BigInteger)
    #: Maildir unique name (without the C{:2,} info suffix).
    filename: Mapped[str] = mapped_column(String(255))
    #: Path of the file relative to the folder's Maildir, e.g. C{new/NAME}.
    path: Mapped[str] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(BigInteger)
    internal_date: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    modseq: Mapped[int] = mapped_column(BigInteger, default=1)
    seen: Mapped[bool] = mapped_column(Boolean, default=False)
    answered: Mapped[bool] = mapped_column(Boolean, default=False)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    draft: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Space-separated IMAP keywords (C{$Junk}, C{$Forwarded}, user words).
    keywords: Mapped[str] = mapped_column(Text, default="")
    # The envelope, decoded to text (RFC 2047), for listing and search.
    date: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    from_: Mapped[str] = mapped_column("from_addr", Text, default="")
    sender: Mapped[str] = mapped_column(Text, default="")
    reply_to: Mapped[str] = mapped_column(Text, default="")
    to: Mapped[str] = mapped_column("to_addr", Text, default="")
    cc: Mapped[str] = mapped_column("cc_addr", Text, default="")
    bcc: Mapped[str] = mapped_column("bcc_addr", Text, default="")
    message_id: Mapped[str] = mapped_column(Text, default="")
    in_reply_to: Mapped[str] = mapped_column(Text, default="")
    references: Mapped[str] = mapped_column(Text, default="")
    #: The IMAP ENVELOPE as sent (None for rows indexed before it was kept).
    imap_envelope: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class VanishedMessage(Base):
    """
    A message expunged from a folder, with the modseq of its expunge: what
    QRESYNC (RFC 7162 3.2.5) reports as VANISHED (EARLIER) to a client that
    last saw an older modseq.
    """

    __tablename__ = "vanished_messages"
    __table_args__ = (
        Index("ix_vanished_messages_folder_id_modseq", "folder_id", "modseq"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("mail_folders.id", ondelete="CASCADE"))
    uid: Mapped[int] = mapped_column(BigInteger)
    modseq: Mapped[int] = mapped_column(BigInteger)


class QueuedMessage(Base):
    """
    A message waiting for delivery to remote recipients.  Its bytes are in
    the spool file C{data_dir/spool/<queue_id>}; the row exists only once
    the file is on disk.
    """

    __tablename__ = "queued_messages"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue_id: Mapped[str] = mapped_column(String(32), unique=True)
    #: The envelope sender; "" for the null reverse-path.
    sender: Mapped[str] = mapped_column(String(320))
    #: The local account that submitted it (bounces go to its INBOX), if any.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    size: Mapped[int] = mapped_column(BigInteger)
    smtputf8: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class QueuedRecipient(Base):
    """
    One remote recipient of a queued message and its delivery state:
    pending, sending, deferred, sent, bounced or failed.
    """

    __tablename__ = "queued_recipients"
    __table_args__ = (
        Index("ix_queued_recipients_state_next_attempt", "state", "next_attempt"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("queued_messages.id", ondelete="CASCADE"), index=True
    )
    address: Mapped[str] = mapped_column(String(320))
    domain: Mapped[str] = mapped_column(String(255), index=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    delay_warned: Mapped[bool] = mapped_column(Boolean, default=False)


class DavCollection(Base):
    """
    A CalDAV calendar, CardDAV address book or scheduling inbox of a user
    (C{kind} "calendar", "addressbook", "schedule-inbox"), named by its
    URL segment, unique per user and kind.  C{revision} counts its changes
    (members and properties): the RFC 6578 sync token and the CTag.
    """

    __tablename__ = "dav_collections"
    # AUTOINCREMENT: the id is in sync tokens; a deleted collection's id
    # given to a new one would make the old collection's tokens look valid.
    __table_args__ = (
        UniqueConstraint("user_id", "kind", "name"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    #: The URL segment.
    name: Mapped[str] = mapped_column(String(255))
    displayname: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    #: Apple's calendar-color, e.g. C{#1E90FFFF}.
    color: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: Apple's calendar-order.
    sort_order: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: A VCALENDAR with one VTIMEZONE (CalDAV calendar-timezone).
    timezone: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Comma-separated component names (C{VEVENT,VTODO}); "" for address books.
    components: Mapped[str] = mapped_column(String(64), default="")
    #: Last change's number; 0 for a new collection.
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Tombstones up to this revision were pruned: older sync tokens are refused.
    pruned_revision: Mapped[int] = mapped_column(BigInteger, default=0)
    #: PROPPATCH properties not modelled above, JSON C{{clark-name: xml}}.
    dead_properties: Mapped[str] = mapped_column(Text, default="{}")
    created: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


#: The columns of L{DavObject}'s covering index for time-range reports.
EVENT_ENTRY_COLUMNS = (
    "collection_id", "component", "range_end", "range_start", "name", "etag", "size",
    "modified", "recurring",
)  # fmt: skip


class DavObject(Base):
    """
    One calendar object or vCard resource: its bytes and what queries need
    without parsing them (UTC bounds of the whole recurrence set, summary
    or FN, e-mail addresses).
    """

    __tablename__ = "dav_objects"
    __table_args__ = (
        UniqueConstraint("collection_id", "name"),
        # One UID per collection (CalDAV no-uid-conflict, CardDAV likewise).
        Index("ix_dav_objects_collection_id_uid", "collection_id", "uid", unique=True),
        Index("ix_dav_objects_collection_id_revision", "collection_id", "revision"),
        Index("ix_dav_objects_collection_id_range_end", "collection_id", "range_end"),
        # Covers what a time-range report reads of each event (dav_queries.
        # event_entries): the wide rows, bodies inline, stay unread.
        Index("ix_dav_objects_event_entries", *EVENT_ENTRY_COLUMNS),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("dav_collections.id", ondelete="CASCADE"))
    #: The resource's URL segment.
    name: Mapped[str] = mapped_column(String(255))
    #: The iCalendar/vCard UID (Text: some clients' UIDs are long).
    uid: Mapped[str] = mapped_column(Text)
    #: The quoted strong entity tag, a hash of C{data}.
    etag: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    #: VEVENT, VTODO, VJOURNAL or VCARD.
    component: Mapped[str] = mapped_column(String(16))
    #: UTC bounds of the whole recurrence set; L{None} is unbounded.
    range_start: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    range_end: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    recurring: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The event's SUMMARY or the card's FN.
    summary: Mapped[str] = mapped_column(Text, default="")
    #: Lower-case addresses, one per line.
    emails: Mapped[str] = mapped_column(Text, default="")
    size: Mapped[int] = mapped_column(Integer)
    #: The collection's revision when this was last written.
    revision: Mapped[int] = mapped_column(BigInteger)
    created: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DavSeriesMonth(Base):
    """
    The instances of a recurring event that overlap one calendar month,
    with floating times read in one zone: computed when the event is
    written (for the months around then), so that a time-range query
    after a restart need not parse and expand every recurring event.
    Replaced with the object's bytes; a month not stored is computed by
    the query.
    """

    __tablename__ = "dav_series_months"

    object_id: Mapped[int] = mapped_column(
        ForeignKey("dav_objects.id", ondelete="CASCADE"), primary_key=True
    )
    #: The zone's cache key (L{gk.dav.report_common.Zone.key}).
    zone_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: year * 12 + month - 1, in UTC.
    month: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Little-endian float64 triples: start, end (POSIX seconds), 1.0 for
    #: an interval or 0.0 for an instant.
    spans: Mapped[bytes] = mapped_column(LargeBinary)


class DavTombstone(Base):
    """
    A resource name deleted (or moved away) from a collection at
    C{revision}: what sync-collection (RFC 6578) reports as removed.
    """

    __tablename__ = "dav_tombstones"
    __table_args__ = (
        Index("ix_dav_tombstones_collection_id_revision", "collection_id", "revision"),
    )

    collection_id: Mapped[int] = mapped_column(
        ForeignKey("dav_collections.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger)
    deleted: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


# -- chat ------------------------------------------------------------------


#: A search word: compared byte by byte on every database (PostgreSQL's
#: "C" collation, SQLite's default BINARY), so that a prefix is a range of
#: an ordinary B-tree index whatever the server's locale.
ChatWordType = String(64).with_variant(String(64, collation="C"), "postgresql")


class ChatSequence(Base):
    """
    The one row (C{id} 1) holding the chat change log's latest position.
    Every chat write locks it first, so chat writes are serialised and
    positions are handed out in commit order (see L{gk.storage.chat_store}).
    """

    __tablename__ = "chat_sequence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    position: Mapped[int] = mapped_column(BigInteger, default=0)


class ChatRoom(Base):
    """
    A chat room: C{kind} "public", "private" or "direct".  A direct room
    has no name (clients show the other person) and a C{direct_key}, the
    two members' user ids, unique: one conversation per pair.
    """

    __tablename__ = "chat_rooms"
    # AUTOINCREMENT: room ids are in clients' caches and change logs.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(80), default="")
    #: C{"<smaller user id>:<larger user id>"} for a direct room, else L{None}.
    direct_key: Mapped[str | None] = mapped_column(String(40), nullable=True, unique=True)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When the newest message was posted (the creation time before any).
    last_activity: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatMember(Base):
    """
    A user's membership of a room (C{role} "owner" or "member") and their
    read marker: the id of the newest message they have read (0: none).
    """

    __tablename__ = "chat_members"
    __table_args__ = (Index("ix_chat_members_user_id_room_id", "user_id", "room_id"),)

    room_id: Mapped[int] = mapped_column(
        ForeignKey("chat_rooms.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16), default="member")
    joined: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_read: Mapped[int] = mapped_column(BigInteger, default=0)


class ChatMessage(Base):
    """
    One message of a room.  Deleting one keeps its row as a tombstone
    (empty text, C{deleted} true) so that clients can sync the deletion.
    A reply names its thread's root in C{reply_to}; the root counts its
    replies that are not deleted in C{reply_count}.
    """

    __tablename__ = "chat_messages"
    __table_args__ = (
        Index("ix_chat_messages_room_id_id", "room_id", "id"),
        Index("ix_chat_messages_reply_to_id", "reply_to", "id"),
        # AUTOINCREMENT: ids order a room's history and are read markers.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("chat_rooms.id", ondelete="CASCADE"))
    #: L{None} once the sender's account is deleted.
    sender_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    text: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    edited: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    reply_to: Mapped[int | None] = mapped_column(
        ForeignKey("chat_messages.id", ondelete="CASCADE"), nullable=True
    )
    reply_count: Mapped[int] = mapped_column(Integer, default=0)


class ChatReaction(Base):
    """One user's reaction with one emoji to one message."""

    __tablename__ = "chat_reactions"

    message_id: Mapped[int] = mapped_column(
        ForeignKey("chat_messages.id", ondelete="CASCADE"), primary_key=True
    )
    emoji: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    created: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatMention(Base):
    """A member mentioned (C{@alice}) in a message's current text."""

    __tablename__ = "chat_mentions"
    __table_args__ = (Index("ix_chat_mentions_user_id_message_id", "user_id", "message_id"),)

    message_id: Mapped[int] = mapped_column(
        ForeignKey("chat_messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class ChatWord(Base):
    """
    A normalised word of a message's current text (casefolded, accents
    stripped), once per message: the search index.  The primary key serves
    exact and prefix look-ups; the second index drops a message's words
    when it is edited or deleted.
    """

    __tablename__ = "chat_words"
    __table_args__ = (Index("ix_chat_words_message_id", "message_id"),)

    word: Mapped[str] = mapped_column(ChatWordType, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("chat_messages.id", ondelete="CASCADE"), primary_key=True
    )


class ChatChange(Base):
    """
    One entry of the chat change log, at a global C{position} taken from
    L{ChatSequence}.  Message changes name the message (clients get its
    current state); membership and read-marker changes name the user they
    are about in C{subject_id}; a C{private} change (a read marker) is
    seen by that user only.  C{data} is JSON for what the change must
    remember itself (e.g. the member's address, the emoji).
    """

    __tablename__ = "chat_changes"
    __table_args__ = (
        Index("ix_chat_changes_room_id_position", "room_id", "position"),
        Index("ix_chat_changes_subject_id_position", "subject_id", "position"),
    )

    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    room_id: Mapped[int] = mapped_column(ForeignKey("chat_rooms.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("chat_messages.id", ondelete="CASCADE"), nullable=True
    )
    subject_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    data: Mapped[str] = mapped_column(Text, default="{}")
    created: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AssistantConversation(Base):
    """
    One conversation between a user and the assistant.  C{pending} is JSON
    for a turn paused on the user's consent: the tool calls of the model's
    last step not yet run, the first awaiting the confirmation whose id is
    C{confirmation_id} (None when no turn is paused).
    """

    __tablename__ = "assistant_conversations"
    __table_args__ = (Index("ix_assistant_conversations_user_id_updated", "user_id", "updated"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200), default="")
    created: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmation_id: Mapped[str | None] = mapped_column(String(32), nullable=True, unique=True)
    pending: Mapped[str] = mapped_column(Text, default="")


class AssistantMessage(Base):
    """
    One message of a conversation, in the order of C{seq}: C{role} is
    user, assistant or tool, C{body} the JSON of the message as the model
    API takes it back (content, thinking, tool_calls, tool_name), and
    C{events} the JSON list of the events shown to the user for it.
    """

    __tablename__ = "assistant_messages"
    __table_args__ = (UniqueConstraint("conversation_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("assistant_conversations.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    events: Mapped[str] = mapped_column(Text, default="[]")
    created: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebSession(Base):
    """
    A signed-in browser (the web UI's server-side session).  C{id} is the
    SHA-256 of the cookie's value, so the table never holds a usable
    cookie; C{csrf_token} is the synchronizer token the session's pages
    carry in their forms and htmx requests.
    """

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_user_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    user_agent: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(64), default="")
