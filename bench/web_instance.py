"""
A throw-away gk for the web UI's bench and screenshot scripts: C{gk init},
alice (an admin) and bob, then C{twistd -n gk --config FILE} with HTTP on
a free loopback port named by C{[http] public_url} (as in a deployment, so
the browser's Origin matches), the MX listener on loopback, and a little
of everything to look at: mail (plain, HTML with a remote image, an
attachment) over SMTP, a chat room with messages over the JSON API, an
event and a contact over CalDAV/CardDAV.
"""

from __future__ import annotations

import contextlib
import datetime
import email.message
import email.utils
import smtplib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from smtp_ingest import gk_command, running_server, temporary_directory

DOMAIN = "example.test"
ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
PASSWORD = "correct horse battery staple"


@dataclass
class WebInstance:
    base_url: str
    smtp_port: int
    tokens: dict[str, str]
    directory: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(directory: Path, http_port: int, database_url: str | None) -> Path:
    database = f'[database]\nurl = "{database_url}"\n\n' if database_url else ""
    config = directory / "gk.toml"
    config.write_text(
        "[server]\n"
        'hostname = "localhost"\n'
        f'domains = ["{DOMAIN}"]\n'
        'data_dir = "data"\n\n'
        f"{database}"
        '[smtp]\nlisten = ["tcp:0:interface=127.0.0.1"]\n\n'
        "[submission]\nlisten = []\ntls_listen = []\n\n"
        "[imap]\nlisten = []\ntls_listen = []\n\n"
        f'[http]\nlisten = ["tcp:{http_port}:interface=127.0.0.1"]\ntls_listen = []\n'
        f'public_url = "http://127.0.0.1:{http_port}/"\n\n'
        "[delivery]\nworker = false\n\n"
        # The assistant points at a port nothing listens on: it shows as unavailable.
        f'[assistant]\nollama_url = "http://127.0.0.1:{free_port()}"\n\n'
        '[security]\nexempt_networks = ["127.0.0.0/8"]\n',
        encoding="utf-8",
    )
    return config


def _letter(
    sender: str, subject: str, text: str, html: str | None = None
) -> email.message.EmailMessage:
    message = email.message.EmailMessage()
    message["From"] = sender
    message["To"] = ALICE
    message["Subject"] = subject
    message["Date"] = email.utils.format_datetime(email.utils.localtime())
    message["Message-ID"] = email.utils.make_msgid(domain="sender.example")
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def seed(instance: WebInstance, messages: int = 30) -> None:
    """Mail, chat, an event and a contact for alice (blocking)."""
    with smtplib.SMTP("127.0.0.1", instance.smtp_port, timeout=30) as smtp:
        for n in range(messages):
            letter = _letter(f"sender{n % 7}@sender.example", f"Report number {n}", f"Body {n}.\n")
            smtp.send_message(letter)
        html = (
            "<h1>Newsletter</h1><p>Hello <b>Alice</b>, here is the news.</p>"
            '<img src="https://tracker.example/pixel.png" alt="tracker">'
            "<script>document.title = 'pwned'</script>"
        )
        smtp.send_message(_letter("news@sender.example", "The monthly newsletter", "News.", html))
        with_file = _letter(BOB, "The contract", "The contract is attached.\n")
        with_file.add_attachment(b"%PDF-1.4 demo\n", maintype="application", subtype="pdf",
                                 filename="contract.pdf")  # fmt: skip
        smtp.send_message(with_file)
    headers = {"Authorization": f"Bearer {instance.tokens[ALICE]}"}
    bob_headers = {"Authorization": f"Bearer {instance.tokens[BOB]}"}
    with httpx.Client(base_url=instance.base_url, timeout=30) as http:
        room = http.post(
            "/api/chat/rooms", json={"name": "general", "kind": "public", "members": [BOB]},
            headers=headers,
        ).json()  # fmt: skip
        conversation = [
            (headers, "Morning! Stand-up at 10?"),
            (bob_headers, "Yes, see you there."),
            (headers, "I'll bring the minutes."),
        ]
        for who, text in conversation:
            http.post(f"/api/chat/rooms/{room['id']}/messages", json={"text": text}, headers=who)
        today = datetime.date.today()
        start = datetime.datetime.combine(today, datetime.time(10, 0))
        event = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//gk bench//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:standup@{DOMAIN}\r\nDTSTAMP:20260101T000000Z\r\n"
            f"DTSTART:{start:%Y%m%dT%H%M%S}\r\nDURATION:PT30M\r\nSUMMARY:Stand-up\r\n"
            "RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        auth = (ALICE, PASSWORD)
        http.put(f"/dav/calendars/{ALICE}/calendar/standup.ics", content=event, auth=auth,
                 headers={"Content-Type": "text/calendar"})  # fmt: skip
        card = (
            "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bob-card\r\nFN:Bob Example\r\nN:Example;Bob;;;\r\n"
            f"EMAIL;TYPE=INTERNET:{BOB}\r\nTEL;TYPE=CELL:+33 6 12 34 56 78\r\nORG:Example\r\n"
            "END:VCARD\r\n"
        )
        http.put(f"/dav/addressbooks/{ALICE}/contacts/bob.vcf", content=card, auth=auth,
                 headers={"Content-Type": "text/vcard"})  # fmt: skip


@contextlib.contextmanager
def web_instance(database_url: str | None = None, keep: bool = False) -> Iterator[WebInstance]:
    """A running instance with alice and bob (the data is not seeded: call L{seed})."""
    with temporary_directory("gk-web-", keep) as directory:
        http_port = free_port()
        config = write_config(directory, http_port, database_url)
        gk_command(config, "init", "--domain", DOMAIN, "--hostname", "localhost")
        gk_command(config, "user", "add", ALICE, "--admin", "--password-stdin",
                   stdin=PASSWORD + "\n")  # fmt: skip
        gk_command(config, "user", "add", BOB, "--password-stdin", stdin=PASSWORD + "\n")
        tokens = {
            who: gk_command(config, "token", "create", who, "--name", "bench").strip().split()[-1]
            for who in (ALICE, BOB)
        }
        with running_server(config, "smtp") as (smtp_port, _process):
            yield WebInstance(f"http://127.0.0.1:{http_port}", smtp_port, tokens, directory)
