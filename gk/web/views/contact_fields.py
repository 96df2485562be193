"""
The contact form: its fields as the browser sends them (L{ContactForm}),
a card shown in it (L{ContactForm.from_card}), and the arguments of the
assistant's create_contact and update_contact tools made of it — only
what changed for an update, so that a card written by another program
keeps every line the user did not touch (L{gk.dav.vcard.update_vcard}).

The checks that need the rules of a card (addresses, telephone numbers,
vCard text) are the tools' own; this module only checks what the tools'
schemas would refuse in words a model reads (sizes, counts).  Pure: no
I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gk.assistant.tools import JSON
from gk.dav.vcard import VCardObject
from gk.web.page import Form, FormProblem

#: The tools' schema limits (gk.assistant.contact_tools).
MAX_NAME, MAX_ORGANIZATION, MAX_NOTE = 200, 200, 5000
MAX_VALUES, MAX_EMAIL, MAX_PHONE = 20, 254, 50


@dataclass
class ContactForm:
    """The contact form's fields, as typed: e-mail addresses and numbers one a line."""

    name: str = ""
    emails: str = ""
    phones: str = ""
    organization: str = ""
    note: str = ""

    @classmethod
    def from_form(cls, form: Form) -> ContactForm:
        return cls(
            name=form.get("name").strip(),
            emails=form.get("emails"),
            phones=form.get("phones"),
            organization=form.get("organization").strip(),
            note=form.get("note").strip("\r\n"),
        )

    @classmethod
    def from_card(cls, card: VCardObject) -> ContactForm:
        note = next((p.text for p in card.properties if p.name == "NOTE"), "")
        return cls(
            name=card.fn,
            emails="\n".join(card.emails),
            phones="\n".join(card.tels),
            organization=card.organization,
            note=note,
        )


@dataclass(frozen=True)
class ContactValues:
    """A contact form read: what the contact tools take."""

    name: str
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    organization: str
    note: str


def _lines(text: str) -> tuple[str, ...]:
    """The values of a one-a-line field (commas and semicolons separate too), each once."""
    found: list[str] = []
    for value in re.split(r"[\n,;]", text):
        value = value.strip()
        if value and value not in found:
            found.append(value)
    return tuple(found)


def read_contact(form: ContactForm) -> ContactValues:
    """
    C{form}, checked for what the tools' schemas would refuse.

    @raise FormProblem: a field to correct, said for people.
    """
    if not form.name:
        raise FormProblem("Give the contact a name.", "name")
    emails, phones = _lines(form.emails), _lines(form.phones)
    checks = (
        (len(form.name) > MAX_NAME, f"The name is too long (at most {MAX_NAME} characters).",
         "name"),
        (len(form.organization) > MAX_ORGANIZATION,
         f"The organisation is too long (at most {MAX_ORGANIZATION} characters).", "organization"),
        (len(form.note) > MAX_NOTE, f"The note is too long (at most {MAX_NOTE} characters).",
         "note"),
        (len(emails) > MAX_VALUES, f"Give at most {MAX_VALUES} e-mail addresses.", "emails"),
        (any(len(e) > MAX_EMAIL for e in emails), "An e-mail address is too long.", "emails"),
        (len(phones) > MAX_VALUES, f"Give at most {MAX_VALUES} phone numbers.", "phones"),
        (any(len(p) > MAX_PHONE for p in phones),
         f"A phone number is too long (at most {MAX_PHONE} characters).", "phones"),
    )  # fmt: skip
    for failed, message, field in checks:
        if failed:
            raise FormProblem(message, field)
    return ContactValues(form.name, emails, phones, form.organization, form.note)


def create_arguments(values: ContactValues) -> JSON:
    """create_contact's arguments."""
    arguments: JSON = {"name": values.name}
    if values.emails:
        arguments["emails"] = list(values.emails)
    if values.phones:
        arguments["phones"] = list(values.phones)
    if values.organization:
        arguments["organization"] = values.organization
    if values.note:
        arguments["note"] = values.note
    return arguments


def update_arguments(contact_id: str, before: ContactValues | None, after: ContactValues) -> JSON:
    """
    update_contact's arguments for what changed from C{before} (the card
    as its form showed it; None: unreadable, so every field is sent) to
    C{after}: only C{contact_id} when nothing did.
    """
    arguments: JSON = {"contact_id": contact_id}
    for name in ("name", "organization", "note"):
        if before is None or getattr(before, name) != getattr(after, name):
            arguments[name] = getattr(after, name)
    for name in ("emails", "phones"):
        if before is None or getattr(before, name) != getattr(after, name):
            arguments[name] = list(getattr(after, name))
    return arguments


def tool_problem(message: str) -> FormProblem:
    """A contact tool's refusal, said for people and tied to its field when it names one."""
    text = message.strip()
    for prefix in (
        "invalid arguments for create_contact: ",
        "invalid arguments for update_contact: ",
    ):
        text = text.removeprefix(prefix)
    labels = {"emails": "E-mail addresses", "phones": "Phone numbers"}
    for key, label in labels.items():
        if text.startswith(key + ":"):
            return FormProblem(f"{label}:{text[len(key) + 1 :]}".rstrip(".") + ".", key)
    return FormProblem((text[:1].upper() + text[1:]).rstrip(".") + ".")
