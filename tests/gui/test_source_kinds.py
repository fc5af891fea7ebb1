"""Sources tab: every kind and auth method, typed into the form, shows the rows it needs, is saved
and live, and its "Send test event" is accepted (public-key kinds signed with the receiver's own
key, and therefore always a test)."""

from __future__ import annotations

import tomllib

import pytest
from PySide6.QtCore import Qt

from tests.gui.conftest import until
from tests.sender_signing import Ed25519Pair, pem, rsa_pair

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton
TELNYX = Ed25519Pair()
SIGNING = "whsec_c2lnbmluZy1rZXktZm9yLXRlc3QtZXZlbnRzLTMyYg=="
CREDENTIAL = "api-credential-0123456789abcdef0123"


def choose(combo, value) -> None:
    combo.setCurrentIndex(combo.findData(value))


def shown(view, widget) -> bool:
    return view._form.isRowVisible(widget)


CASES = {
    "telnyx": dict(kind="telnyx", public_key=TELNYX.raw_b64),
    "ghl": dict(kind="ghl"),
    "retell": dict(kind="retell", secret=CREDENTIAL),
    "vapi": dict(kind="vapi", secret=CREDENTIAL),
    "vapi_bearer": dict(kind="vapi", auth="bearer", secret=CREDENTIAL),
    "cloudevents": dict(kind="cloudevents", signature="standard", auth="api_key", secret=SIGNING,
                        auth_secret=CREDENTIAL),
    "generic": dict(kind="generic", signature="hmac", secret=CREDENTIAL,
                    fields="call_id = call.ref\nevent = evt.kind\nstatus = call.state\nto = call.legs.1.number",
                    status_map="no-answer = no_answer"),
    "basic": dict(kind="telnyx", public_key=TELNYX.raw_b64, auth="basic", basic_user="dialer",
                  auth_secret=CREDENTIAL),
    "jwt_hs": dict(kind="cloudevents", auth="bearer", jwt=True, audience="callsync", secret=CREDENTIAL),
    "jwt_key": dict(kind="cloudevents", auth="bearer", jwt=True, jwt_public_key=pem(rsa_pair().public_key())),
    "allowlist": dict(kind="retell", secret=CREDENTIAL, allow="127.0.0.1, 203.0.113.0/24"),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_every_kind_and_auth_method_is_offered_saved_and_sends_a_test_event(
        qtbot, start_service, open_window, memory_keyring, case):
    spec = CASES[case]
    service = await start_service()
    window = open_window(service)
    window.select_tab("sources")
    view = window.sources
    details = view.details
    qtbot.mouseClick(view.add, LEFT)
    view.name.clear()
    qtbot.keyClicks(view.name, case.replace("_", "-"))
    choose(view.kind, spec["kind"])
    if "signature" in spec:
        choose(details.signature, spec["signature"])
    if "public_key" in spec:
        details.public_key.setText(spec["public_key"])
    if "auth" in spec:
        choose(details.auth, spec["auth"])
    if "basic_user" in spec:
        qtbot.keyClicks(details.basic_user, spec["basic_user"])
    if spec.get("jwt"):
        details.jwt.setChecked(True)
        details.jwt_audience.setText(spec.get("audience", ""))
        details.jwt_public_key.setText(spec.get("jwt_public_key", ""))
    if "fields" in spec:
        details.fields.setPlainText(spec["fields"])
        details.status_map.setPlainText(spec["status_map"])
    if "allow" in spec:
        details.ip_allowlist.setText(spec["allow"])

    # The form shows what this kind and method need, and nothing else.
    assert shown(view, details.public_key) == (spec["kind"] in ("telnyx", "ghl"))
    assert shown(view, details.signature) == (spec["kind"] in ("cloudevents", "generic", "vapi"))
    assert shown(view, details.fields) == (spec["kind"] == "generic")
    assert shown(view, details.basic_user) == (spec.get("auth") == "basic")
    assert shown(view, details.api_key_header) == (spec.get("auth") == "api_key")
    assert shown(view, view.secret) == ("secret" in spec)
    assert shown(view, details.auth_secret) == ("auth_secret" in spec)
    assert view.signature_header.isEnabled() == (spec.get("signature") == "hmac")
    assert shown(view, view.format) is False  # these kinds read their own payload
    if "secret" in spec:
        qtbot.keyClicks(view.secret, spec["secret"])
    if "auth_secret" in spec:  # a signature kind and an auth method: the credential is source:<name>:auth
        qtbot.keyClicks(details.auth_secret, spec["auth_secret"])

    qtbot.mouseClick(view.save, LEFT)
    name = case.replace("_", "-")
    assert f"Saved '{name}'" in view.result.text(), view.result.text()
    on_disk = tomllib.loads(service.config.config_path.read_text())["sources"][name]
    assert on_disk["kind"] == spec["kind"] and service.config.sources[name].kind == spec["kind"]
    text = service.config.config_path.read_text()
    assert CREDENTIAL not in text and SIGNING not in text
    if "auth_secret" in spec:
        assert memory_keyring.values[("callsync", f"source:{name}:auth")] == CREDENTIAL
    elif "secret" in spec:
        assert memory_keyring.values[("callsync", f"source:{name}")] == spec["secret"]

    qtbot.mouseClick(view.send_test, LEFT)
    await until(lambda: "HTTP" in view.test_result.text() or "No " in view.test_result.text(),
                what=f"{case} test event answer")
    assert "HTTP 200" in view.test_result.text(), view.test_result.text()
    rows = await service.reader.run(lambda c: c.execute("SELECT event_json FROM events").fetchall())
    assert len(rows) == 1 and '"test": true' in rows[0][0]
    assert (await service.metrics())["rejected_total"] == 0
