"""Dashboard and Sources against real signed (and wrongly signed) webhooks: rejections by source and
reason, the FAILED tile in calls, and charts that fit the data, keep their legend order and say when
they are empty."""

from __future__ import annotations

import time
import uuid

import aiohttp
import pytest
from PySide6.QtCore import QPoint, QRect, Qt

from connector.facade import Snapshot
from gui.dashboard import NO_DATA, Dashboard
from tests.conftest import SECRET
from tests.fakes.ghl_server import Fault
from tests.gui.conftest import until
from tests.gui.test_dead_letters import DIALER, completed_call, send
from tests.signing import dumps, hmac_headers

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton
TWO = {"dialer": {"kind": "hmac"}, "stamped": {"kind": "hmac", "timestamp_header": "X-Webhook-Timestamp"}}


def started(call_id: str) -> bytes:
    return dumps({"event": "call.initiated", "call_uuid": call_id, "from": "+12025550000", "to": "+12025550100"})


async def post(service, source: str, body: bytes, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{service.hooks_url}/hooks/{source}", data=body, headers=headers) as resp:
            return resp.status


async def test_signature_failures_show_a_banner_and_counts_by_reason_in_sources(qtbot, start_service,
                                                                                open_window):
    service = await start_service(sources=TWO)
    window = open_window(service)
    for n in range(3):  # the sender has another secret
        body = started(f"wrong-{n}")
        assert await post(service, "dialer", body, hmac_headers(body, "not-the-secret")) == 401
    body = started("stale-1")  # signed correctly, an hour ago
    old = hmac_headers(body, SECRET, timestamp=int(time.time()) - 3600)
    assert await post(service, "stamped", body, old) == 401
    body = started("unsigned-1")
    assert await post(service, "stamped", body, {"Content-Type": "application/json"}) == 401
    await send(service, completed_call("+12025550181"))  # accepted ones are not rejections

    alerts = window.dashboard.alerts
    # Counters are written with the writer's batches: wait until the banner counts every rejection.
    await until(lambda: alerts.isVisible() and "stamped: 2 requests" in alerts.text.text()
                and "dialer: 3 requests" in alerts.text.text(), what="rejection banner with every rejection")
    lines = alerts.text.text().splitlines()
    assert lines[0] == "dialer: 3 requests rejected in the last hour — the signature does not match; check the secret"
    assert lines[1].startswith("stamped: 2 requests rejected in the last hour — ")
    assert alerts.level == "error" and alerts.button.text() == "Open Sources"

    qtbot.mouseClick(alerts.button, LEFT)
    sources = window.sources
    assert window.tabs.currentWidget() is sources
    sources.reload(select="dialer")
    assert sources.rejected.text() == "<b>3</b> — the signature does not match; check the secret"
    sources.reload(select="stamped")
    text = sources.rejected.text()
    assert "<b>1</b> — the signed time is too far from this computer's clock; check both clocks" in text
    assert "<b>1</b> — they carry no signature (or no signed time)" in text


async def test_failed_tile_counts_calls_not_tries(start_service, open_window, ghl):
    service = await start_service(sources=DIALER)
    window = open_window(service)
    # One call whose note fails twice before it goes through: two failed tries, one call.
    ghl.inject("note", Fault.status(500), Fault.status(500))
    tiles = window.dashboard.tiles
    await send(service, completed_call("+12025550191"))
    await until(lambda: tiles["processed"].value.text() == "1", what="the first call synced")
    await send(service, completed_call("+12025550192"))
    await until(lambda: tiles["processed"].value.text() == "2", what="both calls synced")
    assert (await service.metrics())["failed"] == 2  # the counter of tries
    await until(lambda: tiles["failed"].detail.text().startswith("calls · 2 tries failed"), what="failed tile")
    assert tiles["failed"].value.text() == "1"


async def test_charts_say_no_data_yet_then_fit_a_few_minutes_of_data(start_service, open_window):
    service = await start_service(sources=DIALER)
    window = open_window(service)
    dashboard = window.dashboard
    await until(lambda: window.last_snapshot is not None, what="first snapshot")
    for plot in (dashboard.events_plot, dashboard.latency_plot):
        assert plot.empty_text.isVisible() and plot.empty_text.toPlainText() == NO_DATA
        view = plot.viewRange()[0]
        assert view[1] - view[0] <= 20 * 60  # no data: not three hours of nothing

    for phone in ("+12025550193", "+12025550194"):
        await send(service, completed_call(phone))
    await until(lambda: dashboard.tiles["processed"].value.text() == "2", what="synced")
    await until(lambda: not dashboard.latency_plot.empty_text.isVisible(), what="latency drawn")
    assert not dashboard.events_plot.empty_text.isVisible()
    now = time.time()
    for plot in (dashboard.events_plot, dashboard.latency_plot):
        start, end = plot.viewRange()[0]
        assert end - start <= 20 * 60  # a few minutes of data fill the axis, not a sliver of 3 hours
        assert start <= now - 60 and end >= now
    assert dashboard.events_legend.entries == ["connected"]


def snapshot(by_outcome: dict[str, list[int]], *, minutes: int = 180) -> Snapshot:
    now = time.time() // 60 * 60
    axis = [int(now - 60 * i) for i in reversed(range(minutes))]
    series = {k: [0] * (minutes - len(v)) + v for k, v in by_outcome.items()}
    return Snapshot({}, "ok", "All synced", None, axis, series, [], now)


def test_legend_keeps_its_order_and_stays_off_the_plot(qtbot):
    dashboard = Dashboard()
    qtbot.addWidget(dashboard)
    dashboard.resize(1200, 700)
    dashboard.show()
    dashboard.show_snapshot(snapshot({"no_answer": [1, 2], "": [3, 0]}))
    assert dashboard.events_legend.entries == ["no answer", "in progress / other"]
    dashboard.show_snapshot(snapshot({"voicemail": [1, 0], "no_answer": [0, 1], "connected": [2, 2], "": [1, 1]}))
    order = ["connected", "no answer", "voicemail", "in progress / other"]
    assert dashboard.events_legend.entries == order  # the fixed order, not the order outcomes appeared in
    dashboard.show_snapshot(snapshot({"": [1, 1], "connected": [2, 2], "voicemail": [1, 0], "no_answer": [0, 1]}))
    assert dashboard.events_legend.entries == order
    assert dashboard.latency_legend.entries == ["P95", "P50"]
    assert dashboard.events_plot.plotItem.legend is None  # nothing drawn over the data

    def rect(widget) -> QRect:
        return QRect(widget.mapTo(dashboard, QPoint(0, 0)), widget.size())

    for plot, legend in ((dashboard.events_plot, dashboard.events_legend),
                         (dashboard.latency_plot, dashboard.latency_legend)):
        assert legend.isVisible() and not rect(legend).intersects(rect(plot))
        assert rect(legend).top() >= rect(plot).bottom()


def test_a_stacked_bar_follows_the_legend_order(qtbot):
    dashboard = Dashboard()
    qtbot.addWidget(dashboard)
    dashboard.show_snapshot(snapshot({"no_answer": [0, 1], "connected": [0, 2]}))
    connected, no_answer = dashboard._bars["connected"].opts, dashboard._bars["no_answer"].opts
    assert list(connected["y0"])[-1] == 0 and list(no_answer["y0"])[-1] == 2  # connected at the bottom


async def test_test_events_are_marked_and_never_calls_in_progress_nor_crm_work(qtbot, start_service, open_window,
                                                                                ghl):
    service = await start_service(sources={**DIALER, "other": {"kind": "hmac"}})
    window = open_window(service)
    window.select_tab("sources")
    view = window.sources
    view.reload(select="dialer")
    qtbot.mouseClick(view.send_test, LEFT)
    await until(lambda: "HTTP 200" in view.test_result.text(), what="test event stored")
    test_call = view.test_result.text().rsplit("call ", 1)[1]
    assert view.open_event.isVisible()

    # Another source: the answer about dialer is gone.
    other = view.list.findItems("other", Qt.MatchFlag.MatchExactly)[0]
    view.list.setCurrentItem(other)
    assert view._editing == "other" and view.test_result.text() == "" and not view.open_event.isVisible()

    real = str(uuid.uuid4())
    body = dumps({"event": "call.initiated", "call_uuid": real, "from": "+12025550000", "to": "+12025550177"})
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{service.hooks_url}/hooks/dialer", data=body, headers=hmac_headers(body, SECRET)) as r:
            assert r.status == 200

    window.select_tab("events")
    events = window.events
    await until(lambda: len(events.model.rows) == 2, what="both events listed")
    shown = {row["call_id"]: events.model.data(events.model.index(i, 5)) for i, row in enumerate(events.model.rows)}
    assert shown[test_call] == "initiated (test)" and shown[real] == "initiated"

    window.select_tab("calls")
    calls = window.calls
    await until(lambda: [c["call_id"] for c in calls.model.rows] == [real], what="only the real call")

    snap = await window.facade.snapshot(fresh=True)
    assert sum(snap.by_outcome.get("", [])) == 1  # the real call's event; the test event is not traffic
    jobs = await service.reader.run(lambda c: c.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
    assert jobs == 0 and ghl.contact_by_phone("+15555550100") is None
    test_event = next(e["id"] for e in events.model.rows if e["call_id"] == test_call)
    window.show_event(test_event)
    await until(lambda: events.inspector.job.text().startswith("A test call"), what="inspector of the test event")
    assert "a test event: never a call, never written to the CRM" in events.inspector.title.text()
