"""Sources form rows of a Twilio source: fill gaps from Twilio's call log (reconcile, account SID) and
how its last run went.  Other kinds hide them."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import QCheckBox, QFormLayout, QLabel, QLineEdit

from connector.config import SourceConfig
from gui.widgets import fmt_time, hint


def last_run_text(state: dict | None) -> str:
    """``{"last_run", "last_ok", "last_error"}`` of /api/metrics ``reconcile.<source>`` in words."""
    if not state or not state.get("last_run"):
        return "Not run yet: it runs when callsync starts and then every reconcile_minutes."
    if state.get("last_error"):
        return f"Last run {fmt_time(state['last_run'])}: {state['last_error']}"
    return f"Last run {fmt_time(state['last_run'])}: up to date with Twilio's call log."


class ReconcileRows:
    def __init__(self, form: QFormLayout) -> None:
        self.form = form
        self.reconcile = QCheckBox("Fill gaps from Twilio's call log (calls missed while callsync was off)")
        self.account_sid = QLineEdit()
        self.account_sid.setPlaceholderText("AC… — your Twilio account SID (the API password is the secret above)")
        self.state = hint("")
        self.state.setWordWrap(True)
        form.addRow("Gap fill", self.reconcile)
        form.addRow("Account SID", self.account_sid)
        form.addRow("", self.state)
        self.reconcile.toggled.connect(lambda *_: self._refresh())
        self._kind = "hmac"

    def load(self, src: SourceConfig, state: dict | None = None) -> None:
        self._kind = src.kind
        self.reconcile.setChecked(src.reconcile)
        self.account_sid.setText(src.account_sid)
        self.state.setText(last_run_text(state) if src.reconcile else "")
        self._refresh()

    def apply(self, src: SourceConfig) -> SourceConfig:
        if src.kind != "twilio":
            return replace(src, reconcile=False, account_sid="", api_key_sid="")
        return replace(src, reconcile=self.reconcile.isChecked(), account_sid=self.account_sid.text().strip())

    def set_kind(self, kind: str) -> None:
        self._kind = kind
        self._refresh()

    def _refresh(self) -> None:
        twilio = self._kind == "twilio"
        self.form.setRowVisible(self.reconcile, twilio)
        self.form.setRowVisible(self.account_sid, twilio and self.reconcile.isChecked())
        self.form.setRowVisible(self.state, twilio and bool(self.state.text()))

    @property
    def label(self) -> QLabel | None:
        widget = self.form.labelForField(self.reconcile)
        return widget if isinstance(widget, QLabel) else None
