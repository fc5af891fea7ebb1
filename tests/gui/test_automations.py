"""The Automations tab: every recipe with its live figure and state, agents today, the alert history
with evidence, acknowledge; a new alert is a desktop notification from the tray."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.automations.test_service import ended
from tests.conftest import SECRET
from tests.gui.conftest import until
from tests.gui.test_dead_letters import DIALER
from tests.signing import dumps, hmac_headers

pytestmark = pytest.mark.gui

ABANDON = {"automations": {"abandon": {"window": 20, "min_calls": 10, "notify_at": 10.0, "act_at": 30.0}}}


async def post(service, body: bytes) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{service.hooks_url}/hooks/dialer", data=body, headers=hmac_headers(body, SECRET)) as r:
            assert r.status == 200, await r.text()


def agent(kind: str, minutes_ago: int) -> bytes:
    at = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    return dumps({"event": f"agent.{kind}", "timestamp": at.isoformat(), "data": {"agent": "ann"},
                  "id": f"ann-{kind}-{minutes_ago}"})


def cell(model, row: int, column: int) -> str:
    return model.data(model.index(row, column))


async def test_recipes_alerts_evidence_and_acknowledge(qtbot, start_service, open_window):
    service = await start_service(sources=DIALER, crm=False, extra=ABANDON)
    window = open_window(service, tray=True)
    window.select_tab("automations")
    view = window.automations
    await until(lambda: view.recipes.rowCount() == 7, what="every recipe and callback exhaustion")
    names = [row["name"] for row in view.recipes.rows]
    assert names == ["did_burn", "abandon", "caller_id", "voicemail", "carrier", "pause", "callback"]
    assert cell(view.recipes, 3, 1) == "off" and cell(view.recipes, 1, 1) == "on"

    for n in range(9):
        await post(service, ended(n, "SALE"))
    await post(service, ended(9, "DROP"))  # 1 of 10 answered: 10 %
    for kind, minute in (("login", 3), ("pause", 1)):
        await post(service, agent(kind, minute))
    await until(lambda: view.alerts.rowCount() == 1, what="the alert in the history")
    assert "abandon rate 10.00%" in cell(view.alerts, 0, 2) and cell(view.alerts, 0, 3) == "new"
    await until(lambda: "tripped" in cell(view.recipes, 1, 4), what="abandon tripped")
    assert cell(view.recipes, 1, 2) == "Q1 Sales at 10.00 %" and cell(view.recipes, 1, 3) == "warn 10 %, act 30 %"
    assert window.tray.notifications[-1] == ("callsync alert", view.alerts.rows[0]["message"])
    # The login may show before the pause is evaluated: wait for the state the events lead to.
    await until(lambda: view.agents.rowCount() == 1 and view.agents.rows[0]["state"] == "paused",
                what="the agent's attendance after the pause")
    assert view.agents.rows[0]["agent"] == "ann"
    assert view.agents.rows[0]["pauses"] == 1

    view.alert_table.selectRow(0)
    await until(lambda: "Evidence" in view.evidence.toPlainText(), what="the evidence")
    assert '"abandoned": 1' in view.evidence.toPlainText() and view.alerts.rows[0]["id"] in view.evidence.toPlainText()
    assert view.acknowledge_all.isEnabled()
    view.acknowledge_selected.click()
    await until(lambda: cell(view.alerts, 0, 3) == "✓", what="acknowledged")
    assert not view.acknowledge_all.isEnabled() and "0 new alert(s)" in view.summary.text()


async def test_no_desktop_notification_when_switched_off(qtbot, start_service, open_window):
    extra = ABANDON | {"alerts": {"desktop": False}}
    service = await start_service(sources=DIALER, crm=False, extra=extra)
    window = open_window(service, tray=True)
    for n in range(9):
        await post(service, ended(n, "SALE"))
    await post(service, ended(9, "DROP"))
    await until(lambda: service.automations.alerts_raised == 1, what="the alert")
    assert not any(title == "callsync alert" for title, _ in window.tray.notifications)
