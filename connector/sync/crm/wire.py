"""Wire details of the GoHighLevel API v2: ``Version`` headers, rate-limit and ``Retry-After``
headers, error bodies and custom-field value encoding (pure functions, no I/O)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

# ``Version`` header per path prefix, from each spec file's enum (longest prefix wins).
API_VERSIONS: dict[str, str] = {
    "/contacts": "2021-07-28",
    "/locations": "2021-07-28",
    "/conversations": "2021-04-15",
}
DEFAULT_API_VERSION = "2021-07-28"


def api_version_for(path: str) -> str:
    """The ``Version`` header value the spec requires for ``path``."""
    best = ""
    for prefix in API_VERSIONS:
        if (path == prefix or path.startswith(prefix + "/")) and len(prefix) > len(best):
            best = prefix
    return API_VERSIONS.get(best, DEFAULT_API_VERSION)


def int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value.strip()))
    except ValueError:
        return None


def seconds_until_utc_midnight(now: float | None = None) -> float:
    current = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    midnight = datetime.combine(current.date() + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)
    return max(0.0, (midnight - current).total_seconds())


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def error_message(data: Any, fallback: str) -> str:
    if isinstance(data, dict):
        message = data.get("message") or data.get("error") or data.get("msg")
        if isinstance(message, list):
            return "; ".join(str(m) for m in message)
        if message:
            return str(message)
    return fallback


def custom_field_value(value: Any) -> Any:
    """Numbers go as strings: the spec types numeric ``field_value`` as ``object``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return value
