"""Dashboard and tray follow the service live: verdicts, colours, charts, notifications."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.gui.conftest import until
from tests.gui.test_dead_letters import DIALER, completed_call, send

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton


async def test_crm_not_configured_is_amber_and_points_to_the_crm_tab(qtbot, start_service, open_window):
    service = await start_service(sources=DIALER, crm=False, token=None)
    window = open_window(service, tray=True)
    banner = window.dashboard.health
    await until(lambda: banner.text.text() == "CRM not configured — open CRM", what="verdict")
    assert banner.level == "warn" and window.tray.level == "warn"
    assert window.tray.icon.toolTip() == "callsync — CRM not configured — open CRM"
    qtbot.mouseClick(banner.button, LEFT)
    assert window.tabs.currentWidget() is window.crm


async def test_counters_and_charts_follow_traffic(start_service, open_window, ghl):
    service = await start_service(sources=DIALER)
    window = open_window(service)
    dashboard = window.dashboard
    for phone in ("+12025550131", "+12025550132"):
        await send(service, completed_call(phone))
    await until(lambda: dashboard.tiles["processed"].value.text() == "2", what="processed = 2")
    assert dashboard.tiles["received"].value.text() == "2"
    assert dashboard.tiles["dead"].value.text() == "0"
    assert dashboard.tiles["queue"].value.text() == "0"
    assert dashboard.tiles["p95"].value.text().endswith(" ms")
    assert dashboard.health.text.text() == "All synced" and dashboard.health.level == "ok"
    bars = dashboard._bars["connected"].opts["height"]
    assert sum(bars) == 2  # both events finished a call as "connected", in the current minute
    x, y = dashboard.p95.getData()
    assert len(x) >= 1 and all(v > 0 for v in y)


async def test_rejected_token_turns_red_and_notifies_once(qtbot, start_service, open_window, ghl):
    service = await start_service(sources=DIALER, token="pit-00000000-0000-0000-0000-000000000000")
    window = open_window(service, tray=True)
    await send(service, completed_call("+12025550141"))
    banner = window.dashboard.health
    await until(lambda: banner.text.text() == "Token rejected — open CRM settings", what="token verdict")
    assert banner.level == "error" and window.tray.level == "error"
    titles = [title for title, _ in window.tray.notifications]
    assert titles.count("GoHighLevel rejected the token") == 1

    # The fix: paste the right token in the CRM tab; the verdict moves on to the dead letter.
    qtbot.mouseClick(banner.button, LEFT)
    crm = window.crm
    assert window.tabs.currentWidget() is crm
    qtbot.keyClicks(crm.token, ghl.token)
    qtbot.mouseClick(crm.save_token, LEFT)
    await until(lambda: banner.text.text() == "1 call failed to sync — open Dead letters", what="dead verdict")
    assert [title for title, _ in window.tray.notifications].count("GoHighLevel rejected the token") == 1
