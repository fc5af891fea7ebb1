"""CRM tab: location, token, connection test and the rules editor, written to config.toml and applied live."""

from __future__ import annotations

import tomllib

import pytest
from PySide6.QtCore import Qt

from gui.crm import ADD_TAGS, CALLBACK, CAMPAIGN, DISPOSITION, OUTCOME, RULE_COLUMNS, TASK
from tests.gui.conftest import until
from tests.gui.test_dead_letters import DIALER, completed_call, send

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton


async def test_location_token_and_connection_test(qtbot, start_service, open_window, ghl, memory_keyring):
    service = await start_service(sources=DIALER, crm=False, token=None,
                                  extra={"crm": {"ghl": {"base_url": ghl.base_url}}})
    window = open_window(service)
    window.select_tab("crm")
    crm = window.crm
    assert "No token yet" in crm.token_state.text()

    qtbot.mouseClick(crm.test, LEFT)
    await until(lambda: "No location id" in crm.verdict.text(), what="verdict without location")

    qtbot.keyClicks(crm.location, ghl.location_id)
    qtbot.keyClicks(crm.token, "pit-wrong-token-0000")
    qtbot.mouseClick(crm.save_token, LEFT)
    qtbot.mouseClick(crm.test, LEFT)
    await until(lambda: crm.verdict.text().startswith("Token rejected (HTTP 401)"), what="rejected verdict")

    assert service.worker.settings.location_id == ghl.location_id  # "Test" saved what was on screen

    qtbot.keyClicks(crm.token, ghl.token)
    qtbot.mouseClick(crm.save_token, LEFT)
    assert memory_keyring.values[("callsync", "crm:ghl")] == ghl.token
    assert crm.token.text() == "" and "A token is set" in crm.token_state.text()
    qtbot.mouseClick(crm.test, LEFT)
    await until(lambda: crm.verdict.text().startswith("Connected to location"), what="connected verdict")
    table = tomllib.loads(service.config.config_path.read_text())["crm"]["ghl"]
    assert table == {"base_url": ghl.base_url, "location_id": ghl.location_id}
    assert ghl.token not in service.config.config_path.read_text()


async def test_rules_editor_writes_rules_and_the_sync_follows_them(qtbot, start_service, open_window, ghl):
    service = await start_service(sources=DIALER)
    window = open_window(service)
    window.select_tab("crm")
    crm = window.crm
    rules = crm.rules
    assert rules.rowCount() == 8 and "built-in defaults" in crm.rules_state.text()

    qtbot.mouseClick(crm.add_rule, LEFT)
    row = rules.rowCount() - 1
    outcome = rules.cellWidget(row, OUTCOME)
    outcome.setCurrentIndex(outcome.findData(["connected"]))
    rules.item(row, ADD_TAGS).setText("hot lead, called today")
    rules.item(row, TASK).setText("Send the quote")
    callback = rules.cellWidget(row, CALLBACK)
    callback.setCurrentIndex(callback.findData("reset"))
    # Move it first: the first matching rule wins.
    kept = rules.rules()
    rules.set_rules([kept[-1], *kept[:-1]])
    crm.threshold.setValue(5)
    qtbot.mouseClick(crm.save, LEFT)
    assert "Saved" in crm.result.text()

    text = service.config.config_path.read_text()
    assert text.startswith("# written by the test")
    data = tomllib.loads(text)
    assert data["crm"]["ghl"]["callback_threshold"] == 5
    assert data["rules"][0] == {"outcome": ["connected"], "add_tags": ["hot lead", "called today"],
                                "callback": "reset", "task": "Send the quote", "note": True}
    assert len(data["rules"]) == 9
    settings = service.worker.settings
    assert settings.callback_threshold == 5 and settings.rules[0].add_tags == ["hot lead", "called today"]

    await send(service, completed_call("+12025550151"))
    await until(lambda: window.dashboard.tiles["processed"].value.text() == "1", what="processed = 1")
    contact = ghl.contact_by_phone("+12025550151")
    assert {"hot lead", "called today"} <= set(contact["tags"])
    assert [t["title"] for t in ghl.tasks[contact["id"]]] == ["Send the quote"]


async def test_untouched_default_rules_stay_out_of_the_file(qtbot, start_service, open_window):
    service = await start_service(sources=DIALER)
    window = open_window(service)
    window.select_tab("crm")
    qtbot.mouseClick(window.crm.save, LEFT)
    assert "rules" not in tomllib.loads(service.config.config_path.read_text())


async def test_rules_table_shows_and_edits_disposition_and_campaign_conditions(qtbot, start_service, open_window):
    rule = {"outcome": ["sale"], "disposition": ["SALE", "SOLD"], "campaign": ["Q1-Sales"], "add_tags": ["won"]}
    service = await start_service(sources=DIALER, extra={"rules": [rule]})
    window = open_window(service)
    window.select_tab("crm")
    rules = window.crm.rules
    headers = [rules.horizontalHeaderItem(c).text() for c in range(rules.columnCount())]
    assert headers == list(RULE_COLUMNS)
    assert rules.item(0, DISPOSITION).text() == "SALE, SOLD"
    assert rules.item(0, CAMPAIGN).text() == "Q1-Sales"
    assert rules.item(0, ADD_TAGS).text() == "won"

    rules.item(0, DISPOSITION).setText("SALE, SOLD, CLOSED")
    rules.item(0, CAMPAIGN).setText("")  # any campaign now
    qtbot.mouseClick(window.crm.save, LEFT)
    assert "Saved" in window.crm.result.text()
    saved = tomllib.loads(service.config.config_path.read_text())["rules"][0]
    assert saved["disposition"] == ["SALE", "SOLD", "CLOSED"] and "campaign" not in saved
    assert service.worker.settings.rules[0].disposition == ["SALE", "SOLD", "CLOSED"]
    assert service.worker.settings.rules[0].campaign == []
