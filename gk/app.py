"""
L{GkApp}: the one object that wires configuration, storage and services
together and is passed to whatever needs them (no globals).

Building it touches nothing; L{GkApp.prepare} (blocking, before the reactor
runs) checks the database, upgrades the schema, makes sure the config's
domains exist and repairs the mail index; L{gk.service.make_service} turns
it into the twistd service tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger

from gk.accounts import AccountService, normalize_domain
from gk.calendars import CalendarService
from gk.chat import ChatService
from gk.config import Config
from gk.contacts import ContactService
from gk.delivery.dkim_sign import DKIMSigner, key_directory
from gk.errors import GkError
from gk.events import EventBus
from gk.mailauth import MailAuthenticator
from gk.mailboxes import MailboxService
from gk.metrics import Metrics
from gk.queue import DeliveryQueue
from gk.security.events import SecurityEvents
from gk.security.service import Security
from gk.storage import accounts as account_store
from gk.storage import migrate
from gk.storage.database import Database
from gk.storage.mailstore import MailStore, RepairReport
from gk.tls import ServerTLS


@dataclass
class GkApp:
    config: Config
    reactor: Any
    db: Database
    events: EventBus
    mailstore: MailStore
    accounts: AccountService
    metrics: Metrics
    queue: DeliveryQueue
    mailboxes: MailboxService
    security: Security
    mailauth: MailAuthenticator
    calendars: CalendarService
    contacts: ContactService
    chat: ChatService
    _tls: ServerTLS | None = field(default=None, repr=False)

    log = Logger()

    @classmethod
    def build(cls, config: Config, reactor: Any = None) -> GkApp:
        db = Database(config.database_url, reactor)
        events = EventBus()
        mailstore = MailStore(db, config.mail_dir, events, reactor)
        accounts = AccountService(db, mailstore, reactor)
        metrics = Metrics()
        signer = DKIMSigner(key_directory(config.server.data_dir))
        queue = DeliveryQueue(db, config.spool_dir, sign=signer.sign)
        security = Security(
            config.security,
            reactor,
            SecurityEvents(reactor, metrics.security_events, metrics.auth_attempts),
        )
        mailauth = MailAuthenticator(config.dns, config.server.hostname, reactor)
        return cls(
            config,
            reactor,
            db,
            events,
            mailstore,
            accounts,
            metrics,
            queue,
            MailboxService(db, mailstore),
            security,
            mailauth,
            CalendarService(db, events),
            ContactService(db, events),
            ChatService(db, events),
        )

    @property
    def tls(self) -> ServerTLS:
        """The shared server TLS context, loaded on first use."""
        if self._tls is None:
            self._tls = ServerTLS(self.config.tls_cert_path, self.config.tls_key_path)
        return self._tls

    @property
    def tls_loaded(self) -> bool:
        return self._tls is not None

    def prepare(self, repair: bool = True) -> RepairReport | None:
        """
        Blocking start-up work, run before the reactor: reach the database,
        bring the schema up to date, register the config's domains, and
        make the mail index agree with the files.

        @raise gk.errors.GkError: any of it failed; the message says what.
        """
        for path in (self.config.server.data_dir, self.config.mail_dir, self.config.spool_dir):
            try:
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as e:
                raise GkError(f"cannot create {path}: {e.strerror}") from None
        self.db.check_connection()
        if migrate.upgrade(self.db.engine):
            self.log.info(
                "database schema upgraded to {rev}", rev=migrate.head_revision(self.db.engine)
            )
        self.ensure_config_domains()
        if not repair:
            return None
        removed = self.queue.clean_spool()
        if removed:
            self.log.warn("removed {count} dead spool file(s)", count=removed)
        return self.mailstore.repair()

    def ensure_config_domains(self) -> None:
        domains = [normalize_domain(d) for d in self.config.server.domains]
        with self.db.transaction() as session:
            for domain in domains:
                account_store.add_domain(session, domain)
