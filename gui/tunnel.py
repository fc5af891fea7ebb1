"""The public HTTPS URL in Sources: the switch (remembered in config.toml), provider, ngrok domain and
authtoken, the tunnel's state in one sentence, "the URL changed" notice, and "Test from outside"."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from qasync import asyncSlot

from connector.config import ConfigError
from connector.tunnel.controls import TunnelControls, TunnelView
from connector.window_views import SecretStoreUnavailable
from gui.widgets import LEVEL_COLORS, hint

PROVIDER_LABELS = {"ngrok": "ngrok (free account; no program to install)",
                   "cloudflared": "Cloudflare Tunnel (the cloudflared program)"}
STATE_LEVELS = {"up": "ok", "connecting": "info", "error": "error", "off": "info"}


def _color(label: QLabel, level: str | None) -> None:
    label.setStyleSheet(f"color: {LEVEL_COLORS[level]};" if level else "color: #546e7a;")


class TunnelBox(QGroupBox):
    url_changed = Signal()  # the public URL changed: the webhook URLs shown need a refresh

    def __init__(self, controls: TunnelControls, current_source: Callable[[], str | None],
                 parent: QWidget | None = None) -> None:
        super().__init__("Public HTTPS URL (tunnel)", parent)
        self.controls = controls
        self.current_source = current_source
        self.switch = QCheckBox("Reachable from the internet: open a public HTTPS URL for the webhooks")
        self.provider = QComboBox()
        for name, label in PROVIDER_LABELS.items():
            self.provider.addItem(label, name)
        self.domain = QLineEdit()
        self.domain.setPlaceholderText("optional: your free static domain, e.g. name.ngrok-free.app")
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("ngrok authtoken (dashboard.ngrok.com → Your Authtoken)")
        self.save_token = QPushButton("Save authtoken")
        self.token_state = hint("")
        self.state = QLabel("")
        self.state.setWordWrap(True)
        self.state.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice = QLabel("")
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        _color(self.notice, "warn")
        self.notice.hide()
        self.test = QPushButton("Test from outside")
        self.test_result = QLabel("")
        self.test_result.setWordWrap(True)
        self.test_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        form.addRow("Provider", self.provider)
        form.addRow("Domain", self.domain)
        token_row = QHBoxLayout()
        token_row.addWidget(self.token, 1)
        token_row.addWidget(self.save_token)
        form.addRow("Authtoken", token_row)
        form.addRow("", self.token_state)
        self._form = form
        test_row = QHBoxLayout()
        test_row.addWidget(self.test)
        test_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.switch)
        layout.addLayout(form)
        layout.addWidget(self.state)
        layout.addWidget(self.notice)
        layout.addWidget(hint("Test from outside sends a signed test event (never a call, never in the CRM) to "
                              "the selected source's public URL and checks that it comes back in through the tunnel."))
        layout.addLayout(test_row)
        layout.addWidget(self.test_result)
        self._shown_url: str | None = None
        self.switch.toggled.connect(self.on_switch)
        self.provider.currentIndexChanged.connect(self._provider_changed)
        self.save_token.clicked.connect(self.on_save_token)
        self.test.clicked.connect(self.on_test)
        self.refresh()

    # -- rendering --------------------------------------------------------------------
    def refresh(self) -> TunnelView:
        view = self.controls.view()
        self.switch.blockSignals(True)
        self.switch.setChecked(view.enabled)
        self.switch.blockSignals(False)
        if view.provider:
            self.provider.setCurrentIndex(max(0, self.provider.findData(view.provider)))
        if not self.domain.hasFocus():
            self.domain.setText(view.domain)
        self._provider_changed()
        self._show_token_state(view)
        self.state.setText(view.headline)
        _color(self.state, STATE_LEVELS.get(view.state) if view.enabled else None)
        self.notice.setVisible(bool(view.notice))
        self.notice.setText(view.notice or "")
        self.test.setEnabled(bool(view.effective_url))
        if view.effective_url != self._shown_url:
            self._shown_url = view.effective_url
            self.url_changed.emit()
        return view

    def _provider_changed(self) -> None:
        ngrok = self.provider.currentData() == "ngrok"
        for widget in (self.domain, self.token, self.save_token, self.token_state):
            widget.setVisible(ngrok)
            label = self._form.labelForField(widget)
            if label is not None:
                label.setVisible(ngrok)

    def _show_token_state(self, view: TunnelView) -> None:
        if view.token_from_env:
            text = f"The authtoken comes from {view.token_env} (the environment wins over the keyring)."
        elif view.has_token:
            text = "An authtoken is saved (OS keyring). Paste a new one to replace it."
        else:
            text = ("No authtoken yet: sign up free at ngrok.com, copy your authtoken from the dashboard and save it "
                    f"here (or set {view.token_env}).")
        self.token_state.setText(text)

    # -- actions ------------------------------------------------------------------------
    @asyncSlot(bool)
    async def on_switch(self, checked: bool) -> None:
        self.switch.setEnabled(False)
        try:
            await self.controls.set_enabled(checked, provider=self.provider.currentData(),
                                            domain=self.domain.text() if self.provider.currentData() == "ngrok" else None)
        except ConfigError as exc:
            self.state.setText(str(exc))
            _color(self.state, "error")
            self.switch.blockSignals(True)
            self.switch.setChecked(not checked)
            self.switch.blockSignals(False)
            return
        finally:
            self.switch.setEnabled(True)
        self.refresh()

    def on_save_token(self) -> None:
        try:
            self.controls.save_authtoken(self.token.text())
        except (ValueError, SecretStoreUnavailable) as exc:
            self.token_state.setText(str(exc))
            _color(self.token_state, "error")
            return
        self.token.clear()
        _color(self.token_state, None)
        self.refresh()

    @asyncSlot()
    async def on_test(self) -> None:
        self.test.setEnabled(False)
        self.test_result.setText("Sending a signed test event to the public URL…")
        _color(self.test_result, None)
        try:
            result = await self.controls.test_from_outside(self.current_source())
        finally:
            self.test.setEnabled(True)
        self.test_result.setText(result.message)
        _color(self.test_result, "ok" if result.ok else "error")
