"""Health in words a person can act on: the one-line verdict of the dashboard, window and tray,
and what each kind of rejected webhook means.  Pure functions of plain data (no Qt, no I/O)."""

from __future__ import annotations

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


