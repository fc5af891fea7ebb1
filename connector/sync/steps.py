"""A job's writes to its contact, step by step (the :class:`ContactSteps` part of the sync worker).

Each write is recorded as a step: a note or task is marked *started* before it is sent and looked for
at the CRM before it is sent again; the callback counter is counted in the same transaction that
records the step.  Tags and fields are diffed against the contact as last read, and never trusted
after a failed try: the worker re-reads the contact then (``outbox.distrust_contact``).  A call older
than the last one applied to its contact is *stale*: it adds only its note and task.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from connector.store.reader import StoreReader
from connector.sync import outbox
from connector.sync.crm.errors import PermanentError
from connector.sync.crm.ghl import GhlClient
from connector.sync.rules import Plan, callback_effects
from connector.sync.settings import GhlSettings

log = logging.getLogger(__name__)


def _cached_contact(conn: sqlite3.Connection, phone: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT contact_id, tags_json, fields_json, checked_at FROM contacts WHERE phone = ?", (phone,)
    ).fetchone()
    if row is None:
        return None
    return {"id": row[0], "tags": json.loads(row[1] or "[]"), "fields": json.loads(row[2] or "{}"), "checked_at": row[3]}


def _counter(conn: sqlite3.Connection, phone: str) -> int | None:
    row = conn.execute("SELECT count FROM callback_counters WHERE phone = ?", (phone,)).fetchone()
    return int(row[0]) if row else None


class ContactSteps:
    """The steps of one job on its contact; mixed into the sync worker, which provides these."""

    reader: StoreReader
    settings: GhlSettings
    clock: Callable[[], float]
    _field_ids: dict[str, str] | None
    _field_ids_lock: asyncio.Lock

    async def _write(self, job_id: int, fn: Callable[[sqlite3.Connection], Any] | None = None) -> Any:
        raise NotImplementedError

    async def _sync_contact(self, client: GhlClient, job: dict[str, Any], plan: Plan) -> None:
        job_id = job["id"]
        done = await self.reader.run(outbox.steps, job_id)
        contact = await self._contact(client, job_id, plan, done)
        if contact is None:
            return
        cid = contact["id"]
        turn = await self._turn(job, plan)
        if plan.note:
            await self._once(
                job_id, "note", done,
                post=lambda: client.add_note(cid, plan.note or ""),
                already=lambda: self._has_marker(client.list_notes(cid), plan.marker),
            )
        if turn is not None:  # a stale call only adds its note and task
            count, cb_add, cb_remove = turn
            await self._tags(client, job_id, plan, contact, cb_add, cb_remove)
            await self._fields(client, job_id, plan, contact, count)
        if plan.task:
            title, body, due = plan.task
            await self._once(
                job_id, "task", done,
                post=lambda: client.create_task(cid, title, body, due),
                already=lambda: self._has_marker(client.list_tasks(cid), plan.marker),
            )

    @staticmethod
    async def _has_marker(items: Awaitable[list[dict[str, Any]]], marker: str) -> bool:
        return any(marker in (item.get("body") or "") for item in await items)

    async def _once(
        self,
        job_id: int,
        step: str,
        done: dict[str, tuple[str, Any]],
        *,
        post: Callable[[], Awaitable[Any]],
        already: Callable[[], Awaitable[bool]],
    ) -> None:
        """A write that must happen exactly once: recorded as started before it is sent."""
        state = done.get(step, (None, None))[0]
        if state == "done":
            return
        if state == "started" and await already():
            await self._write(job_id, lambda c: outbox.set_step(c, job_id, step, "done", {"found": True}, self.clock()))
            return
        await self._write(job_id, lambda c: outbox.set_step(c, job_id, step, "started", None, self.clock()))
        result = await post()
        ref = result.get("id") if isinstance(result, dict) else None
        await self._write(job_id, lambda c: outbox.set_step(c, job_id, step, "done", {"id": ref}, self.clock()))

    async def _contact(
        self, client: GhlClient, job_id: int, plan: Plan, done: dict[str, tuple[str, Any]]
    ) -> dict[str, Any] | None:
        """The contact for the plan's phone: from the cache, refreshed when stale, else looked up."""
        step = done.get("contact")
        if step and step[1] and step[1].get("skipped"):
            return None
        cached = await self.reader.run(_cached_contact, plan.phone)
        found: dict[str, Any] | None = None
        if cached:
            if self.clock() - (cached["checked_at"] or 0) < self.settings.contact_cache_seconds:
                if not step:
                    await self._write(
                        job_id, lambda c: outbox.set_step(c, job_id, "contact", "done", {"id": cached["id"]}, self.clock())
                    )
                return cached
            try:  # stale tags/fields: re-read the known contact, no search needed
                found = await client.get_contact(cached["id"])
            except PermanentError:
                found = None  # deleted in the CRM meanwhile: look it up again
        if found is None:
            found = await client.find_contact_by_phone(plan.phone)
        if found is None:
            if self.settings.missing_contact == "skip":
                await self._write(
                    job_id, lambda c: outbox.set_step(c, job_id, "contact", "done", {"skipped": True}, self.clock())
                )
                return None
            found = await client.upsert_contact(plan.phone)
        contact = found.get("contact", found)
        now = self.clock()

        def save(conn: sqlite3.Connection) -> None:
            outbox.cache_contact(conn, plan.phone, contact, now)
            outbox.set_step(conn, job_id, "contact", "done", {"id": contact["id"]}, now)

        await self._write(job_id, save)
        return await self.reader.run(_cached_contact, plan.phone)

    async def _turn(self, job: dict[str, Any], plan: Plan) -> tuple[int | None, list[str], list[str]] | None:
        """The contact's turn for this call, in one transaction: None when a call that ended later was
        applied already (stale); else the callback counter to write (counted once) and its tags."""
        job_id, now = job["id"], self.clock()
        end = job["call_end"] if job.get("call_end") is not None else job["created_at"]

        def apply(conn: sqlite3.Connection) -> tuple[int | None, list[str], list[str]] | None:
            newer = outbox.take_turn(conn, plan.phone, end, job_id, now)
            if newer is not None:
                outbox.set_step(conn, job_id, "stale", "done", {"newer_job": newer}, now)
                return None
            recorded = outbox.steps(conn, job_id).get("callback")
            add: list[str] = []
            remove: list[str] = []
            if recorded is not None:
                result = recorded[1] or {}
                add, remove = result.get("add", []), result.get("remove", [])
            elif plan.callback != "none":
                count, add, remove = callback_effects(plan.callback, _counter(conn, plan.phone) or 0, self.settings)
                outbox.count_callback(conn, job_id, plan.phone, count, {"add": add, "remove": remove}, now)
            # The store's counter is the truth: written whenever the contact has one.
            return _counter(conn, plan.phone), add, remove

        return await self._write(job_id, apply)

    async def _tags(
        self,
        client: GhlClient,
        job_id: int,
        plan: Plan,
        contact: dict[str, Any],
        cb_add: list[str],
        cb_remove: list[str],
    ) -> None:
        # Recomputed on every try, never skipped as done: after a failure the contact was re-read,
        # so a write that landed unseen (or anything else that changed it) is corrected here.
        have = {t.casefold() for t in contact["tags"]}
        wanted = list(dict.fromkeys(plan.add_tags + cb_add))
        unwanted = [t for t in dict.fromkeys(plan.remove_tags + cb_remove) if t not in wanted]
        add = [t for t in wanted if t.casefold() not in have]
        remove = [t for t in unwanted if t.casefold() in have]
        tags = list(contact["tags"])
        if add:
            await client.add_tags(contact["id"], add)
            tags += add
        if remove:
            await client.remove_tags(contact["id"], remove)
            gone = {t.casefold() for t in remove}
            tags = [t for t in tags if t.casefold() not in gone]

        def save(conn: sqlite3.Connection) -> None:
            outbox.update_contact_cache(conn, plan.phone, tags=tags)
            outbox.set_step(conn, job_id, "tags", "done", {"added": add, "removed": remove}, self.clock())

        await self._write(job_id, save)

    async def _fields(
        self,
        client: GhlClient,
        job_id: int,
        plan: Plan,
        contact: dict[str, Any],
        count: int | None,
    ) -> None:
        values = dict(plan.fields)
        if count is not None and self.settings.callback_count_field:
            values[self.settings.callback_count_field] = count
        if not values:
            return
        field_ids = await self._custom_field_ids(client)
        current = contact["fields"]
        changes, missing = [], []
        for key, value in values.items():
            field_id = field_ids.get(key)
            if field_id is None:
                missing.append(key)
            elif str(current.get(field_id)) != str(value):
                changes.append((field_id, value))
        if changes:
            await client.update_custom_fields(contact["id"], changes)
        fields = current | {fid: value for fid, value in changes}

        def save(conn: sqlite3.Connection) -> None:
            outbox.update_contact_cache(conn, plan.phone, fields=fields)
            outbox.set_step(conn, job_id, "fields", "done", {"written": len(changes), "unknown_keys": missing}, self.clock())

        if missing:
            log.warning("sync: custom fields %s do not exist in GHL location %s", missing, self.settings.location_id)
        await self._write(job_id, save)

    async def _custom_field_ids(self, client: GhlClient) -> dict[str, str]:
        """Field key -> id, listed once (concurrent jobs wait for the one request in flight)."""
        async with self._field_ids_lock:
            if self._field_ids is None:
                definitions = [d for d in await client.list_custom_fields() if d.get("id")]
                ids = {d.get("fieldKey", ""): d["id"] for d in definitions}
                self._field_ids = ids | {key.removeprefix("contact."): i for key, i in ids.items()}
            return self._field_ids
