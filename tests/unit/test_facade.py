"""Pure parts of the window's facade: health verdicts, config edits, autostart, masking, signing."""

from __future__ import annotations

import time
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from connector import config_edit
from connector.config import DEFAULT_CONFIG, ConfigError, SourceConfig, load_config
from connector.autostart import Autostart
from connector.health import (
    REJECTION_REASONS,
    format_iso,
    format_time,
    health_target,
    health_verdict,
    job_status_text,
    rejection_lines,
    signature_alerts,
)
from connector.redact import MASK, mask_headers, pretty_payload
from connector.test_events import sample_payload, sign_request
from connector.window_queries import search_kind
from connector.receiver.signatures import Unauthorized, verify_hmac, verify_standard, verify_twilio
from connector.sync.settings import DEFAULT_RULES, Rule, parse_ghl
from tests.conftest import SECRET, STANDARD_SECRET, TWILIO_TOKEN

OK_CRM = {"configured": True, "token": True, "auth_error": None, "pause_reason": None}


def m(**values) -> dict:
    crm = OK_CRM | values.pop("crm", {})
    return {"pending": 0, "dead": 0, "retrying": 0, "oldest_pending_age_seconds": 0, "crm": crm} | values


@pytest.mark.parametrize(
    "metrics, level, text",
    [
        (m(), "ok", "All synced"),
        (m(pending=3, oldest_pending_age_seconds=4), "ok", "Syncing — 3 waiting"),
        (m(pending=12, crm={"pause_reason": "GHL rate limit"}), "warn", "12 waiting — GHL rate limit"),
        (m(pending=2, crm={"pause_reason": "GHL daily limit reached"}), "warn",
         "2 waiting — GHL daily limit reached"),
        (m(pending=5, retrying=2), "warn", "5 waiting — 2 calls retrying after errors"),
        (m(pending=1, retrying=1), "warn", "1 waiting — 1 call retrying after errors"),
        (m(pending=4, oldest_pending_age_seconds=1800), "warn", "4 waiting — oldest 30 min"),
        (m(dead=1), "error", "1 call failed to sync — open Dead letters"),
        (m(dead=7, pending=2), "error", "7 calls failed to sync — open Dead letters"),
        (m(crm={"auth_error": "Token rejected (HTTP 401): fix your token"}, pending=9, dead=1), "error",
         "Token rejected — open CRM settings"),
        (m(crm={"token": False}), "error", "No CRM token — open CRM"),
        (m(crm={"configured": False, "token": False}, pending=3), "warn", "CRM not configured — open CRM"),
        (m(store_ok=False), "error", "Store unavailable — check the data dir and free disk space"),
        # A pause without waiting work is not news.
        (m(crm={"pause_reason": "GHL rate limit"}), "ok", "All synced"),
    ],
)
def test_health_verdict(metrics, level, text):
    assert health_verdict(metrics) == (level, text)


@pytest.mark.parametrize(
    "metrics, target",
    [(m(), None), (m(dead=2), "dead_letters"), (m(crm={"configured": False}), "crm"),
     (m(crm={"auth_error": "x"}), "crm"), (m(crm={"token": False}, dead=3), "crm")],
)
def test_health_target(metrics, target):
    assert health_target(metrics) == target


@pytest.mark.parametrize(
    "text, kind",
    [("+1 (202) 555-0143", "phone"), ("2025550143", "phone"), ("555-0143", "phone"), ("12345", "call_id"),
     ("CAa1b2c3d4e5f60718293a4b5c6d7e8f90", "call_id"), ("a3f7c291-4b8e-4d2a-9c1f-08d7b3e4f6a2", "call_id"),
     ("call_7Hq2xP", "call_id")],
)
def test_search_kind(text, kind):
    assert search_kind(text) == kind


def test_mask_headers_keeps_plain_values_and_hides_secret_looking_ones():
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "UnlimCall-Webhooks/2.1",
        "X-Webhook-Signature": "[redacted]",
        "X-Api-Token": "abc",
        "Authorization": "Bearer eyJhbGciOi",
        "X-Forwarded-For": "203.0.113.7",
        "X-Custom": "whsec_c2VjcmV0",
        "X-Request-Id": "4f4eab85-3776",
        "X-Digest": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    }
    masked = mask_headers(headers)
    assert masked["Content-Type"] == "application/json" and masked["User-Agent"] == "UnlimCall-Webhooks/2.1"
    assert masked["X-Webhook-Signature"] == "[redacted]"
    assert masked["X-Forwarded-For"] == "203.0.113.7" and masked["X-Request-Id"] == "4f4eab85-3776"
    for name in ("X-Api-Token", "Authorization", "X-Custom", "X-Digest"):
        assert masked[name] == MASK


