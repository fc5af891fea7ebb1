"""CRM clients used by the sync engine."""

from .errors import (
    AuthError,
    CrmError,
    DailyLimitReached,
    PermanentError,
    RateLimited,
    TransientError,
    UnknownOutcome,
)
from .base import Attempt, CrmAdapter, SyncStore
from .ghl import GhlClient
from .ratelimit import Permit, TokenBucket, parse_rate
from .wire import API_VERSIONS, api_version_for

__all__ = [
    "API_VERSIONS",
    "Attempt",
    "AuthError",
    "CrmAdapter",
    "CrmError",
    "DailyLimitReached",
    "GhlClient",
    "PermanentError",
    "Permit",
    "RateLimited",
    "SyncStore",
    "TokenBucket",
    "TransientError",
    "UnknownOutcome",
    "api_version_for",
    "parse_rate",
]
