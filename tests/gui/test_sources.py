"""Sources tab: a source typed into the form is saved to config.toml and the keyring and is live at once."""

from __future__ import annotations

import tomllib

import aiohttp
import pytest
from PySide6.QtCore import Qt

from tests.conftest import SECRET, STANDARD_SECRET, TWILIO_TOKEN
from tests.gui.conftest import until
from tests.signing import dumps, hmac_headers

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton


def fill_source_form(qtbot, view, name: str, secret: str, *, kind: str = "hmac") -> None:
    qtbot.mouseClick(view.add, LEFT)
    view.name.clear()
    qtbot.keyClicks(view.name, name)
    view.kind.setCurrentIndex(view.kind.findData(kind))
    qtbot.keyClicks(view.secret, secret)


async def test_add_source_then_send_test_event_and_see_it_arrive(qtbot, start_service, open_window, memory_keyring):
    service = await start_service()
    window = open_window(service)
    window.select_tab("sources")
    view = window.sources

    fill_source_form(qtbot, view, "unlim", SECRET)
    view.encoding.setCurrentIndex(view.encoding.findData("base64"))
    view.timestamp_header.clear()
    qtbot.keyClicks(view.timestamp_header, "X-Webhook-Timestamp")
    qtbot.mouseClick(view.save, LEFT)

    assert "Saved 'unlim'" in view.result.text()
    on_disk = tomllib.loads(service.config.config_path.read_text())
    assert on_disk["sources"]["unlim"] == {"kind": "hmac", "signature_header": "X-Webhook-Signature",
                                           "signature_encoding": "base64",
                                           "timestamp_header": "X-Webhook-Timestamp", "tolerance_seconds": 300}
    assert service.config.config_path.read_text().startswith("# written by the test")  # comments survive
    assert memory_keyring.values[("callsync", "source:unlim")] == SECRET
    assert SECRET not in service.config.config_path.read_text()
    assert service.config.sources["unlim"].signature_encoding == "base64"  # live, no restart
    assert view.local_url.edit.text() == f"{service.hooks_url}/hooks/unlim"

    # A real sender (signed by the test-side signer, not our code) is accepted right away.
    body = dumps({"event": "call.initiated", "call_uuid": "ext-1", "from": "+12025550100", "to": "+12025550199"})
    headers = hmac_headers(body, SECRET, timestamp=int(service.clock()), encoding="base64")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{service.hooks_url}/hooks/unlim", data=body, headers=headers) as resp:
            assert resp.status == 200, await resp.text()

    qtbot.mouseClick(view.send_test, LEFT)
    await until(lambda: "HTTP 200" in view.test_result.text(), what="test event answer")
    assert "stored" in view.test_result.text()
    assert view.open_event.isVisible()

    # The dashboard counters follow (live refresh, no click).
    await until(lambda: window.dashboard.tiles["received"].value.text() == "2", what="received tile = 2")

    # "Show in Events" opens the Events tab with the new row selected and inspected.
    qtbot.mouseClick(view.open_event, LEFT)
    events = window.events
    await until(lambda: events.inspector.payload.toPlainText().startswith("{"), what="inspector payload")
    row = events.model.rows[events.table.currentIndex().row()]
    assert row["call_id"].startswith("test-") and row["event_type"] == "call.initiated"
    assert row["id"] == view._last_event
    assert '"event": "call.initiated"' in events.inspector.payload.toPlainText()
    assert "X-Webhook-Signature: [redacted]" in events.inspector.headers.toPlainText()
    assert [r["call_id"] for r in events.model.rows] == [row["call_id"], "ext-1"]


@pytest.mark.parametrize("kind, secret", [("standard", STANDARD_SECRET), ("twilio", TWILIO_TOKEN)])
async def test_test_event_is_signed_for_the_source_kind(qtbot, start_service, open_window, kind, secret):
    service = await start_service()
    window = open_window(service)
    window.select_tab("sources")
    view = window.sources
    fill_source_form(qtbot, view, f"my-{kind}", secret, kind=kind)
    assert not view.signature_header.isEnabled()  # only HMAC sources name their header
    qtbot.mouseClick(view.save, LEFT)
    if kind == "twilio":
        qtbot.mouseClick(view.send_test, LEFT)
        await until(lambda: "public URL" in view.test_result.text(), what="public URL hint")
        # A tunnel would forward here; Twilio signs the public URL, the receiver checks the same.
        qtbot.keyClicks(view.public_base, "https://abc.trycloudflare.com/")
        qtbot.mouseClick(view.save_public, LEFT)
        assert service.config.server.public_url == "https://abc.trycloudflare.com"
        assert view.public_url.edit.text() == f"https://abc.trycloudflare.com/hooks/my-{kind}"
    qtbot.mouseClick(view.send_test, LEFT)
    await until(lambda: "HTTP 200" in view.test_result.text(), what=f"{kind} test event accepted")
    totals = (await service.metrics())
    assert totals["stored"] == 1 and totals["rejected_total"] == 0


async def test_remove_source_stops_its_webhook(qtbot, start_service, open_window, memory_keyring):
    service = await start_service(sources={"dialer": {"kind": "hmac"}})
    window = open_window(service)
    window.select_tab("sources")
    view = window.sources
    assert view.name.text() == "dialer" and view.name.isReadOnly()
    qtbot.mouseClick(view.remove, LEFT)
    assert view.confirm.isVisible()
    qtbot.mouseClick(view.confirm.yes, LEFT)
    assert "dialer" not in service.config.sources
    assert "dialer" not in tomllib.loads(service.config.config_path.read_text()).get("sources", {})
    assert ("callsync", "source:dialer") not in memory_keyring.values
    body = dumps({"event": "call.initiated", "call_uuid": "x"})
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{service.hooks_url}/hooks/dialer", data=body, headers=hmac_headers(body, SECRET)) as r:
            assert r.status == 404


async def test_bad_values_are_refused_with_the_reason(qtbot, start_service, open_window):
    service = await start_service()
    window = open_window(service)
    window.select_tab("sources")
    view = window.sources
    fill_source_form(qtbot, view, "no spaces allowed", SECRET)
    qtbot.mouseClick(view.save, LEFT)
    assert "letters, digits" in view.result.text()
    assert service.config.sources == {}
    view.public_base.setText("ftp://nope")
    qtbot.mouseClick(view.save_public, LEFT)
    assert "https://" in view.result.text() and service.config.server.public_url == ""
