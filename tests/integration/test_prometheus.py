"""GET /metrics on the admin port: Prometheus text format with the figures of /api/metrics."""

from __future__ import annotations

import uuid

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_sync_e2e import call_event, no_answer, send, settle, sync_service  # noqa: F401
from tests.signing import dumps, hmac_headers


async def scrape(svc) -> tuple[str, dict[str, dict[tuple, float]]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{svc.admin_url}/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
            content_type = resp.headers["Content-Type"]
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return content_type, samples


async def test_counters_gauges_and_histograms(sync_service, ghl):
    svc = await sync_service()
    for i in range(3):
        await send(svc, call_event("call.completed", str(uuid.uuid4()), f"+1202555030{i}"))
    await send(svc, no_answer(str(uuid.uuid4()), "+12025550309"))
    body = dumps({"event": "call.initiated", "call_uuid": "x"})
    async with aiohttp.ClientSession() as http:
        for headers in (hmac_headers(body, "wrong-secret"), hmac_headers(body, "wrong-secret"),
                        {"Content-Type": "application/json"}):
            async with http.post(f"{svc.hooks_url}/hooks/dialer", data=body, headers=headers) as resp:
                assert resp.status == 401
    await settle(svc)
    # the rejection counters are written with the writer's next batch: one more stored event flushes them
    await send(svc, dumps({"event": "call.initiated", "call_uuid": str(uuid.uuid4())}))

    content_type, m = await scrape(svc)
    assert content_type.startswith("text/plain; version=")
    assert m["callsync_events_stored_total"][()] == 5
    assert m["callsync_webhooks_rejected_total"][(("reason", "bad_signature"),)] == 2
    assert m["callsync_webhooks_rejected_total"][(("reason", "missing_signature"),)] == 1
    assert m["callsync_webhooks_received_total"][()] == 8
    assert m["callsync_ack_latency_seconds_count"][()] == 8  # every answer, stored or rejected
    assert m["callsync_jobs_processed_total"][()] == 4
    assert m["callsync_jobs_pending"][()] == 0
    assert m["callsync_receipt_to_crm_seconds_count"][()] == 4
    by_status = m["callsync_crm_requests_total"]
    assert sum(by_status.values()) == len(ghl.requests)
    assert by_status[(("status", "200"),)] + by_status.get((("status", "201"),), 0) == len(ghl.requests)


async def test_foreign_host_gets_no_metrics(sync_service):
    svc = await sync_service()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{svc.admin_url}/metrics", headers={"Host": "rebind.example"}) as resp:
            assert resp.status == 403
