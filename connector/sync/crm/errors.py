"""Errors raised by the CRM clients.

Every error carries the HTTP ``status`` (``None`` when no response arrived),
the response ``body`` (text, possibly truncated) and ``retryable``: whether
sending the same request again later can succeed without anyone changing
configuration.  Callers decide *when* to retry; the client never retries.

- :class:`AuthError` (401/403): the token is wrong, expired, lacks a scope or
  has no access to the location.  Not retryable: someone has to fix the token.
- :class:`RateLimited` (429): retry after ``retry_after_seconds``;
  ``daily_exhausted`` tells the daily budget apart from the burst limit.
- :class:`PermanentError` (other 4xx): the request itself is wrong.
- :class:`TransientError` (5xx, timeouts, connection errors).
- :class:`UnknownOutcome` (a :class:`TransientError`): a write may or may not
  have been applied (2xx with an empty or unparseable body, a timeout or a
  dropped connection after the request was sent).  Re-check the CRM state
  before sending the write again, or it may be applied twice.
"""

from __future__ import annotations

from datetime import datetime


class CrmError(Exception):
    """Base class of every CRM client error."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str | None = None,
        trace_id: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body
        self.trace_id = trace_id
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.trace_id:
            parts.append(f"traceId {self.trace_id}")
        return " | ".join(parts)


class AuthError(CrmError):
    """401/403: fix the token (or its scopes / location access) before retrying."""

    retryable = False
    hint = "fix your token"


class PermanentError(CrmError):
    """A 4xx other than 401/403/429: the request will fail the same way again."""

    retryable = False


class TransientError(CrmError):
    """A 5xx, a timeout or a connection problem: retrying later may succeed."""

    retryable = True


class UnknownOutcome(TransientError):
    """A write whose effect is unknown: re-check the CRM before sending it again."""

    retryable = True


class RateLimited(CrmError):
    """429 Too Many Requests (burst limit, or the daily budget when ``daily_exhausted``)."""

    retryable = True

    def __init__(
        self,
        message: str = "rate limited",
        *,
        retry_after_seconds: float,
        daily_exhausted: bool = False,
        status: int | None = 429,
        body: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body, trace_id=trace_id)
        self.retry_after_seconds = max(0.0, float(retry_after_seconds))
        self.daily_exhausted = daily_exhausted


class DailyLimitReached(Exception):
    """The local daily request budget is used up (raised by ``acquire(wait=False)``).

    ``reset_at`` is the UTC time at which the budget is available again and
    ``retry_after_seconds`` the wait from the moment of raising.
    """

    def __init__(self, reset_at: datetime, retry_after_seconds: float) -> None:
        super().__init__(f"daily request limit reached; resets at {reset_at.isoformat()}")
        self.reset_at = reset_at
        self.retry_after_seconds = max(0.0, retry_after_seconds)
