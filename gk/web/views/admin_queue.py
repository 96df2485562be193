"""
The web admin's view of the outbound queue (C{/admin/queue}): every
queued message with each recipient's state, attempts, next attempt and
last error; "retry now" and "delete", through the L{gk.queue.DeliveryQueue}
methods C{gk queue retry|delete} use.

Retry makes the message's deferred recipients due now and wakes this
process's delivery worker; recipients still pending are due already.
Delete drops the message without a bounce, as C{gk queue delete} does,
after a confirmation page (a POST without C{confirm=yes} only shows it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gk.cli_commands import format_time
from gk.queue import NotQueued, normalize_queue_id
from gk.storage.queue_store import WAITING, QueueEntry
from gk.web.page import Handler, PageCall, Reply
from gk.web.views.admin_common import message_of, render

if TYPE_CHECKING:
    from gk.service import GkService

#: Queue ids read from a form at most this long (see L{gk.queue.MAX_QUEUE_ID}).
MAX_ID = 64


def _queue_id(typed: str) -> str:
    return normalize_queue_id(typed[:MAX_ID])


def message_view(entry: QueueEntry) -> dict[str, Any]:
    """One queued message as the page shows it (times RFC 3339 UTC, as the CLI prints)."""
    recipients = [
        {
            "address": address,
            "state": state,
            "attempts": attempts,
            "next": format_time(next_attempt) if state in ("pending", "deferred") else "",
            "error": error,
        }
        for address, state, attempts, next_attempt, error in entry.recipients
    ]
    return {
        "id": entry.queue_id,
        "sender": entry.sender or "<>",
        "size": entry.size,
        "created": format_time(entry.created),
        "recipients": recipients,
        "waiting": sum(1 for r in recipients if r["state"] in WAITING),
        "deferred": sum(1 for r in recipients if r["state"] == "deferred"),
    }


class AdminQueuePages:
    """C{/admin/queue}: the queued messages, retry and delete."""

    def __init__(self, tree: GkService) -> None:
        self.app = tree.app
        self.queue = tree.app.queue

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/admin/queue", self.list),
            ("POST", "/admin/queue/retry", self.retry),
            ("GET", "/admin/queue/delete", self.confirm_delete),
            ("POST", "/admin/queue/delete", self.delete),
        ]

    async def _page(self, call: PageCall, status: int = 200, **context: object) -> Reply:
        entries = await self.queue.entries()
        return render(
            call,
            "admin_queue.html",
            status,
            section="queue",
            messages=[message_view(e) for e in entries],
            worker=self.app.config.delivery.worker,
            **context,
        )

    async def list(self, call: PageCall) -> Reply:
        return await self._page(call)

    async def retry(self, call: PageCall) -> Reply:
        queue_id = _queue_id(call.form.get("id"))
        try:
            count = await self.queue.retry_now(queue_id)
        except NotQueued as e:
            return await self._page(call, 404, error=message_of(e))
        if count:
            notice = f"{queue_id}: {count} deferred recipient(s) are due now."
        else:
            notice = f"{queue_id}: no recipient was waiting for a retry (pending ones are due)."
        return await self._page(call, notice=notice)

    async def confirm_delete(self, call: PageCall) -> Reply:
        return await self._confirm_page(call, _queue_id(call.query.get("id", "")))

    async def _confirm_page(self, call: PageCall, queue_id: str) -> Reply:
        """The confirmation page of deleting C{queue_id}; the list with an error if gone."""
        entry = next((e for e in await self.queue.entries() if e.queue_id == queue_id), None)
        if entry is None:
            return await self._page(call, 404, error=message_of(NotQueued(queue_id)))
        return self._confirm(call, message_view(entry))

    def _confirm(self, call: PageCall, message: dict[str, Any]) -> Reply:
        addresses = ", ".join(r["address"] for r in message["recipients"])
        return render(
            call,
            "admin_confirm.html",
            section="queue",
            heading=f"Delete message {message['id']}?",
            explanation=f"The message from {message['sender']} to {addresses} is removed "
            "from the queue and never delivered. Nobody is told: no bounce is sent.",
            action="/admin/queue/delete",
            fields={"id": message["id"]},
            button="Delete the message",
            cancel="/admin/queue",
        )

    async def delete(self, call: PageCall) -> Reply:
        queue_id = _queue_id(call.form.get("id"))
        if call.form.get("confirm") != "yes":
            return await self._confirm_page(call, queue_id)
        try:
            await self.queue.delete(queue_id)
        except NotQueued as e:
            return await self._page(call, 404, error=message_of(e))
        return await self._page(call, notice=f"{queue_id}: deleted; it will not be delivered.")
