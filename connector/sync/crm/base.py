"""What the sync worker needs from a CRM: the interface a CRM adapter implements.

The worker (:mod:`connector.sync.worker`) claims jobs, runs a few at a time, and turns what a job's
sync raised into the job's fate: :class:`~connector.sync.crm.errors.RateLimited` pauses every request
until the CRM allows more, :class:`~connector.sync.crm.errors.AuthError` kills the job and pauses
syncing until the credentials change, :class:`~connector.sync.crm.errors.PermanentError` (and
:class:`~connector.sync.rules.PlanError`) kill it, anything else is retried on the retry schedule.
An adapter carries out one job at a time against its CRM (:meth:`CrmAdapter.sync`), recording each
step through the :class:`SyncStore` it is given and reporting each HTTP request as an
:class:`Attempt` (the delivery log).  :class:`connector.sync.ghl_sync.GhlSync` is the GoHighLevel one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from connector.store.db import Db

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP attempt, for the delivery log.  ``status`` is None when no response arrived."""

    kind: str
    method: str
    path: str
    status: int | None
    response_body: str
    trace_id: str | None
    duration_ms: float
    error: str | None


class SyncStore(Protocol):
    """The store as an adapter sees it while it syncs a job (the worker provides it)."""

    clock: Callable[[], float]

    async def write(self, job_id: int, fn: Callable[[Db], T] | None = None) -> T:
        """Run ``fn(db)`` in a committed transaction, with the job's delivery log so far."""

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a read query ``fn(db, *args)`` off the event loop."""


class CrmAdapter(ABC):
    """One CRM.  ``on_attempt`` is set by the worker: call it for every request sent."""

    name: str = "CRM"
    on_attempt: Callable[[Attempt], None] = staticmethod(lambda attempt: None)  # type: ignore[assignment]

    async def start(self) -> None:
        """Open what the adapter needs (an HTTP session)."""

    async def stop(self) -> None:
        """Close it again."""

    @abstractmethod
    def blocked(self) -> str | None:
        """Why no job can be synced now (not configured, no credentials, credentials rejected), or None."""

    @abstractmethod
    def rejected(self, exc: Exception) -> str:
        """The CRM refused the credentials (``AuthError``): remember it until they change; returns the
        state to show ("Token rejected ...")."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """``{"configured": bool, "token": bool, "auth_error": str | None}`` for status displays."""

    @abstractmethod
    def apply_settings(self, settings: Any) -> None:
        """Use new settings from now on (the window edits them while callsync runs)."""

    @abstractmethod
    async def sync(self, job: dict[str, Any], store: SyncStore) -> None:
        """Carry out a claimed job (its row, with its call's row under ``"call"``) at the CRM."""

    @abstractmethod
    async def check(self) -> dict[str, Any]:
        """Test the connection and credentials: ``{"ok": bool, "verdict": str}``."""