def test_pretty_payload():
    assert pretty_payload('{"a":{"auth_token":"t0k","b":1}}', "application/json") == (
        '{\n  "a": {\n    "auth_token": "' + MASK + '",\n    "b": 1\n  }\n}')
    assert pretty_payload("CallSid=CA1&CallStatus=ringing", "application/x-www-form-urlencoded") == (
        "CallSid = CA1\nCallStatus = ringing")
    assert pretty_payload("not json", "application/json") == "not json"


# -- config edits keep comments ---------------------------------------------------------------

USER_FILE = """\
# my callsync file -- keep this comment
[server]
host = "127.0.0.1"   # behind cloudflared
port = 8787
public_url = ""

[sources.dialer]   # the UnlimCall trunk
kind = "hmac"
signature_header = "X-Signature"   # their header
signature_encoding = "hex"
timestamp_header = ""
tolerance_seconds = 300

[crm.ghl]
location_id = "loc123"   # sub-account
callback_threshold = 3

[[rules]]   # mine
outcome = ["sale"]
add_tags = ["won"]
"""


@pytest.fixture
def config_file(tmp_path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(USER_FILE, encoding="utf-8")
    return path


def test_set_source_adds_and_updates_in_place_keeping_comments(config_file):
    config_edit.set_source(config_file, SourceConfig("std", kind="standard", tolerance_seconds=600))
    config_edit.set_source(config_file, SourceConfig("dialer", signature_header="X-Signature",
                                                     signature_encoding="base64"))
    text = config_file.read_text()
    for comment in ("# my callsync file -- keep this comment", "# behind cloudflared", "# the UnlimCall trunk",
                    "# their header", "# sub-account", "# mine"):
        assert comment in text
    config = load_config(config_file.parent)
    assert config.sources["dialer"].signature_encoding == "base64"
    assert config.sources["std"] == SourceConfig("std", kind="standard", tolerance_seconds=600)
    assert "signature_header" not in tomllib.loads(text)["sources"]["std"]


def test_switching_kind_drops_keys_of_the_old_kind(config_file):
    config_edit.set_source(config_file, SourceConfig("dialer", kind="twilio"))
    assert tomllib.loads(config_file.read_text())["sources"]["dialer"] == {"kind": "twilio", "tolerance_seconds": 300}


def test_remove_source_and_public_url(config_file):
    config_edit.remove_source(config_file, "dialer")
    config_edit.set_server(config_file, public_url="https://abc.trycloudflare.com")
    data = tomllib.loads(config_file.read_text())
    assert data.get("sources", {}) == {}
    assert data["server"]["public_url"] == "https://abc.trycloudflare.com"
    assert "# behind cloudflared" in config_file.read_text()


def test_crm_and_rules_round_trip(config_file):
    config_edit.set_crm(config_file, location_id="loc999", callback_threshold=None, callback_exhausted_tag="gave up")
    rules = [Rule(outcome=["no_answer"], add_tags=["na"], callback="increment", note=False),
             Rule(outcome=["abandoned"], task="Call back", task_due_hours=1.0, campaign=["spring"])]
    config_edit.set_rules(config_file, rules)
    text = config_file.read_text()
    settings = parse_ghl(tomllib.loads(text))
    assert settings.location_id == "loc999" and settings.callback_threshold == 3  # removed key: default again
    assert settings.callback_exhausted_tag == "gave up"
    assert settings.rules == rules
    assert "# sub-account" in text and "# my callsync file" in text
    config_edit.set_rules(config_file, [])
    assert parse_ghl(tomllib.loads(config_file.read_text())).rules == []


def test_default_rules_round_trip(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(DEFAULT_CONFIG)
    config_edit.set_rules(path, list(DEFAULT_RULES))
    assert parse_ghl(tomllib.loads(path.read_text())).rules == list(DEFAULT_RULES)
    assert path.read_text().startswith(DEFAULT_CONFIG.splitlines()[0])


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda p: config_edit.set_source(p, SourceConfig("bad name")), "letters, digits"),
        (lambda p: config_edit.set_source(p, SourceConfig("x", signature_encoding="hexx")), "hex, base64"),
        (lambda p: config_edit.set_crm(p, callback_threshold=0), "at least 1"),
        (lambda p: config_edit.set_rules(p, [Rule(callback="sometimes")]), "callback"),
    ],
)
def test_bad_edits_leave_the_file_untouched(config_file, edit, message):
    with pytest.raises(ConfigError, match=message):
        edit(config_file)
    assert config_file.read_text() == USER_FILE


