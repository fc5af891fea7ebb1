"""Sync drain: a backlog of finished calls against the fake GoHighLevel's rate limit.

A Service starts on a temp data dir with ``[crm.ghl]`` configured but no CRM
token, so the sync worker pauses ("no CRM token") while N signed finished-call
events (a mix of every default-rule outcome, spread over a pool of phone
numbers, some of them pre-seeded as contacts in GHL) go in through the real
receiver.  Then the token appears in the (in-memory) keyring and the worker
drains the backlog against ``tests.fakes.ghl_server.FakeGhl``, which checks
every request against the GHL OpenAPI files and enforces the same sliding
window the client is configured with.

Printed: the drain rate (GHL requests/s from the first CRM request to the last
job done) as a fraction of the limit (target >= 0.95, zero 429s), and GHL
requests per outcome against the requests the rules require, computed without
the worker: the plans (``rules.plan_for`` + ``rules.callback_effects``) replayed
in claim order over a model of each contact (exists?, tags, custom fields,
callback counter) starting from the fake's seeded state.  That is what a
perfect client sends: 1 lookup per distinct phone, 1 upsert per phone not in
GHL, 1 custom-field-definitions list per run, and per outcome a note, a
tags.add / tags.remove only when a tag really changes, a fields write only when
a value changes, a task when the rule has one.  Target ratio actual/required:
1.00.  Excess request kinds are listed and attributed (cache expiry, jobs of
the same phone in flight together, ...).

Time is scaled: ``--scale K`` divides the rate window of the fake and of the
client by K (default 10: "100/1s"), and the simulated GHL latency too, so the
limit ratio and the latency/window ratio match the real "100/10s"; local
costs (SQLite, CPU) are not scaled, which makes a scaled run the harder one.
``--scale 1`` runs the real window (5,000 outcomes then take ~35 minutes).

Exit code 1 on a hard failure (a dead letter, a spec violation or unhandled
request in the fake, a 429, an unfinished drain, a retried job); the targets
are reported, and fail the run only with ``--strict``.

    .venv/bin/python bench/run.py sync [--outcomes 5000] [--scale 10] [--concurrency 8[,16]]
    .venv/bin/python bench/sync_bench.py --outcomes 1000 --scale 1
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REAL_RATE = (100, 10.0)  # GHL: 100 requests per 10 s per app and location
SOURCE = "dialer"
SECRET = "bench-sync-secret-0123456789abcdef"
CALLER_ID = "+12025550000"
TARGET_FRACTION = 0.95
TARGET_RATIO = 1.00
KIND_ORDER = ("fields.list", "lookup", "upsert", "note", "tags.add", "tags.remove", "fields", "task")

# Outcome mix of a typical outbound dialer backlog (weights, percent).
OUTCOME_MIX = {
    "no_answer": 34,
    "voicemail": 20,
    "connected": 20,
    "busy": 8,
    "failed": 6,
    "abandoned": 6,
    "sale": 6,
}
SEED_TAGS = ("active dialing", "no answer", "call connected", "voicemail", "lead", "busy")


class BenchError(RuntimeError):
    """The benchmark could not run as designed (posting failed, wrong outcomes, ...)."""


# -- the backlog ----------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_payload(outcome: str, call_id: str, phone: str, ended: datetime, rng: random.Random) -> dict[str, Any]:
    """An UnlimCall-style finished-call event that callsync folds into ``outcome``."""
    ring = rng.randint(4, 25)
    talk = rng.randint(20, 600)
    base: dict[str, Any] = {
        "call_uuid": call_id,
        "from": CALLER_ID,
        "to": phone,
        "direction": "outbound",
        "seat_id": f"seat_{rng.randint(1, 24):02d}",
        "did_id": "did_us_1",
        "campaign": rng.choice(("spring-renewals", "win-back", "new-leads")),
    }
    if outcome in ("connected", "sale"):
        answered = ended - timedelta(seconds=talk)
        base |= {
            "event": "call.completed",
            "initiated_at": _iso(answered - timedelta(seconds=ring)),
            "answered_at": _iso(answered),
            "ended_at": _iso(ended),
            "duration_seconds": talk,
            "hangup_cause": "normal_clearing",
        }
        if outcome == "sale":
            base["disposition"] = "SALE"
        return base
    started = _iso(ended - timedelta(seconds=ring))
    if outcome == "no_answer":
        return base | {"event": "call.failed", "initiated_at": started, "ended_at": _iso(ended),
                       "sip_response_code": 480, "hangup_cause": "no_answer"}
    if outcome == "busy":
        return base | {"event": "call.failed", "initiated_at": started, "ended_at": _iso(ended),
                       "sip_response_code": 486, "hangup_cause": "user_busy"}
    if outcome == "failed":
        return base | {"event": "call.failed", "initiated_at": started, "ended_at": _iso(ended),
                       "sip_response_code": 503, "hangup_cause": "network_out_of_order"}
    if outcome == "voicemail":
        return base | {"event": "call.voicemail.detected", "initiated_at": started, "ended_at": _iso(ended)}
    if outcome == "abandoned":  # an inbound caller who hung up in the queue
        return base | {"event": "call.completed", "direction": "inbound", "from": phone, "to": CALLER_ID,
                       "initiated_at": started, "ended_at": _iso(ended), "disposition": "ABANDON"}
    raise ValueError(outcome)


@dataclass
class Backlog:
    bodies: list[bytes]
    intended: dict[str, str]  # call_id -> outcome
    phones: list[str]


def make_backlog(outcomes: int, phones: int, rng: random.Random) -> Backlog:
    """``outcomes`` calls over ``phones`` numbers, in time order over the last few days."""
    pool = [f"+1{area}555{n:04d}" for area in (202, 303, 415, 512, 617, 718) for n in range(1000, 10000)]
    numbers = rng.sample(pool, phones)
    kinds, weights = zip(*OUTCOME_MIX.items())
    start = datetime(2026, 6, 1, 13, 0, tzinfo=timezone.utc)
    span = 4 * 24 * 3600  # four days of dialing
    stamps = sorted(rng.uniform(0, span) for _ in range(outcomes))
    bodies, intended = [], {}
    for offset in stamps:
        call_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        outcome = rng.choices(kinds, weights)[0]
        phone = rng.choice(numbers)
        payload = event_payload(outcome, call_id, phone, start + timedelta(seconds=offset), rng)
        bodies.append(json.dumps(payload, separators=(",", ":")).encode())
        intended[call_id] = outcome
    return Backlog(bodies, intended, numbers)


def seed_contacts(fake: Any, phones: list[str], fraction: float, rng: random.Random) -> int:
    """Put ``fraction`` of the phones into GHL already, with some tags and field values."""
    outcome_id = fake.custom_field_id("contact.last_call_outcome")
    count_id = fake.custom_field_id("contact.callback_count")
    seeded = 0
    for phone in phones:
        if rng.random() >= fraction:
            continue
        tags = [t for t in SEED_TAGS if rng.random() < 0.3]
        custom = []
        if rng.random() < 0.5:
            custom.append({"id": outcome_id, "value": rng.choice(("no answer", "voicemail", "connected"))})
        if rng.random() < 0.2:
            custom.append({"id": count_id, "value": rng.randint(0, 2)})
        fake.add_contact(phone, firstName=f"Lead{seeded}", tags=tags, customFields=custom)
        seeded += 1
    return seeded


def sign(body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Webhook-Signature": digest, "Content-Type": "application/json"}


async def post_backlog(url: str, bodies: list[bytes], parallel: int) -> float:
    import aiohttp

    started = time.monotonic()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    failures: list[str] = []

    async def sender(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            async with http.post(url, data=body, headers=sign(body)) as resp:
                if resp.status != 200:
                    failures.append(f"HTTP {resp.status}: {(await resp.text())[:200]}")

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=parallel)) as http:
        await asyncio.gather(*(sender(http) for _ in range(parallel)))
    if failures:
        raise BenchError(f"{len(failures)} events were refused, first: {failures[0]}")
    return time.monotonic() - started


# -- the requests a perfect client sends ------------------------------------------


@dataclass
class ContactModel:
    exists: bool
    tags: set[str] = field(default_factory=set)  # casefolded
    fields: dict[str, str] = field(default_factory=dict)  # field key -> value as text
    seen: bool = False
    count: int = 0


def initial_model(fake: Any) -> dict[str, ContactModel]:
    keys = {d["id"]: d["fieldKey"] for d in fake.custom_fields}
    model = {}
    for contact in fake.contacts.values():
        values = {keys[c["id"]]: str(c["value"]) for c in contact["customFields"] if c["id"] in keys}
        model[contact["phone"]] = ContactModel(True, {t.casefold() for t in contact["tags"]}, values)
    return model


def required_requests(
    jobs: list[tuple[int, Any]], settings: Any, model: dict[str, ContactModel], field_keys: set[str]
) -> tuple[Counter[str], dict[str, Counter[str]], dict[int, str]]:
    """Replay the plans in claim order: (totals, per phone, job id -> phone)."""
    from connector.sync.rules import callback_effects, plan_for

    totals: Counter[str] = Counter()
    per_phone: dict[str, Counter[str]] = defaultdict(Counter)
    phone_of: dict[int, str] = {}
    for job_id, call in jobs:
        plan = plan_for(call, settings)
        phone_of[job_id] = plan.phone
        state = model.setdefault(plan.phone, ContactModel(False))
        need = per_phone[plan.phone]
        if not state.seen:
            state.seen = True
            need["lookup"] += 1
            if not state.exists:
                need["upsert"] += 1
                state.exists = True
        count, cb_add, cb_remove = None, [], []
        if plan.callback != "none":
            count, cb_add, cb_remove = callback_effects(plan.callback, state.count, settings)
            state.count = count
        if plan.note:
            need["note"] += 1
        wanted = list(dict.fromkeys(plan.add_tags + cb_add))
        unwanted = [t for t in dict.fromkeys(plan.remove_tags + cb_remove) if t not in wanted]
        add = {t.casefold() for t in wanted} - state.tags
        remove = {t.casefold() for t in unwanted} & state.tags
        if add:
            need["tags.add"] += 1
            state.tags |= add
        if remove:
            need["tags.remove"] += 1
            state.tags -= remove
        values = {k: str(v) for k, v in plan.fields.items()}
        if count is not None and settings.callback_count_field:
            values[settings.callback_count_field] = str(count)
        if values:
            totals["fields.list"] = 1
        changed = {k: v for k, v in values.items() if k in field_keys and state.fields.get(k) != v}
        if changed:
            need["fields"] += 1
            state.fields |= changed
        if plan.task:
            need["task"] += 1
    for need in per_phone.values():
        totals.update(need)
    return totals, per_phone, phone_of


# -- one run --------------------------------------------------------------------


def _memory_keyring() -> Any:
    from tests.memory_keyring import MemoryKeyring

    return MemoryKeyring()


def rate_for(scale: float) -> str:
    count, window = REAL_RATE
    return f"{count}/{window / scale:g}s"


@dataclass
class Result:
    concurrency: int
    outcomes: int
    hard_failures: list[str]
    fraction: float | None
    ratio: float | None
    drain_seconds: float | None
    requests: int
    lines: list[str]


async def run_once(args: argparse.Namespace, concurrency: int) -> Result:
    import aiohttp
    import keyring
    from aiohttp import web

    from connector import secrets
    from connector.app import Service
    from connector.config import parse_config
    from connector.model import CallRecord
    from connector.store.db import dicts
    from connector.sync.settings import parse_ghl
    from tests.fakes.ghl_server import FakeGhl

    rng = random.Random(args.seed)
    rate = rate_for(args.scale)
    latency = args.latency_ms / 1000.0 / args.scale
    out: list[str] = []

    def say(line: str = "") -> None:
        out.append(line)
        print(line, flush=True)

    fake = FakeGhl(rate=rate, clock=time.time)

    @web.middleware
    async def ghl_latency(request: web.Request, handler: Any) -> web.StreamResponse:
        # Half on the way in, half on the way out: the client holds its permit for all of it.
        await asyncio.sleep(latency / 2)
        response = await handler(request)
        await asyncio.sleep(latency / 2)
        return response

    if latency > 0:
        fake.app.middlewares.append(ghl_latency)
    await fake.start()
    backlog = make_backlog(args.outcomes, args.phones, rng)
    seeded = seed_contacts(fake, backlog.phones, args.seeded, rng)
    model = initial_model(fake)
    field_keys = {d["fieldKey"] for d in fake.custom_fields}

    data_dir = Path(tempfile.mkdtemp(prefix="callsync-sync-bench-"))
    raw = {
        "server": {"host": "127.0.0.1", "port": 0, "admin_port": 0},
        "sources": {SOURCE: {"kind": "hmac"}},
        "crm": {"ghl": {
            "location_id": fake.location_id,
            "base_url": fake.base_url,
            "rate_limit": rate,
            "concurrency": concurrency,
        }},
    }
    config = parse_config(raw, data_dir)
    settings = parse_ghl(raw)
    keyring.set_keyring(_memory_keyring())  # a fresh one per run: no CRM token yet
    secrets.invalidate_cache()
    secrets.set_secret(f"source:{SOURCE}", SECRET)
    svc = Service(config)
    hard: list[str] = []
    try:
        await svc.start()
        say(f"sync drain: {args.outcomes} outcomes over {len(backlog.phones)} phones "
            f"({seeded} already contacts in GHL), concurrency {concurrency}, seed {args.seed}")
        window = fake.rate_window
        limit = fake.rate_max / window
        scale_note = "the real GHL window" if args.scale == 1 else f"scale {args.scale:g}: the real 100/10s window / {args.scale:g}"
        say(f"rate limit: fake GHL and client both \"{rate}\" ({scale_note}) = {limit:g} requests/s; "
            f"GHL latency {args.latency_ms:g} ms real -> {latency * 1000:g} ms here")

        # 1. the backlog, while the worker has no token
        ingest = await post_backlog(f"{svc.hooks_url}/hooks/{SOURCE}", backlog.bodies, args.post_parallel)

        def job_rows(conn: Any) -> list[Any]:
            return dicts(conn.execute(
                "SELECT j.id AS job_id, c.* FROM jobs j JOIN calls c ON c.source = j.source AND c.call_id = j.call_id "
                "ORDER BY j.next_attempt_at, j.id"
            ))

        rows = await svc.reader.run(job_rows)
        jobs = [(row["job_id"], CallRecord.from_dict(dict(row))) for row in rows]
        stored = Counter(call.outcome for _, call in jobs)
        wrong = [c.call_id for _, c in jobs if backlog.intended.get(c.call_id) != c.outcome]
        if len(jobs) != args.outcomes or wrong:
            raise BenchError(f"{len(jobs)} jobs for {args.outcomes} events; {len(wrong)} calls with another "
                             f"outcome than intended (e.g. {wrong[:3]})")
        state = svc.worker.state()
        if fake.requests or state["pause_reason"] != "no CRM token":
            raise BenchError(f"the worker was not paused for the token: {state}, {len(fake.requests)} requests")
        say(f"backlog: {args.outcomes} events posted in {ingest:.1f} s ({args.outcomes / ingest:.0f}/s), "
            f"{len(jobs)} jobs waiting (worker paused: {state['pause_reason']})")
        say("outcomes: " + ", ".join(f"{k} {stored[k]}" for k in OUTCOME_MIX if stored[k]))

        required, need_per_phone, phone_of = required_requests(jobs, settings, model, field_keys)
        required_total = sum(required.values())
        expected = required_total / limit
        say(f"required (rules replayed over the contacts): {required_total} requests "
            f"= {required_total / args.outcomes:.3f} per outcome; at the limit ~{expected:.0f} s")

        # 2. the token appears: drain
        cpu_before = time.process_time()
        secrets.set_secret("crm:ghl", fake.token)
        svc.worker.notify()
        timeout = expected * 3 + 120
        stall_limit = max(150.0, 20 * window)
        started = time.monotonic()
        last_change, last_seen = started, (-1, -1)
        next_report = started + args.progress
        counts: dict[str, int] = {}
        while True:
            await asyncio.sleep(0.25)
            counts = dict(await svc.reader.run(
                lambda c: c.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()))
            open_jobs = counts.get("pending", 0) + counts.get("leased", 0)
            now = time.monotonic()
            seen = (len(fake.requests), counts.get("done", 0))
            if seen != last_seen:
                last_seen, last_change = seen, now
            if open_jobs == 0:
                break
            if now >= next_report:
                next_report = now + args.progress
                say(f"  ... {now - started:5.0f} s: {counts.get('done', 0)} done, {open_jobs} open, "
                    f"{len(fake.requests)} GHL requests, {fake.count_429} x 429")
            if now - started > timeout:
                hard.append(f"drain not finished after {timeout:.0f} s ({open_jobs} jobs open)")
                break
            if now - last_change > stall_limit:
                hard.append(f"drain stalled: no request and no finished job for {stall_limit:.0f} s "
                            f"({open_jobs} jobs open, worker {svc.worker.state()})")
                break

        # 3. figures
        cpu = time.process_time() - cpu_before
        wall = time.monotonic() - started
        load = os.getloadavg()[0]
        metrics = await admin_metrics(svc, aiohttp)

        def job_facts(conn: Any) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
            done = dicts(conn.execute("SELECT id, created_at, done_at, attempts, failures, status FROM jobs"))
            attempts = dicts(conn.execute("SELECT job_id, at, kind, status, duration_ms FROM attempts ORDER BY id"))
            steps = conn.execute("SELECT job_id, MIN(at) FROM job_steps GROUP BY job_id").fetchall()
            cache = dicts(conn.execute("SELECT phone, contact_id, tags_json, fields_json FROM contacts"))
            return done, attempts, steps, cache

        job_list, attempts, first_steps, cache = await svc.reader.run(job_facts)
        figures = report(
            args=args, fake=fake, say=say, limit=limit, window=window, jobs=jobs, job_list=job_list,
            attempts=attempts, first_steps=first_steps, cache=cache, metrics=metrics, required=required,
            need_per_phone=need_per_phone, phone_of=phone_of, model=model, settings=settings, hard=hard,
        )
        fraction, ratio, drain, total = figures
        say(f"this process (service + fake GHL + bench) used {cpu:.0f} s CPU in {wall:.0f} s "
            f"({cpu / wall:.0%} of one core, {cpu / max(total, 1) * 1000:.1f} ms per GHL request incl. the "
            f"fake's OpenAPI validation); load average {load:.2f} on {os.cpu_count()} CPUs"
            + (" - other work on the machine, figures are noisy" if load > (os.cpu_count() or 1) * 0.75 else ""))
    finally:
        await svc.stop()
        await fake.close()
        if args.keep:
            say(f"data dir kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return Result(concurrency, args.outcomes, hard, fraction, ratio, drain, total, out)


async def admin_metrics(svc: Any, aiohttp: Any) -> dict[str, Any]:
    """``GET /api/metrics`` as the dashboard sees it (falls back to the Service call)."""
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{svc.admin_url}/api/metrics") as resp:
                if resp.status == 200:
                    return await resp.json()
    except aiohttp.ClientError:
        pass
    return await svc.metrics()


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    index = max(0, min(len(values) - 1, math.ceil(p / 100 * len(values)) - 1))
    return values[index]


def grant_delay(attempts: list[Any], capacity: int, window: float) -> tuple[float, int, int]:
    """Mean seconds a grant came after the moment the limiter allowed it, over the grants of a
    full window, how many such grants, and how many came within 2 ms (the window was the limit).

    Grant time ``a = at - duration`` and finish time ``f = at`` come from the delivery log.  The
    limiter may grant request k once at most capacity-1 earlier requests finished after
    ``a_k - window``: the earliest grant is the capacity-th latest earlier finish + window.  A
    later grant means no request was waiting: the worker, not the limit, was the bottleneck.
    """
    import heapq

    grants = sorted((a["at"] - (a["duration_ms"] or 0) / 1000, a["at"]) for a in attempts)
    latest: list[float] = []  # min-heap of the `capacity` latest finishes so far
    delays: list[float] = []
    for granted, finished in grants:
        if len(latest) >= capacity:
            delays.append(max(0.0, granted - (latest[0] + window)))
        heapq.heappush(latest, finished)
        if len(latest) > capacity:
            heapq.heappop(latest)
    if not delays:
        return 0.0, 0, 0
    return statistics.fmean(delays), len(delays), sum(1 for d in delays if d < 0.002)


def _phone_of_request(fake: Any, request: Any) -> str | None:
    if request.kind == "lookup":
        return request.query.get("number")
    if request.kind == "upsert":
        return (request.json or {}).get("phone")
    parts = request.path.split("/")
    if len(parts) > 2 and parts[1] == "contacts":
        contact = fake.contacts.get(parts[2])
        return contact.get("phone") if contact else None
    return None


def report(*, args: argparse.Namespace, fake: Any, say: Any, limit: float, window: float, jobs: list[Any],
           job_list: list[Any], attempts: list[Any], first_steps: list[Any], cache: list[Any],
           metrics: dict[str, Any], required: Counter[str], need_per_phone: dict[str, Counter[str]],
           phone_of: dict[int, str], model: dict[str, ContactModel], settings: Any,
           hard: list[str]) -> tuple[float | None, float | None, float | None, int]:
    requests = [r for r in fake.requests if r.status != 429]
    by_kind = Counter(r.kind or f"{r.method} {r.path}" for r in requests)
    total = len(requests)
    done_at = [row["done_at"] for row in job_list if row["done_at"] is not None]
    fraction = ratio = drain = None
    say()
    if requests and done_at:
        t0 = requests[0].time
        t_end = max(done_at)
        drain = t_end - t0
        achieved = total / drain
        fraction = achieved / limit
        say(f"drain: first CRM request -> last job done {drain:.1f} s, {len(done_at)} jobs done "
            f"({len(done_at) / drain:.2f} outcomes/s)")
        say(f"GHL requests: {total} (" + ", ".join(
            f"{k} {by_kind[k]}" for k in sorted(by_kind, key=lambda k: (KIND_ORDER + (k,)).index(k))) + ")")
        say(f"rate: {achieved:.2f} requests/s vs limit {limit:g}/s -> drain fraction {fraction:.3f} "
            f"(target >= {TARGET_FRACTION}; includes the first window's free burst of {fake.rate_max})")
        if drain < 20 * window:
            say(f"  (the drain lasted {drain / window:.0f} windows: too short, start and end dominate the fraction)")
        times = [r.time for r in requests]
        n_max = fake.rate_max
        gap, at = max(((b - a, a) for a, b in zip(times, times[1:])), default=(0.0, t0))
        bins = Counter(int((t - t0) // window) for t in times)
        full = [bins.get(i, 0) for i in range(int((t_end - t0) // window))] or [len(times)]
        say(f"  requests per {window:g} s window: min {min(full)}, median {statistics.median(full):g}, "
            f"max {max(full)}; longest pause {gap * 1000:.0f} ms (at +{at - t0:.2f} s); "
            f"last request -> last job done {(t_end - times[-1]) * 1000:.0f} ms")
        holds = [a["duration_ms"] / 1000 for a in attempts if a["duration_ms"] is not None]
        if len(times) > 2 * n_max and holds:
            # A saturated sliding window repeats every r[k] - r[k-N]; the client limiter counts a
            # request until its answer is in (it cannot know when GHL counted it), so that cycle is
            # W + its 1 % margin + the round trip + however late the worker asked for the permit.
            cycle = statistics.median(b - a for a, b in zip(times, times[n_max:]))
            trip = statistics.median(holds)
            late, grants, on_time = grant_delay(attempts, n_max, window * 1.01)
            rest = cycle - window * 1.01 - trip - late
            say(f"  sustained: {n_max} requests every {cycle:.3f} s (median r[k] - r[k-{n_max}]) -> fraction "
                f"{window / cycle:.3f}; the cycle = window {window:g} + client margin {window * 0.01:.3f} "
                f"+ round trip held {trip:.3f} (p99 {_pct(holds, 99):.3f}) + worker late for its permit "
                f"{late:.3f} (mean) + other {rest:+.3f}")
            say(f"  ceiling with this round trip (worker never late): {window / (window * 1.01 + trip):.3f}; "
                f"{on_time} of {grants} grants came when the window allowed (< 2 ms), the rest waited "
                f"for the worker")
    else:
        say("drain: no request reached the fake GHL")

    # requests per outcome against what the rules require
    req_total = sum(required.values())
    n = len(jobs)
    say()
    say(f"{'kind':<12}{'actual':>8}{'required':>10}{'excess':>8}")
    kinds = sorted(set(by_kind) | set(required), key=lambda k: (KIND_ORDER + (k,)).index(k))
    for kind in kinds:
        excess = by_kind[kind] - required[kind]
        say(f"{kind:<12}{by_kind[kind]:>8}{required[kind]:>10}{excess:>+8}")
    say(f"{'total':<12}{total:>8}{req_total:>10}{total - req_total:>+8}")
    ratio = total / req_total if req_total else None
    say(f"requests per outcome: {total / n:.3f} actual vs {req_total / n:.3f} required -> ratio "
        f"{ratio:.3f} (target {TARGET_RATIO:.2f})")
    over = [k for k in kinds if by_kind[k] > required[k]]
    under = [k for k in kinds if by_kind[k] < required[k]]
    if over:
        say("more than required: " + ", ".join(f"{k} +{by_kind[k] - required[k]}" for k in over))
        explain_excess(fake=fake, say=say, over=over, requests=requests, need_per_phone=need_per_phone,
                       phone_of=phone_of, attempts=attempts, first_steps=first_steps, job_list=job_list,
                       settings=settings)
    else:
        say("more than required: none")
    if under:
        say("FEWER than required (writes missing?): " + ", ".join(
            f"{k} {by_kind[k] - required[k]}" for k in under))

    # the state after the drain: GHL vs the rules, the local cache vs GHL
    say()
    check_state(fake=fake, say=say, cache=cache, model=model)

    # latency and failure figures
    latency = metrics.get("sync_latency_ms", {})
    all_lat = [(row["done_at"] - row["created_at"]) * 1000 for row in job_list if row["done_at"] is not None]
    say(f"receipt -> CRM latency (a backlog: includes the wait for the token and the queue): "
        f"/api/metrics sync_latency_ms p50 {_ms(latency.get('p50'))} p95 {_ms(latency.get('p95'))} "
        f"(last {latency.get('count')} jobs); all {len(all_lat)} jobs p95 {_ms(_pct(all_lat, 95))}")
    retried = sum(1 for row in job_list if (row["attempts"] or 0) > 1)
    failed = sum(1 for row in job_list if (row["failures"] or 0) > 0)
    dead = sum(1 for row in job_list if row["status"] == "dead")
    say(f"dead letters {dead}, failed tries {metrics.get('failed', 0)}, jobs claimed more than once {retried}, "
        f"429s {fake.count_429} (metrics http_429 {metrics.get('http_429')}), spec violations "
        f"{len(fake.violations)}, unhandled {len(fake.unhandled)}")
    if dead:
        hard.append(f"{dead} dead letters")
    if failed or retried:
        hard.append(f"{failed} jobs failed a try, {retried} were claimed more than once")
    if fake.count_429:
        hard.append(f"{fake.count_429} responses were 429")
    if fake.violations:
        hard.append(f"{len(fake.violations)} spec violations, first: {fake.violations[0][:300]}")
    if fake.unhandled:
        hard.append(f"{len(fake.unhandled)} requests the fake does not implement: {fake.unhandled[:3]}")
    if len(done_at) != n:
        hard.append(f"only {len(done_at)} of {n} jobs done")
    return fraction, ratio, drain, total


def _ms(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value / 1000:.1f} s" if value >= 10_000 else f"{value:.0f} ms"


def explain_excess(*, fake: Any, say: Any, over: list[str], requests: list[Any],
                   need_per_phone: dict[str, Counter[str]], phone_of: dict[int, str], attempts: list[Any],
                   first_steps: list[Any], job_list: list[Any], settings: Any) -> None:
    """Attribute excess requests: cache expiry, jobs of one phone in flight together, or neither."""
    actual_per_phone: dict[str, Counter[str]] = defaultdict(Counter)
    lookups_at: dict[str, list[float]] = defaultdict(list)
    for r in requests:
        phone = _phone_of_request(fake, r)
        if phone:
            actual_per_phone[phone][r.kind] += 1
            if r.kind in ("lookup", "contact", "upsert"):
                lookups_at[phone].append(r.time)

    # each job's span: its first recorded step or request start .. done
    span: dict[int, list[float]] = {}
    for job_id, at in first_steps:
        span[job_id] = [at, at]
    for a in attempts:
        begin = a["at"] - (a["duration_ms"] or 0) / 1000
        s = span.setdefault(a["job_id"], [begin, a["at"]])
        s[0], s[1] = min(s[0], begin), max(s[1], a["at"])
    for row in job_list:
        if row["id"] in span and row["done_at"]:
            span[row["id"]][1] = max(span[row["id"]][1], row["done_at"])
    by_phone: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for job_id, (a, b) in span.items():
        if job_id in phone_of:
            by_phone[phone_of[job_id]].append((a, b, job_id))
    overlapping: set[str] = set()
    pairs = 0
    for phone, spans in by_phone.items():
        spans.sort()
        latest_end = -math.inf
        for a, b, _ in spans:
            if a < latest_end:
                overlapping.add(phone)
                pairs += 1
            latest_end = max(latest_end, b)
    say(f"  jobs of the same phone in flight at the same time: {pairs} times, on {len(overlapping)} phones")

    for kind in over:
        if kind == "fields.list":
            say(f"  fields.list: {fake.count('fields.list')} custom-field-definition lists instead of 1 "
                f"(at " + ", ".join(f"+{(r.time - requests[0].time) * 1000:.0f} ms"
                                     for r in fake.requests_of("fields.list")[:8]) + ")")
            continue
        phones = [p for p, c in actual_per_phone.items() if c[kind] > need_per_phone.get(p, Counter())[kind]]
        extra = sum(actual_per_phone[p][kind] - need_per_phone.get(p, Counter())[kind] for p in phones)
        on_overlap = sum(actual_per_phone[p][kind] - need_per_phone.get(p, Counter())[kind]
                         for p in phones if p in overlapping)
        detail = f"  {kind}: +{extra} on {len(phones)} phones, +{on_overlap} of them on phones with overlapping jobs"
        if kind in ("lookup", "contact"):
            expired = 0
            for p in phones:
                times = sorted(lookups_at[p])
                expired += sum(1 for a, b in zip(times, times[1:]) if b - a >= settings.contact_cache_seconds)
            detail += f", {expired} after the contact cache expired (contact_cache_seconds " \
                      f"{settings.contact_cache_seconds:g})"
        say(detail)
        example = next((p for p in phones if p in overlapping), phones[0] if phones else None)
        if example:
            say(f"    e.g. {example}: " + timeline(example, by_phone, attempts, requests[0].time))


def timeline(phone: str, by_phone: dict[str, list[tuple[float, float, int]]], attempts: list[Any],
             t0: float) -> str:
    jobs = {job_id: (a, b) for a, b, job_id in by_phone.get(phone, [])}
    parts = []
    for job_id, (a, b) in sorted(jobs.items(), key=lambda kv: kv[1]):
        kinds = [x["kind"] for x in attempts if x["job_id"] == job_id]
        parts.append(f"job {job_id} [{(a - t0):.2f}-{(b - t0):.2f} s] {'+'.join(kinds) or 'no request'}")
    return "; ".join(parts[:6])


def check_state(*, fake: Any, say: Any, cache: list[Any], model: dict[str, ContactModel]) -> None:
    keys = {d["id"]: d["fieldKey"] for d in fake.custom_fields}
    ghl = {c["phone"]: c for c in fake.contacts.values()}
    rules_diff, cache_diff, examples = [], [], []
    for phone, state in model.items():
        if not state.seen:
            continue
        contact = ghl.get(phone)
        if contact is None:
            rules_diff.append(phone)
            continue
        tags = {t.casefold() for t in contact["tags"]}
        values = {keys[c["id"]]: str(c["value"]) for c in contact["customFields"] if c["id"] in keys}
        if tags != state.tags or any(values.get(k) != v for k, v in state.fields.items()):
            rules_diff.append(phone)
            if len(examples) < 2:
                examples.append(f"{phone}: GHL tags {sorted(tags)} fields {values}; rules replay tags "
                                f"{sorted(state.tags)} fields {state.fields}")
    for row in cache:
        contact = ghl.get(row["phone"])
        if contact is None:
            continue
        cached_tags = {t.casefold() for t in json.loads(row["tags_json"] or "[]")}
        cached_fields = {k: str(v) for k, v in json.loads(row["fields_json"] or "{}").items()}
        values = {c["id"]: str(c["value"]) for c in contact["customFields"]}
        if cached_tags != {t.casefold() for t in contact["tags"]} or cached_fields != values:
            cache_diff.append(row["phone"])
    say(f"state after the drain: {len(rules_diff)} contacts differ from the rules replayed in order; "
        f"{len(cache_diff)} local cache entries differ from GHL")
    for line in examples:
        say(f"  e.g. {line}")


# -- entry points -----------------------------------------------------------------


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog="bench/run.py sync", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--outcomes", type=int, default=5000, help="finished calls in the backlog (5000)")
    p.add_argument("--scale", type=float, default=10.0,
                   help="divide the 10 s rate window (and the GHL latency) by this; 1 = real time (10)")
    p.add_argument("--phones", type=int, default=0,
                   help="distinct phone numbers (default: 30 %% of --outcomes, at least 1)")
    p.add_argument("--seeded", type=float, default=0.4,
                   help="fraction of the phones that already are contacts in GHL (0.4)")
    p.add_argument("--concurrency", default="",
                   help="[crm.ghl] concurrency; a comma list runs once per value (default: the setting's default)")
    p.add_argument("--latency-ms", type=float, default=150.0,
                   help="GHL response time in real terms, divided by --scale (150)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the backlog (1)")
    p.add_argument("--post-parallel", type=int, default=32, help="concurrent posts while building the backlog")
    p.add_argument("--progress", type=float, default=0.0,
                   help="seconds between progress lines (default: 20 windows)")
    p.add_argument("--strict", action="store_true", help="also exit 1 when a target is missed")
    p.add_argument("--keep", action="store_true", help="keep the temp data dir (callsync.db: jobs, attempts)")
    args, unknown = p.parse_known_args(argv)
    if args.outcomes < 1 or args.scale <= 0 or not 0 <= args.seeded <= 1:
        p.error("--outcomes must be >= 1, --scale > 0, --seeded in [0, 1]")
    args.phones = args.phones or max(1, int(args.outcomes * 0.3))
    args.progress = args.progress or 20 * REAL_RATE[1] / args.scale
    return args, unknown


async def run_all(args: argparse.Namespace) -> list[Result]:
    from connector.sync.settings import GhlSettings

    levels = [int(v) for v in args.concurrency.split(",") if v.strip()] or [GhlSettings().concurrency]
    results = []
    for index, level in enumerate(levels):
        if index:
            print(flush=True)
        results.append(await run_once(args, level))
    return results


def main(argv: list[str] | None = None) -> int:
    args, unknown = parse_args(list(sys.argv[1:] if argv is None else argv))
    if unknown:
        print(f"sync bench: ignoring options for other benchmarks: {' '.join(unknown)}", flush=True)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    import keyring

    from connector import secrets

    # Never the developer's keyring, never their CALLSYNC_* settings; both restored afterwards.
    saved_env = {k: v for k, v in os.environ.items() if k.startswith("CALLSYNC_")}
    for name in saved_env:
        del os.environ[name]
    previous = keyring.get_keyring()
    try:
        results = asyncio.run(run_all(args))
    except BenchError as exc:
        print(f"sync bench: {exc}", file=sys.stderr)
        return 2
    finally:
        keyring.set_keyring(previous)
        secrets.invalidate_cache()
        os.environ.update(saved_env)

    print()
    if len(results) > 1:
        print(f"{'concurrency':>11}{'drain s':>9}{'fraction':>10}{'req/outcome':>13}{'ratio':>7}  hard failures")
        for r in results:
            print(f"{r.concurrency:>11}{_f(r.drain_seconds, 1):>9}{_f(r.fraction, 3):>10}"
                  f"{_f(r.requests / r.outcomes, 3):>13}{_f(r.ratio, 3):>7}  {len(r.hard_failures)}")
    code = 0
    for r in results:
        targets = []
        if r.fraction is None or r.fraction < TARGET_FRACTION:
            targets.append(f"drain fraction {_f(r.fraction, 3)} < {TARGET_FRACTION}")
        if r.ratio is None or round(r.ratio, 2) > TARGET_RATIO:
            targets.append(f"requests/required {_f(r.ratio, 3)} > {TARGET_RATIO:.2f}")
        verdict = "FAIL" if r.hard_failures else "ok"
        print(f"concurrency {r.concurrency}: hard checks {verdict}"
              + "".join(f"\n  - {h}" for h in r.hard_failures)
              + f"; targets {'met' if not targets else 'MISSED: ' + '; '.join(targets)}")
        if r.hard_failures or (args.strict and targets):
            code = 1
    return code


def _f(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
