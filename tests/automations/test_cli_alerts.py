"""`callsync alerts` as a real process: newest first, --since, --recipe, --json; a bad --since is one line."""

from __future__ import annotations

import json

from connector.store import alerts, migrations
from connector.store.db import open_sqlite
from tests.integration.test_cli import assert_one_line_error, run_cli

T = 1_780_000_000.0  # 2026-05-28T20:26:40Z


def seed(data_dir) -> None:
    (data_dir / "config.toml").write_text("")
    db = open_sqlite(data_dir / "callsync.db")
    try:
        migrations.migrate(db)
        rows = [{"id": f"al_{n}", "recipe": recipe, "subject": "Q1", "level": "alert", "created_at": T + n * 60,
                 "message": f"message {n}", "fields": {}, "evidence": {"event_ids": [n, n - 1]}, "event_id": n}
                for n, recipe in ((1, "abandon"), (2, "did_burn"), (3, "abandon"))]
        with db.transaction():
            alerts.save(db, rows, [[] for _ in rows], [], None, T)
            alerts.acknowledge(db, ["al_1"], T)
    finally:
        db.close()


async def test_alerts_lists_newest_first_with_filters(tmp_path):
    seed(tmp_path)
    run = await run_cli("alerts", "--data-dir", str(tmp_path))
    assert run.code == 0, run
    lines = run.out.splitlines()
    assert [line.split()[-1] for line in lines[0::2]] == ["3", "2", "1"]  # "message 3" ...
    assert lines[0].startswith("! ") and lines[4].startswith("  ")  # the first alert was acknowledged
    assert "al_3  events 3, 2" in lines[1]
    run = await run_cli("alerts", "--data-dir", str(tmp_path), "--json", "--recipe", "abandon",
                        "--since", "2026-05-28T20:28:00Z")
    assert [a["id"] for a in json.loads(run.out)] == ["al_3"]
    assert json.loads(run.out)[0]["created_at"] == "2026-05-28T20:29:40Z"
    assert_one_line_error(await run_cli("alerts", "--data-dir", str(tmp_path), "--since", "yesterday"),
                          "--since must be ISO 8601")


async def test_alerts_without_a_store_creates_nothing(tmp_path):
    run = await run_cli("alerts", "--data-dir", str(tmp_path / "none"))
    assert run.code == 0 and run.out.strip() == "no alerts"
    assert not (tmp_path / "none").exists()


async def test_secret_status_names_the_secrets_of_actions_and_the_alert_webhook(tmp_path):
    (tmp_path / "config.toml").write_text("""
[actions.suppress_did]
url = "https://dialer.example/dids/{did}"
headers = { Authorization = "Bearer {secret}" }

[actions.no_secret]
url = "https://dialer.example/hook/{did}"

[alerts]
webhook_url = "https://bi.example/hook"
""")
    run = await run_cli("secret", "status", "--data-dir", str(tmp_path), env={"CALLSYNC_ACTION_SUPPRESS_DID": "k"})
    assert "action:suppress_did" in run.out and "environment (CALLSYNC_ACTION_SUPPRESS_DID)" in run.out
    assert "action:no_secret" not in run.out
    assert "alerts:webhook" in run.out and "CALLSYNC_ALERTS_WEBHOOK" in run.out and run.code != 0  # it is missing
