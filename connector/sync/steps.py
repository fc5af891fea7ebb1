"""One job's GoHighLevel plan carried out step by step on its contact (:class:`PlanRun`).

Each write is recorded as a step: a note or task is marked *started* before it is sent and looked for
at the CRM before it is sent again; the callback counter is counted in the same transaction that
records the step.  Tags and fields are diffed against the contact as last read, and never trusted
after a failed try: the worker re-reads the contact then (``store.contacts.distrust``).  A call older
than the last one applied to its contact is *stale*: it adds only its note and task.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from connector.store import contacts, jobs
from connector.store.db import Db
from connector.sync import outbox
from connector.sync.crm.base import SyncStore
from connector.sync.crm.errors import PermanentError
from connector.sync.crm.ghl import GhlClient
from connector.sync.rules import Plan, callback_effects
from connector.sync.settings import GhlSettings

log = logging.getLogger(__name__)


class PlanRun:
    """The steps of one claimed job on its contact, against one client and store."""

    def __init__(self, client: GhlClient, store: SyncStore, settings: GhlSettings, job: dict[str, Any], plan: Plan,
                 field_ids: Callable[[], Awaitable[dict[str, str]]]) -> None:
        self.client = client
        self.store = store
        self.settings = settings
        self.job = job
        self.job_id: int = job["id"]
        self.plan = plan
        self.field_ids = field_ids

    def _write(self, fn: Callable[[Db], Any]) -> Awaitable[Any]:
        return self.store.write(self.job_id, fn)

    def _set_step(self, step: str, state: str, result: Any) -> Awaitable[Any]:
        return self._write(lambda db: jobs.set_step(db, self.job_id, step, state, result, self.store.clock()))

    async def run(self) -> None:
        client, plan = self.client, self.plan
        done = await self.store.read(jobs.steps, self.job_id)
        contact = await self._contact(done)
        if contact is None:
            return
        cid = contact["id"]
        turn = await self._turn()
        if plan.note:
            await self._once("note", done, post=lambda: client.add_note(cid, plan.note or ""),
                             already=lambda: self._has_marker(client.list_notes(cid)))
        if turn is not None:  # a stale call only adds its note and task
            count, cb_add, cb_remove = turn
            await self._tags(contact, cb_add, cb_remove)
            await self._fields(contact, count)
        if plan.task:
            title, body, due = plan.task
            await self._once("task", done, post=lambda: client.create_task(cid, title, body, due),
                             already=lambda: self._has_marker(client.list_tasks(cid)))

    async def _has_marker(self, items: Awaitable[list[dict[str, Any]]]) -> bool:
        return any(self.plan.marker in (item.get("body") or "") for item in await items)

    async def _once(self, step: str, done: dict[str, tuple[str, Any]], *, post: Callable[[], Awaitable[Any]],
                    already: Callable[[], Awaitable[bool]]) -> None:
        """A write that must happen exactly once: recorded as started before it is sent."""
        state = done.get(step, (None, None))[0]
        if state == "done":
            return
        if state == "started" and await already():
            await self._set_step(step, "done", {"found": True})
            return
        await self._set_step(step, "started", None)
        result = await post()
        await self._set_step(step, "done", {"id": result.get("id") if isinstance(result, dict) else None})

    async def _contact(self, done: dict[str, tuple[str, Any]]) -> dict[str, Any] | None:
        """The contact for the plan's phone: from the cache, refreshed when stale, else looked up."""
        client, phone = self.client, self.plan.phone
        step = done.get("contact")
        if step and step[1] and step[1].get("skipped"):
            return None
        cached = await self.store.read(contacts.cached, phone)
        found: dict[str, Any] | None = None
        if cached:
            if self.store.clock() - (cached["checked_at"] or 0) < self.settings.contact_cache_seconds:
                if not step:
                    await self._set_step("contact", "done", {"id": cached["id"]})
                return cached
            try:  # stale tags/fields: re-read the known contact, no search needed
                found = await client.get_contact(cached["id"])
            except PermanentError:
                found = None  # deleted in the CRM meanwhile: look it up again
        if found is None:
            found = await client.find_contact_by_phone(phone)
        if found is None:
            if self.settings.missing_contact == "skip":
                await self._set_step("contact", "done", {"skipped": True})
                return None
            found = await client.upsert_contact(phone)
        contact = found.get("contact", found)
        now = self.store.clock()

        def save(db: Db) -> None:
            contacts.cache(db, phone, contact, now)
            jobs.set_step(db, self.job_id, "contact", "done", {"id": contact["id"]}, now)

        await self._write(save)
        return await self.store.read(contacts.cached, phone)

    async def _turn(self) -> tuple[int | None, list[str], list[str]] | None:
        """The contact's turn for this call, in one transaction: None when a call that ended later was
        applied already (stale); else the callback counter to write (counted once) and its tags."""
        job, job_id, phone, plan = self.job, self.job_id, self.plan.phone, self.plan
        now = self.store.clock()
        end = job["call_end"] if job.get("call_end") is not None else job["created_at"]

        def apply(db: Db) -> tuple[int | None, list[str], list[str]] | None:
            newer = contacts.take_turn(db, phone, end, job_id, now)
            if newer is not None:
                jobs.set_step(db, job_id, "stale", "done", {"newer_job": newer}, now)
                return None
            recorded = jobs.steps(db, job_id).get("callback")
            add: list[str] = []
            remove: list[str] = []
            if recorded is not None:
                result = recorded[1] or {}
                add, remove = result.get("add", []), result.get("remove", [])
            elif plan.callback != "none":
                count, add, remove = callback_effects(plan.callback, contacts.counter(db, phone) or 0, self.settings)
                outbox.count_callback(db, job_id, phone, count, {"add": add, "remove": remove}, now)
            # The store's counter is the truth: written whenever the contact has one.
            return contacts.counter(db, phone), add, remove

        return await self._write(apply)

    async def _tags(self, contact: dict[str, Any], cb_add: list[str], cb_remove: list[str]) -> None:
        # Recomputed on every try, never skipped as done: after a failure the contact was re-read,
        # so a write that landed unseen (or anything else that changed it) is corrected here.
        plan = self.plan
        have = {t.casefold() for t in contact["tags"]}
        wanted = list(dict.fromkeys(plan.add_tags + cb_add))
        unwanted = [t for t in dict.fromkeys(plan.remove_tags + cb_remove) if t not in wanted]
        add = [t for t in wanted if t.casefold() not in have]
        remove = [t for t in unwanted if t.casefold() in have]
        tags = list(contact["tags"])
        if add:
            await self.client.add_tags(contact["id"], add)
            tags += add
        if remove:
            await self.client.remove_tags(contact["id"], remove)
            gone = {t.casefold() for t in remove}
            tags = [t for t in tags if t.casefold() not in gone]

        def save(db: Db) -> None:
            contacts.update_cache(db, plan.phone, tags=tags)
            jobs.set_step(db, self.job_id, "tags", "done", {"added": add, "removed": remove}, self.store.clock())

        await self._write(save)

    async def _fields(self, contact: dict[str, Any], count: int | None) -> None:
        values = dict(self.plan.fields)
        if count is not None and self.settings.callback_count_field:
            values[self.settings.callback_count_field] = count
        if not values:
            return
        field_ids = await self.field_ids()
        current = contact["fields"]
        changes, missing = [], []
        for key, value in values.items():
            field_id = field_ids.get(key)
            if field_id is None:
                missing.append(key)
            elif str(current.get(field_id)) != str(value):
                changes.append((field_id, value))
        if changes:
            await self.client.update_custom_fields(contact["id"], changes)
        fields = current | {fid: value for fid, value in changes}

        def save(db: Db) -> None:
            contacts.update_cache(db, self.plan.phone, fields=fields)
            jobs.set_step(db, self.job_id, "fields", "done", {"written": len(changes), "unknown_keys": missing},
                          self.store.clock())

        if missing:
            log.warning("sync: custom fields %s do not exist in GHL location %s", missing, self.settings.location_id)
        await self._write(save)
