"""In-memory latency windows; counters themselves live in the store (``stats_hourly``)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (``q`` in 0..100)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


class LatencyWindow:
    """The last ``size`` observations in milliseconds, for p50/p95/p99."""

    def __init__(self, size: int = 10_000, on_observe: Callable[[float], None] | None = None) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._on_observe = on_observe  # e.g. a Prometheus histogram

    def observe(self, ms: float) -> None:
        with self._lock:
            self._values.append(ms)
        if self._on_observe is not None:
            self._on_observe(ms)

    def summary(self) -> dict[str, float | int | None]:
        with self._lock:
            values = sorted(self._values)
        return {
            "count": len(values),
            "p50": percentile(values, 50),
            "p95": percentile(values, 95),
            "p99": percentile(values, 99),
        }
