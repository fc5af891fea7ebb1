"""What the window may ask and do about the automations (Qt-free, like ``connector.facade``): every
recipe's state with its live figure, the alert history with evidence and deliveries, acknowledge, and
new alerts as they are raised (desktop notifications)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connector.automations.admin_routes import automations_report
from connector.automations.settings import TITLES
from connector.store import alerts as store


def figure_text(row: dict[str, Any]) -> str:
    """A recipe's live figure in words: "Q1 Sales at 2.41 %", "3 paused, longest 12 min" ..."""
    figure = row.get("figure")
    name = row["name"]
    if not figure:
        return "no calls yet" if name not in ("pause", "callback") else "no agent events yet"
    if name == "did_burn":
        drop = figure["drop"]
        return f"{figure['did']} {abs(drop):.1f} points {'under' if drop >= 0 else 'over'} its baseline"
    if name == "abandon":
        return f"{figure['campaign'] or '(no campaign)'} at {figure['rate']:.2f} %"
    if name == "carrier":
        return f"{figure['route']} failing {figure['rate']:.1f} %"
    if name in ("caller_id", "voicemail"):
        if figure.get("rate") is None:
            return "nothing checked yet" if name == "caller_id" else "no calls yet"
        what = "international calls checked" if name == "caller_id" else "calls"
        count = figure.get("mismatched", figure.get("voicemail"))
        return f"{figure['rate']:.1f} % ({count} of the last {figure.get('checked', figure.get('calls'))} {what})"
    if name == "pause":
        longest = figure.get("longest_minutes")
        return f"{figure['paused']} paused" + (f", longest {longest:.0f} min" if longest is not None else "")
    if name == "callback":
        return f"{figure['contacts']} contact(s) out of dialing"
    return str(figure)


def threshold_text(row: dict[str, Any]) -> str:
    threshold = row.get("threshold")
    if threshold is None:
        return "every mismatch" if row["name"] == "caller_id" else "every detection"
    if isinstance(threshold, dict):
        return f"warn {threshold['notify_at']:g} %, act {threshold['act_at']:g} %"
    unit = row.get("unit") or ""
    if row["name"] == "did_burn":
        return f"{threshold:g} points under"
    if row["name"] == "callback":
        return f"{threshold} unanswered calls"
    return f"{threshold:g} {unit}".strip()


class AutomationControls:
    def __init__(self, service: Any) -> None:
        self.service = service

    async def report(self) -> dict[str, Any]:
        report = await automations_report(self.service)
        for row in report["automations"]:
            row["figure_text"] = figure_text(row)
            row["threshold_text"] = threshold_text(row)
        return report

    async def alerts(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = await self.service.reader.run(store.list_alerts, None, limit)
        for row in rows:
            row["title"] = TITLES.get(row["recipe"], row["recipe"])
        return rows

    async def alert(self, alert_id: str) -> dict[str, Any] | None:
        return await self.service.reader.run(store.get_alert, alert_id)

    async def acknowledge(self, alert_ids: list[str]) -> int:
        clock = self.service.clock
        return await self.service.writer.execute(lambda db: store.acknowledge(db, alert_ids, clock()))

    def on_alert(self, callback: Callable[[list[dict[str, Any]]], None]) -> None:
        """``callback(alerts)`` on the event loop for each batch of new alerts meant to be shown, when the
        desktop notifications are on (``[alerts] desktop``)."""
        def shown(alerts: list[dict[str, Any]]) -> None:
            if self.service.automations.settings.alerts.desktop:
                callback(alerts)

        self.service.automations.observers.append(shown)
