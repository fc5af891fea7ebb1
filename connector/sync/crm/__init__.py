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
from .ghl import Attempt, GhlClient
from .ratelimit import Permit, TokenBucket, parse_rate
from .wire import API_VERSIONS, api_version_for

__all__ = [
    "API_VERSIONS",
    "Attempt",
    "AuthError",
    "CrmError",
    "DailyLimitReached",
    "GhlClient",
    "PermanentError",
    "Permit",
    "RateLimited",
    "TokenBucket",
    "TransientError",
    "UnknownOutcome",
    "api_version_for",
    "parse_rate",
]