# -- start on login ---------------------------------------------------------------------------


def test_autostart_writes_and_removes_the_desktop_entry(tmp_path):
    path = tmp_path / "autostart" / "callsync.desktop"
    autostart = Autostart(["/opt/call sync/bin/callsync", "gui", "--data-dir", "/home/ana/My $data"], path,
                          platform="linux")
    assert autostart.supported()[0] and not autostart.enabled()
    autostart.set(True)
    text = path.read_text()
    assert text.startswith("[Desktop Entry]\nType=Application\nName=callsync\n")
    assert 'Exec="/opt/call sync/bin/callsync" gui --data-dir "/home/ana/My \\$data"\n' in text
    assert "Terminal=false" in text and autostart.enabled()
    autostart.set(False)
    assert not path.exists() and not autostart.enabled()
    autostart.set(False)  # idempotent


@pytest.mark.parametrize("platform, name", [("darwin", "macOS"), ("win32", "Windows")])
def test_autostart_elsewhere_says_not_supported(tmp_path, platform, name):
    autostart = Autostart(["callsync"], tmp_path / "x.desktop", platform=platform)
    ok, message = autostart.supported()
    assert not ok and f"not supported on {name} yet" in message
    assert not autostart.enabled()
    with pytest.raises(NotImplementedError):
        autostart.set(True)
    assert not (tmp_path / "x.desktop").exists()


# -- test events are signed the way each receiver check expects --------------------------------

NOW = datetime(2026, 6, 4, 9, 0, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    "source, secret",
    [
        (SourceConfig("a"), SECRET),
        (SourceConfig("b", signature_encoding="base64", timestamp_header="X-Webhook-Timestamp"), SECRET),
        (SourceConfig("c", signature_header="X-Hub-Signature-256"), SECRET),
        (SourceConfig("d", kind="standard"), STANDARD_SECRET),
        (SourceConfig("e", kind="twilio"), TWILIO_TOKEN),
    ],
)
def test_signed_sample_passes_the_receivers_check_and_fails_with_another_secret(source, secret):
    body, content_type = sample_payload(source, "test-1", NOW)
    url = "https://tunnel.example.com/hooks/" + source.name
    headers = sign_request(source, secret, body, content_type, url, NOW)

    def verify(secrets: list[str]) -> None:
        if source.kind == "hmac":
            verify_hmac(source, secrets, body, headers, NOW)
        elif source.kind == "standard":
            verify_standard(source, secrets, body, headers, NOW)
        else:
            verify_twilio(source, secrets, body, headers, url, is_form=True)

    verify([secret])
    other = "whsec_" + "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMQ==" if source.kind == "standard" else "other"
    with pytest.raises(Unauthorized):
        verify([other])


