"""``GET /metrics`` on the admin port: Prometheus text format via ``prometheus-client``.

Counters that must survive restarts (received, stored, deduped, rejected by reason, processed,
failed, dead, 429s) come from the store's per-hour counters; gauges (queue depth, pending jobs,
oldest pending age) from the store at scrape time.  The two latency histograms and CRM requests
by HTTP status are kept in this process (Prometheus handles the reset at a restart).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SYNC_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0)


class _Snapshot(Collector):
    """Families built from the latest ``/api/metrics`` dictionary (set just before each scrape)."""

    def __init__(self) -> None:
        self.values: Mapping[str, Any] = {}

    def collect(self) -> Iterable[Any]:
        v = self.values
        for name, key, text in (
            ("callsync_webhooks_received", "received", "Webhook requests received (stored, deduped or rejected)"),
            ("callsync_events_stored", "stored", "Events stored"),
            ("callsync_events_deduped", "deduped", "Events answered as duplicates"),
            ("callsync_jobs_processed", "processed", "CRM jobs completed"),
            ("callsync_jobs_failed", "failed", "CRM job attempts that failed"),
            ("callsync_crm_rate_limited", "http_429", "CRM answers with HTTP 429"),
        ):
            yield CounterMetricFamily(name, text, value=float(v.get(key) or 0))
        rejected = CounterMetricFamily("callsync_webhooks_rejected", "Webhook requests rejected, by reason",
                                       labels=["reason"])
        for reason, n in sorted((v.get("rejected") or {}).items()):
            rejected.add_metric([reason], float(n))
        yield rejected
        for name, key, text in (
            ("callsync_queue_depth", "queue_depth", "Events waiting for the writer plus CRM jobs pending"),
            ("callsync_jobs_pending", "pending", "CRM jobs pending or in flight"),
            ("callsync_jobs_dead", "dead", "CRM jobs in the dead-letter queue"),
            ("callsync_oldest_pending_age_seconds", "oldest_pending_age_seconds", "Age of the oldest pending CRM job"),
            ("callsync_uptime_seconds", "uptime_seconds", "Seconds since callsync started"),
            ("callsync_store_bytes", "store_bytes", "Size of the store on disk (database and write-ahead log)"),
        ):
            yield GaugeMetricFamily(name, text, value=float(v.get(key) or 0))


class PromMetrics:
    """One registry per service, so several services in one process (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._snapshot = _Snapshot()
        self.registry.register(self._snapshot)
        self.ack_latency = Histogram(
            "callsync_ack_latency_seconds", "Time from a webhook's arrival to its answer", buckets=ACK_BUCKETS,
            registry=self.registry)
        self.sync_latency = Histogram(
            "callsync_receipt_to_crm_seconds", "Time from receiving the event that finished a call to its CRM "
            "job completing", buckets=SYNC_BUCKETS, registry=self.registry)
        self.crm_requests = Counter(
            "callsync_crm_requests", "CRM requests by HTTP status (0: no answer)", labelnames=["status"],
            registry=self.registry)

    def observe_ack_ms(self, ms: float) -> None:
        self.ack_latency.observe(ms / 1000)

    def observe_crm(self, status: int | None) -> None:
        self.crm_requests.labels(str(status or 0)).inc()

    def observe_sync_seconds(self, seconds: float) -> None:
        if seconds >= 0:
            self.sync_latency.observe(seconds)

    def render(self, snapshot: Mapping[str, Any]) -> tuple[bytes, str]:
        self._snapshot.values = snapshot
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
