"""Export of calls and events from a store filled through the real receiver."""

from __future__ import annotations

import base64
import csv
import json
import time

import pytest

from connector import export
from tests.conftest import SECRET
from tests.integration.test_receiver import post, unlimcall
from tests.signing import dumps, hmac_headers


async def fill(service, n: int, prefix: str) -> list[str]:
    call_ids = []
    for i in range(n):
        call_id = f"{prefix}-{i}"
        body = dumps(unlimcall(call_uuid=call_id, campaign="Q1 \"north\", ü"))
        status, answer, _ = await post(service, "dialer", body, hmac_headers(body, SECRET))
        assert status == 200 and answer["status"] == "stored", answer
        call_ids.append(call_id)
    return call_ids


@pytest.mark.parametrize("fmt", export.FORMATS)
async def test_events_and_calls_round_trip(service, tmp_path, fmt):
    first = await fill(service, 3, "early")
    cut = time.time()
    later = await fill(service, 4, "late")
    db = service.config.store_target  # the SQLite file, or the PostgreSQL database (tests/backends.py)
    progress: list[tuple[int, int]] = []

    out = tmp_path / f"events.{fmt}"
    n = export.export_file(db, out, "events", fmt, progress=lambda done, total: progress.append((done, total)))
    rows = _read(out, fmt)
    assert n == len(rows) == 7 and progress[-1] == (7, 7)
    assert {r["call_id"] for r in rows} == set(first + later)
    stored = json.loads(rows[0]["body"])
    assert stored["call_uuid"] == rows[0]["call_id"] and rows[0]["body_encoding"] == "utf-8"
    assert rows[0]["received_at"].endswith("Z")

    out = tmp_path / f"late-events.{fmt}"
    assert export.export_file(db, out, "events", fmt, since=cut) == 4
    assert {r["call_id"] for r in _read(out, fmt)} == set(later)
    out = tmp_path / f"early-calls.{fmt}"
    assert export.export_file(db, out, "calls", fmt, until=cut) == 3
    calls = _read(out, fmt)
    assert {r["call_id"] for r in calls} == set(first)
    assert all(r["campaign"] == 'Q1 "north", ü' and r["outcome"] == "connected" for r in calls)
    assert not list(tmp_path.glob("*.part"))


def _read(path, fmt) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        if fmt == "csv":
            return list(csv.DictReader(f))
        return [json.loads(line) for line in f]


def test_bodies_that_are_not_utf8_travel_as_base64():
    shaped = export._shape("events", {"id": 1, "body": b"\xff\xfeCallSid=CA1", "received_at": 0.0})
    assert shaped["body_encoding"] == "base64"
    assert base64.b64decode(shaped["body"]) == b"\xff\xfeCallSid=CA1"
    assert shaped["received_at"] == "1970-01-01T00:00:00Z"


def test_clear_errors(tmp_path):
    with pytest.raises(export.ExportError, match="nothing to export"):
        export.export_file(tmp_path / "none.db", tmp_path / "x.csv", "events", "csv")
    import sqlite3

    sqlite3.connect(tmp_path / "empty.db").execute("CREATE TABLE events (id INTEGER, received_at REAL)")
    with pytest.raises(export.ExportError, match="choose one of calls, events"):
        export.export_file(tmp_path / "empty.db", tmp_path / "x.csv", "leads", "csv")
    with pytest.raises(export.ExportError, match="cannot write"):
        export.export_file(tmp_path / "empty.db", tmp_path / "no-such-dir" / "x.csv", "events", "csv")