def test_facade_is_qt_free():
    import subprocess
    import sys

    code = ("import sys, connector.facade, connector.config_edit; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'qasync', 'pyqtgraph')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"


# -- rejected webhooks in plain words -----------------------------------------------------------


def test_every_rejection_reason_the_receiver_counts_has_plain_words():
    import re

    root = Path(__file__).resolve().parents[2] / "connector" / "receiver"
    code = "\n".join(p.read_text() for p in root.glob("*.py"))
    reasons = set(re.findall(r'(?:_reject\(\d+, |Unauthorized\()"([a-z_]+)"', code))
    assert {"bad_signature", "missing_signature", "stale_timestamp", "no_secret"} <= reasons
    assert reasons - {"unknown_source"} <= set(REJECTION_REASONS)  # unknown sources are not sources


@pytest.mark.parametrize(
    "by_source, alerts",
    [
        ({}, []),
        ({"dialer": {"bad_signature": 18}}, ["dialer: 18 requests rejected in the last hour — the signature does "
                                            "not match; check the secret"]),
        ({"dialer": {"bad_signature": 1, "too_large": 4}}, ["dialer: 1 request rejected in the last hour — the "
                                                           "signature does not match; check the secret"]),
        ({"dialer": {"too_large": 4, "bad_payload": 2}}, []),  # not a signature problem: no banner
        ({"tw": {"no_public_url": 2, "bad_signature": 1}},
         ["tw: 3 requests rejected in the last hour — Twilio signs the public URL, which is not set; set it in Sources"]),
        ({"b": {"stale_timestamp": 2}, "a": {"no_secret": 5}},
         ["a: 5 requests rejected in the last hour — callsync has no secret for this source yet; add it in Sources",
          "b: 2 requests rejected in the last hour — the signed time is too far from this computer's clock; check "
          "both clocks"]),
    ],
)
def test_signature_alerts(by_source, alerts):
    assert signature_alerts(by_source) == alerts


def test_rejection_lines_most_frequent_first_unknown_reasons_readable():
    assert rejection_lines({"too_large": 1, "bad_signature": 7, "new_reason": 2, "slow_body": 0}) == [
        (7, "the signature does not match; check the secret"), (2, "new reason"),
        (1, "they are larger than callsync accepts")]


# -- times for people ---------------------------------------------------------------------------


@pytest.fixture
def new_york(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    "ts, now, text",
    [
        ("2026-06-04T09:14:22Z", "2026-06-04T20:00:00Z", "05:14:22"),  # today, local (UTC-4)
        ("2026-06-04T09:14:22Z", "2026-06-09T12:00:00Z", "4 Jun 05:14"),  # this year
        ("2026-06-04T09:14:22Z", "2027-01-02T12:00:00Z", "4 Jun 2026 05:14"),
        ("2026-06-04T02:00:00Z", "2026-06-04T12:00:00Z", "3 Jun 22:00"),  # yesterday evening in New York
    ],
)
def test_format_time_is_local_and_short(new_york, ts, now, text):
    def unix(iso: str) -> float:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()

    assert format_time(unix(ts), unix(now)) == text
    assert format_iso(ts, unix(now)) == text


@pytest.mark.parametrize("raw, text", [("2026-06-04T11:14:22+02:00", "05:14:22"), ("2026-06-04T09:14:22", "05:14:22"),
                                       ("yesterday", "yesterday"), (None, ""), ("", "")])
def test_format_iso_reads_offsets_and_leaves_other_text(new_york, raw, text):
    now = datetime(2026, 6, 4, 20, tzinfo=timezone.utc).timestamp()
    assert format_iso(raw, now) == text


# -- why a CRM job waits ------------------------------------------------------------------------

NOW_JOB = datetime(2026, 6, 4, 12, 0, 0).timestamp()  # local noon
IDLE = {"configured": True, "token": True, "auth_error": None, "pause_reason": None, "paused_until": None}


def job(**values) -> dict:
    return {"id": 7, "status": "pending", "attempts": 0, "failures": 0, "next_attempt_at": NOW_JOB,
            "last_error": None, "done_at": None} | values


@pytest.mark.parametrize(
    "the_job, crm, text",
    [
        (None, IDLE, "No CRM work for this call (yet): it is written when the call has an outcome."),
        (job(), IDLE | {"configured": False, "pause_reason": "CRM not configured"},
         "CRM job #7: waiting — CRM not configured; next try once that is fixed."),
        (job(), IDLE | {"token": False, "pause_reason": "no CRM token"},
         "CRM job #7: waiting — no CRM token; next try once that is fixed."),
        (job(attempts=1, failures=1, last_error="HTTP 401"),
         IDLE | {"auth_error": "Token rejected (HTTP 401): fix your token"},
         "CRM job #7: waiting — Token rejected (HTTP 401): fix your token; next try once that is fixed."),
        (job(), IDLE | {"pause_reason": "GHL rate limit", "paused_until": NOW_JOB + 42},
         "CRM job #7: waiting — GHL rate limit; next try at 12:00:42."),
        (job(attempts=2, failures=2, last_error="HTTP 500 upstream", next_attempt_at=NOW_JOB + 95), IDLE,
         "CRM job #7: waiting — retrying after an error: HTTP 500 upstream; next try at 12:01:35 (in 2 min)."),
        (job(), IDLE, "CRM job #7: waiting — queued; next try now."),
        (job(waiting_for="dialer/call-41"), IDLE,
         "CRM job #7: waiting — an earlier call of this contact is written first (dialer/call-41)."),
        (job(status="leased", attempts=2), IDLE, "CRM job #7: being written to the CRM now (2 tries so far)."),
        (job(status="done", attempts=1, done_at=NOW_JOB - 30), IDLE,
         "CRM job #7: written to the CRM at 11:59:30 (1 try)."),
        (job(status="dead", attempts=4, last_error="HTTP 422 bad note"), IDLE,
         "CRM job #7: gave up after 4 tries — HTTP 422 bad note. Replay it from Dead letters."),
    ],
)
def test_job_status_text(the_job, crm, text):
    assert job_status_text(the_job, crm, NOW_JOB) == text


def test_a_test_call_is_never_crm_work():
    assert job_status_text(None, IDLE, NOW_JOB, test=True) == "A test call: never written to the CRM."
