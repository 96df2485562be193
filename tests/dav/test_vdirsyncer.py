"""
The CalDAV and CardDAV server as vdirsyncer (the PyPI command-line tool)
syncs it with local directories, both ways: what is on the server appears
as files, files added locally are uploaded, an edit on either side reaches
the other, and so does a delete.

vdirsyncer runs as a subprocess from its own virtualenv (its C{requests}
would install C{urllib3} over the C{urllib3-future} that C{caldav} needs in
C{.venv}): C{make test} creates C{.venv-vdirsyncer}; C{GK_TEST_VDIRSYNCER}
names another executable.  Without one the test fails (this project skips
nothing).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import pytest_twisted

from gk.storage.accounts import Account
from tests.dav.conftest import ALICE, PASSWORD, DavServer
from tests.helpers import in_thread

#: The environment variable naming the vdirsyncer executable.
VDIRSYNCER_ENV = "GK_TEST_VDIRSYNCER"
#: Where C{make test} installs it.
DEFAULT_VDIRSYNCER = Path(__file__).resolve().parents[2] / ".venv-vdirsyncer" / "bin" / "vdirsyncer"
#: Seconds one vdirsyncer run may take.
RUN_TIMEOUT = 60.0

CALENDAR = f"/dav/calendars/{ALICE}/calendar/"
BOOK = f"/dav/addressbooks/{ALICE}/contacts/"
ICS = {"Content-Type": "text/calendar; charset=utf-8"}
VCF = {"Content-Type": "text/vcard; charset=utf-8"}


def vevent(uid: str, summary: str) -> str:
    """A one-hour event on 2025-03-10 with C{uid} and C{summary}."""
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//gk tests//vdirsyncer//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20250101T000000Z\r\n"
        "DTSTART:20250310T090000Z\r\nDTEND:20250310T100000Z\r\n"
        f"SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def vcard(uid: str, name: str) -> str:
    """A vCard 3.0 with C{uid} and formatted name C{name}."""
    return (
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n"
        f"EMAIL;TYPE=INTERNET:{uid}@example.org\r\nEND:VCARD\r\n"
    )


def property_value(text: str, name: str) -> str:
    """The value of the first C{name} property line of an iCalendar or vCard text."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.split(";", 1)[0].upper() == name:
            return value
    raise AssertionError(f"no {name} in {text!r}")


def find_vdirsyncer() -> Path:
    """The vdirsyncer executable; the test fails (clearly) when there is none."""
    configured = os.environ.get(VDIRSYNCER_ENV)
    path = Path(configured) if configured else DEFAULT_VDIRSYNCER
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"vdirsyncer not found at {path}: `make test` installs it into .venv-vdirsyncer "
            f"(or: python3 -m venv .venv-vdirsyncer && .venv-vdirsyncer/bin/pip install "
            f"vdirsyncer), or set {VDIRSYNCER_ENV} to a vdirsyncer executable"
        )
    return path


class Sync:
    """A vdirsyncer config for alice's calendars and address books, and its runs."""

    def __init__(self, executable: Path, root: Path, server: DavServer) -> None:
        self.executable = executable
        self.calendars = root / "calendars"
        self.books = root / "contacts"
        self.config = root / "config"
        url = f"{server.url}/dav/"
        pairs = (
            ("calendars", "caldav", self.calendars, ".ics"),
            ("contacts", "carddav", self.books, ".vcf"),
        )
        text = f'[general]\nstatus_path = "{root / "status"}/"\n'
        for pair, kind, path, ext in pairs:
            # "from a" / "from b": every collection of either side, created on
            # the other without asking (implicit = "create").
            text += (
                f'\n[pair {pair}]\na = "{pair}_server"\nb = "{pair}_local"\n'
                'collections = ["from a", "from b"]\nimplicit = "create"\n'
                f'\n[storage {pair}_server]\ntype = "{kind}"\nurl = "{url}"\n'
                f'username = "{ALICE}"\npassword = "{PASSWORD}"\n'
                f'\n[storage {pair}_local]\ntype = "filesystem"\npath = "{path}/"\n'
                f'fileext = "{ext}"\n'
            )
        self.config.write_text(text, encoding="utf-8")

    async def run(self, *command: str) -> str:
        """Run C{vdirsyncer COMMAND} off the reactor thread; its output, or fail."""

        def call() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(self.executable), "--config", str(self.config), *command],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
                env={**os.environ, "HOME": str(self.config.parent)},
            )

        done = await in_thread(call)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"vdirsyncer {' '.join(command)} failed:\n{output}"
        return output

    @staticmethod
    def local(directory: Path) -> dict[str, tuple[Path, str]]:
        """The files of a local collection by UID: (path, text)."""
        found: dict[str, tuple[Path, str]] = {}
        for path in sorted(directory.iterdir()):
            if path.name.startswith("."):
                continue
            text = path.read_text(encoding="utf-8")
            found[property_value(text, "UID")] = (path, text)
        return found


def write_local(path: Path, text: str) -> None:
    """Write a file as an editor would, replacing it (a new inode: vdirsyncer sees the change)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


async def on_server(server: DavServer, account: Account, kind: str) -> dict[str, str]:
    """The bodies of alice's default calendar or address book, by UID (service API)."""
    service = server.app.calendars if kind == "calendar" else server.app.contacts
    collection = "calendar" if kind == "calendar" else "contacts"
    infos = await service.objects(account, collection)
    stored = await service.get_many(account, collection, [info.name for info in infos])
    return {item.uid: item.data.decode("utf-8") for item in stored}


