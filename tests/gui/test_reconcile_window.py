"""Gap fill switched on from the Sources form of a Twilio source: saved to config.toml, running at once,
its last run shown."""

from __future__ import annotations

import tomllib

import pytest
from PySide6.QtCore import QPoint, Qt

from tests.conftest import TWILIO_TOKEN
from tests.fakes.twilio_fixture import twilio_api  # noqa: F401 - the fixture
from tests.gui.conftest import until

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton


async def test_gap_fill_is_switched_on_for_a_twilio_source_and_runs(qtbot, start_service, open_window, twilio_api,
                                                                   memory_keyring):
    from datetime import datetime, timedelta, timezone

    from connector import secrets

    twilio_api.credentials[twilio_api.account_sid] = TWILIO_TOKEN
    call = twilio_api.add(start=datetime.now(timezone.utc) - timedelta(hours=2))
    service = await start_service(crm=False, token=None, sources={"twilio": {"kind": "twilio"},
                                                                    "dialer": {"kind": "hmac"}})
    secrets.set_secret("source:twilio", TWILIO_TOKEN)
    window = open_window(service)
    window.select_tab("sources")
    view = window.sources
    rows = view.gap_fill
    item = next(view.list.item(i) for i in range(view.list.count()) if view.list.item(i).text() == "dialer")
    view.list.setCurrentItem(item)
    assert not rows.reconcile.isVisibleTo(view)  # an hmac source has no call log to read
    item = next(view.list.item(i) for i in range(view.list.count()) if view.list.item(i).text() == "twilio")
    view.list.setCurrentItem(item)
    assert rows.reconcile.isVisibleTo(view) and not rows.account_sid.isVisibleTo(view)
    qtbot.mouseClick(rows.reconcile, LEFT, pos=QPoint(6, rows.reconcile.height() // 2))  # on the box
    await until(lambda: rows.reconcile.isChecked())
    assert rows.account_sid.isVisibleTo(view)
    qtbot.keyClicks(rows.account_sid, twilio_api.account_sid)
    # the test's fake API stands where Twilio would be (a key the form keeps as it is)
    service.config.sources["twilio"].api_url = twilio_api.url
    view.facade.config.sources["twilio"].api_url = twilio_api.url
    qtbot.mouseClick(view.save, LEFT)
    assert "Saved 'twilio'" in view.result.text(), view.result.text()
    saved = tomllib.loads(service.config.config_path.read_text())["sources"]["twilio"]
    assert saved["reconcile"] is True and saved["account_sid"] == twilio_api.account_sid
    assert saved["api_url"] == twilio_api.url
    await until(lambda: service.reconciler.runs.get("twilio", 0) >= 1, what="a run right after saving")
    async def filled():
        return await service.reader.run(lambda db: db.execute(
            "SELECT COUNT(*) FROM events WHERE call_id = ? AND origin = 'reconcile'", (call["sid"],)).fetchone()[0])
    import asyncio

    deadline = asyncio.get_running_loop().time() + 10
    while not await filled():
        assert asyncio.get_running_loop().time() < deadline, "call not filled in"
        await asyncio.sleep(0.05)
    view.reload(select="twilio")
    assert rows.state.text().startswith("Last run ") and "up to date with Twilio's call log" in rows.state.text()
