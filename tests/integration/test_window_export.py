"""The window's export run: on a thread, progress back on the event loop, column matches from a tab's
filters, Cancel and errors as outcomes; against a store filled through the real receiver."""

from __future__ import annotations

import csv
import threading

import pytest

from connector import export
from connector.test_events import TEST_HEADER
from connector.window_export import ExportJob, ExportRequest, run_export, scope_for
from tests.conftest import SECRET
from tests.integration.test_receiver import post, unlimcall
from tests.signing import dumps, hmac_headers


async def send(service, phone: str, *, test: bool = False) -> None:
    body = dumps(unlimcall(to=phone))
    headers = hmac_headers(body, SECRET) | ({TEST_HEADER: "1"} if test else {})
    status, answer, _ = await post(service, "dialer", body, headers)
    assert status == 200 and answer["status"] == "stored", answer


def rows(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


async def test_tab_filters_narrow_the_export_and_test_calls_stay_out(service, tmp_path):
    for phone in ("+12025550401", "+12025550402"):
        await send(service, phone)
    await send(service, "+12025550499", test=True)
    db = service.config.db_path
    seen: list[tuple[int, int, bool]] = []
    main = threading.get_ident()

    out = tmp_path / "calls.csv"
    request = ExportRequest("calls", out, "csv", match=scope_for("calls").match)
    outcome = await run_export(db, request, ExportJob(),
                               lambda done, total: seen.append((done, total, threading.get_ident() == main)))
    assert outcome.ok and outcome.rows == 2 and outcome.message == f"Exported 2 calls to {out}"
    assert sorted(r["phone"] for r in rows(out)) == ["+12025550401", "+12025550402"]
    assert seen[-1] == (2, 2, True)  # progress comes back on the event loop's thread

    out = tmp_path / "one.csv"
    request = ExportRequest("events", out, "csv", match=scope_for("events", "(202) 555-0402", "phone").match)
    outcome = await run_export(db, request, ExportJob())
    assert outcome.rows == 1 and [r["phone"] for r in rows(out)] == ["+12025550402"]

    with pytest.raises(export.ExportError, match="cannot be matched on 'agent'"):
        export.export_file(db, tmp_path / "bad.csv", "calls", "csv", match={"agent": ["maria"]})
    assert not list(tmp_path.glob("*.part")) and not (tmp_path / "bad.csv").exists()


async def test_cancel_and_errors_are_outcomes_and_leave_no_file(service, tmp_path):
    await send(service, "+12025550411")
    job = ExportJob()
    job.cancel()
    out = tmp_path / "events.jsonl"
    outcome = await run_export(service.config.db_path, ExportRequest("events", out, "jsonl"), job)
    assert outcome.cancelled and not outcome.ok and outcome.rows == 0
    assert not out.exists() and not list(tmp_path.glob("*.part"))

    outcome = await run_export(tmp_path / "missing.db", ExportRequest("events", out, "csv"), ExportJob())
    assert not outcome.ok and not outcome.cancelled
    assert outcome.message.startswith("Export failed: no store at ") and not out.exists()
