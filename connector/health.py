"""Health in words a person can act on: the one-line verdict of the dashboard, window and tray,
and what each kind of rejected webhook means.  Pure functions of plain data (no Qt, no I/O)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

STALE_PENDING_SECONDS = 600


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def format_age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{round(seconds / 86400)} d"


def health_verdict(metrics: dict[str, Any]) -> tuple[str, str]:
    """``(level, one line)`` for the dashboard, window and tray; level is ok | warn | error.

    First match wins: things only a person can fix, then permanent failures, then waiting work.
    """
    crm = metrics.get("crm") or {}
    pending = int(metrics.get("pending") or 0)
    dead = int(metrics.get("dead") or 0)
    retrying = int(metrics.get("retrying") or 0)
    oldest = float(metrics.get("oldest_pending_age_seconds") or 0)
    if metrics.get("store_ok") is False:
        return "error", "Store unavailable — check the data dir and free disk space"
    if not crm.get("configured"):
        return "warn", "CRM not configured — open CRM"
    if crm.get("auth_error"):
        return "error", "Token rejected — open CRM settings"
    if not crm.get("token"):
        return "error", "No CRM token — open CRM"
    if crm.get("pause_reason") and pending:
        return "warn", f"{pending} waiting — {crm['pause_reason']}"
    if dead:
        return "error", f"{_plural(dead, 'call')} failed to sync — open Dead letters"
    if retrying:
        return "warn", f"{pending} waiting — {_plural(retrying, 'call')} retrying after errors"
    if pending and oldest >= STALE_PENDING_SECONDS:
        return "warn", f"{pending} waiting — oldest {format_age(oldest)}"
    if pending:
        return "ok", f"Syncing — {pending} waiting"
    return "ok", "All synced"


def health_target(metrics: dict[str, Any]) -> str | None:
    """The tab that fixes what :func:`health_verdict` complains about (crm | dead_letters | None)."""
    crm = metrics.get("crm") or {}
    if not crm.get("configured") or crm.get("auth_error") or not crm.get("token"):
        return "crm"
    if metrics.get("dead"):
        return "dead_letters"
    return None




# -- rejected webhooks ----------------------------------------------------------------

# What each receiver rejection reason means to the person who set the sender up, and what to do.
REJECTION_REASONS: dict[str, str] = {
    "bad_signature": "the signature does not match; check the secret",
    "missing_signature": "they carry no signature (or no signed time); turn on signing at the sender and check "
                         "the header names",
    "stale_timestamp": "the signed time is too far from this computer's clock; check both clocks",
    "no_secret": "callsync has no secret for this source yet; add it in Sources",
    "missing_auth": "they carry no credentials (API key, password or token); check the sender's settings",
    "bad_auth": "their credentials (API key, password or token) do not match; check the secret",
    "expired_token": "their signed token has expired or is not valid yet; check both clocks",
    "no_public_url": "Twilio signs the public URL, which is not set; set it in Sources",
    "ip_not_allowed": "they come from an address outside this source's ip_allowlist (behind a tunnel or proxy, "
                      "check [server] trusted_proxies)",
    "too_large": "they are larger than callsync accepts",
    "slow_body": "they arrived too slowly and the connection was closed",
    "unsupported_media_type": "they are not JSON or a web form",
    "bad_payload": "their content is not a call event callsync can read",
    "unstorable": "their content cannot be stored as sent",
    "storage_timeout": "the store did not answer in time (the sender retries); check the disk",
    "storage_error": "they could not be stored (the sender retries); check the disk",
}
# Rejections that mean the sender and callsync do not agree on signing: the most common setup mistake.
SIGNATURE_REASONS = ("bad_signature", "missing_signature", "stale_timestamp", "no_secret", "no_public_url",
                     "missing_auth", "bad_auth", "expired_token", "ip_not_allowed")


def rejection_text(reason: str) -> str:
    return REJECTION_REASONS.get(reason, reason.replace("_", " "))


def rejection_lines(reasons: dict[str, int]) -> list[tuple[int, str]]:
    """``(count, what it means)`` per reason, most frequent first."""
    return [(n, rejection_text(reason)) for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])) if n]


def signature_alerts(by_source: dict[str, dict[str, int]], period: str = "in the last hour") -> list[str]:
    """One line per source whose requests failed the signature check, e.g.
    ``dialer: 18 requests rejected in the last hour — the signature does not match; check the secret``."""
    alerts = []
    for source, reasons in sorted(by_source.items()):
        failed = {r: n for r, n in reasons.items() if r in SIGNATURE_REASONS and n}
        if failed:
            main = max(failed, key=lambda r: (failed[r], r))
            alerts.append(f"{source}: {_plural(sum(failed.values()), 'request')} rejected {period} — "
                          f"{rejection_text(main)}")
    return alerts


# -- times and CRM jobs ---------------------------------------------------------------


def format_time(ts: float | None, now: float | None = None) -> str:
    """Local time for people: ``14:02:11`` today, ``3 Jun 14:02`` this year, else ``3 Jun 2025 14:02``."""
    if not ts:
        return ""
    when = datetime.fromtimestamp(ts)
    today = datetime.fromtimestamp(now if now is not None else time.time())
    if when.date() == today.date():
        return when.strftime("%H:%M:%S")
    if when.year == today.year:
        return f"{when.day} {when.strftime('%b %H:%M')}"
    return f"{when.day} {when.strftime('%b %Y %H:%M')}"


def format_iso(text: str | None, now: float | None = None) -> str:
    """An ISO 8601 time from a payload (UTC or with an offset) as local time; anything else as is."""
    if not text:
        return ""
    try:
        parsed = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return str(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return format_time(parsed.timestamp(), now)


def _tries(n: int) -> str:
    return "1 try" if n == 1 else f"{n} tries"


def job_status_text(job: dict[str, Any] | None, crm: dict[str, Any], now: float, *, test: bool = False) -> str:
    """Where a call's CRM job stands and, while it waits, why and until when."""
    if test:
        return "A test call: never written to the CRM."
    if not job:
        return "No CRM work for this call (yet): it is written when the call has an outcome."
    head = f"CRM job #{job['id']}"
    status, tries = job.get("status"), _tries(int(job.get("attempts") or 0))
    if status == "done":
        return f"{head}: written to the CRM at {format_time(job.get('done_at'), now)} ({tries})."
    if status == "dead":
        error = job.get("last_error") or "no error recorded"
        return f"{head}: gave up after {tries} — {error}. Replay it from Dead letters."
    if status == "leased":
        return f"{head}: being written to the CRM now ({tries} so far)."
    pause = crm.get("pause_reason") or crm.get("auth_error")
    due = max(float(job.get("next_attempt_at") or now), now)
    if pause:
        until = crm.get("paused_until")
        when = f"next try at {format_time(until, now)}" if until and until > now else "next try once that is fixed"
        return f"{head}: waiting — {pause}; {when}."
    if job.get("failures") and job.get("last_error"):
        why = f"retrying after an error: {job['last_error']}"
    elif job.get("waiting_for"):  # a contact's calls are written in the order they ended
        return f"{head}: waiting — an earlier call of this contact is written first ({job['waiting_for']})."
    else:
        why = "queued"
    when = "next try now" if due - now < 1 else f"next try at {format_time(due, now)} (in {format_age(due - now)})"
    return f"{head}: waiting — {why}; {when}."