async def put(server: DavServer, path: str, body: str, headers: dict[str, str]) -> None:
    response = await server.call("PUT", path, body.encode("utf-8"), headers)
    assert response.status in (201, 204), (path, response.status, response.body)


async def delete(server: DavServer, path: str) -> None:
    response = await server.call("DELETE", path)
    assert response.status == 204, (path, response.status, response.body)


async def server_href(server: DavServer, kind: str, uid: str) -> str:
    """The path of the resource with C{uid} in alice's default collection."""
    service = server.app.calendars if kind == "calendar" else server.app.contacts
    collection, base = ("calendar", CALENDAR) if kind == "calendar" else ("contacts", BOOK)
    for info in await service.objects(server.alice, collection):
        if info.uid == uid:
            return base + info.name
    raise AssertionError(f"no {uid} on the server")


@pytest_twisted.ensureDeferred
async def test_vdirsyncer_syncs_calendar_and_address_book_both_ways(
    dav_server: DavServer, tmp_path: Path
) -> None:
    """
    Discover, then sync after each change: server objects become files,
    local files are uploaded, edits and deletes on either side propagate,
    and what nobody touched stays.
    """
    vdirsyncer = find_vdirsyncer()
    server = dav_server
    alice = server.alice
    for uid, summary in (("server-a", "Planning"), ("server-b", "Review")):
        await put(server, f"{CALENDAR}{uid}.ics", vevent(uid, summary), ICS)
    for uid, name in (("card-a", "Ada Lovelace"), ("card-b", "Bo Svensson")):
        await put(server, f"{BOOK}{uid}.vcf", vcard(uid, name), VCF)

    root = tmp_path / "vdirsyncer"
    root.mkdir()
    sync = Sync(vdirsyncer, root, server)
    await sync.run("discover")
    await sync.run("sync")

    # Server to local: every object is a file of the default collections.
    local_calendar = sync.calendars / "calendar"
    local_book = sync.books / "contacts"
    events = sync.local(local_calendar)
    cards = sync.local(local_book)
    assert sorted(events) == ["server-a", "server-b"]
    assert property_value(events["server-b"][1], "SUMMARY") == "Review"
    assert sorted(cards) == ["card-a", "card-b"]
    assert property_value(cards["card-a"][1], "FN") == "Ada Lovelace"
    # The tasks calendar was discovered too, and is empty on both sides.
    assert (sync.calendars / "tasks").is_dir()
    assert sync.local(sync.calendars / "tasks") == {}

    # Local to server: new files are uploaded.
    write_local(local_calendar / "local-event.ics", vevent("local-event", "Dentist"))
    write_local(local_book / "local-card.vcf", vcard("local-card", "Cy Local"))
    await sync.run("sync")
    on_calendar = await on_server(server, alice, "calendar")
    on_book = await on_server(server, alice, "contacts")
    assert sorted(on_calendar) == ["local-event", "server-a", "server-b"]
    assert property_value(on_calendar["local-event"], "SUMMARY") == "Dentist"
    assert sorted(on_book) == ["card-a", "card-b", "local-card"]
    assert property_value(on_book["local-card"], "FN") == "Cy Local"

    # Edits: on the server (an event and a card), and locally (the same).
    await put(server, f"{CALENDAR}server-a.ics", vevent("server-a", "Planning (moved)"), ICS)
    await put(server, f"{BOOK}card-b.vcf", vcard("card-b", "Bo Svensson-Berg"), VCF)
    write_local(local_calendar / "local-event.ics", vevent("local-event", "Dentist at 9"))
    write_local(sync.local(local_book)["card-a"][0], vcard("card-a", "Ada King"))
    await sync.run("sync")
    events = sync.local(local_calendar)
    cards = sync.local(local_book)
    on_calendar = await on_server(server, alice, "calendar")
    on_book = await on_server(server, alice, "contacts")
    assert property_value(events["server-a"][1], "SUMMARY") == "Planning (moved)"
    assert property_value(cards["card-b"][1], "FN") == "Bo Svensson-Berg"
    assert property_value(on_calendar["local-event"], "SUMMARY") == "Dentist at 9"
    assert property_value(on_book["card-a"], "FN") == "Ada King"
    # Nothing else changed on either side.
    assert property_value(events["local-event"][1], "SUMMARY") == "Dentist at 9"
    assert property_value(on_calendar["server-a"], "SUMMARY") == "Planning (moved)"
    assert property_value(on_calendar["server-b"], "SUMMARY") == "Review"

    # Deletes: on the server (an event, and the card that came from local),
    # and locally (the event that came from local, and a card of the server).
    await delete(server, f"{CALENDAR}server-a.ics")
    await delete(server, await server_href(server, "contacts", "local-card"))
    sync.local(local_calendar)["local-event"][0].unlink()
    sync.local(local_book)["card-a"][0].unlink()
    await sync.run("sync")
    assert sorted(sync.local(local_calendar)) == ["server-b"]
    assert sorted(sync.local(local_book)) == ["card-b"]
    assert sorted(await on_server(server, alice, "calendar")) == ["server-b"]
    assert sorted(await on_server(server, alice, "contacts")) == ["card-b"]

    # A last sync has nothing to do: both sides agree.
    quiet = await sync.run("sync")
    assert "Copying" not in quiet and "Deleting" not in quiet, quiet
    assert sorted(sync.local(local_calendar)) == ["server-b"]
    assert sorted(await on_server(server, alice, "contacts")) == ["card-b"]
