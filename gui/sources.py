"""Sources: add / edit / remove senders, their secret, webhook URLs, a signed test event and the
requests each source refused, by reason."""

from __future__ import annotations

import html
from dataclasses import replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from qasync import asyncSlot

from connector.config import FORMATS, PAYLOAD_KINDS, SIGNATURE_ENCODINGS, ConfigError, SourceConfig
from connector.facade import Facade, SecretStoreUnavailable, SourceView
from connector.health import rejection_lines
from gui.source_auth import KIND_LABELS, SourceDetails
from gui.source_reconcile import ReconcileRows
from gui.tunnel import TunnelBox
from gui.widgets import LEVEL_COLORS, Confirm, CopyField, hint

NO_SECRET = "No secret needed: this kind is checked with a public key (not a secret)."


def set_result(label: QLabel, ok: bool | None, text: str) -> None:
    color = {True: LEVEL_COLORS["ok"], False: LEVEL_COLORS["error"], None: "#546e7a"}[ok]
    label.setStyleSheet(f"color: {color};")
    label.setText(text)


class SourcesView(QWidget):
    show_event = Signal(int)
    changed = Signal()

    def __init__(self, facade: Facade, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self.list = QListWidget()
        self.list.setMinimumWidth(170)
        self.add = QPushButton("Add source")

        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. dialer — letters, digits, - and _")
        self.kind = QComboBox()
        for kind, label in KIND_LABELS.items():
            self.kind.addItem(label, kind)
        self.signature_header = QLineEdit()
        self.encoding = QComboBox()
        for encoding in SIGNATURE_ENCODINGS:
            self.encoding.addItem(encoding, encoding)
        self.timestamp_header = QLineEdit()
        self.timestamp_header.setPlaceholderText("none: the body alone is signed")
        self.tolerance = QSpinBox()
        self.tolerance.setRange(1, 86_400)
        self.tolerance.setSuffix(" s")
        self.format = QComboBox()
        for fmt in FORMATS:
            self.format.addItem("detect automatically" if fmt == "auto" else fmt, fmt)
        self.secret = QLineEdit()
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret_state = hint("")
        self.save = QPushButton("Save source")
        self.save.setDefault(True)
        self.remove = QPushButton("Remove")
        self.confirm = Confirm()
        self.result = QLabel("")
        self.result.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Kind", self.kind)
        form.addRow("Signature header", self.signature_header)
        form.addRow("Encoding", self.encoding)
        form.addRow("Timestamp header", self.timestamp_header)
        form.addRow("Tolerance", self.tolerance)
        form.addRow("Payload format", self.format)
        self.details = SourceDetails(form)  # signature of payload-only kinds, public keys, auth, allowlist, mapping
        self.gap_fill = ReconcileRows(form)  # twilio: fill gaps from the call log
        form.addRow("Secret", self.secret)
        form.addRow("", self.secret_state)
        self._hmac_rows = (self.signature_header, self.encoding, self.timestamp_header)
        self._form = form
        buttons = QHBoxLayout()
        buttons.addWidget(self.save)
        buttons.addWidget(self.remove)
        buttons.addStretch(1)
        source_box = QGroupBox("Source")
        source_layout = QVBoxLayout(source_box)
        source_layout.addLayout(form)
        source_layout.addLayout(buttons)
        source_layout.addWidget(self.confirm)
        source_layout.addWidget(self.result)

        self.local_url = CopyField()
        self.public_base = QLineEdit()
        self.public_base.setPlaceholderText("optional: your own proxy's https URL (else the tunnel's)")
        self.save_public = QPushButton("Save public URL")
        public_row = QHBoxLayout()
        public_row.addWidget(self.public_base, 1)
        public_row.addWidget(self.save_public)
        self.public_url = CopyField()
        url_box = QGroupBox("Webhook URL")
        url_form = QFormLayout(url_box)
        url_form.addRow("On this machine", self.local_url)
        url_form.addRow("Public base URL", public_row)
        url_form.addRow("Give the sender", self.public_url)
        self.url_hint = hint("")
        url_form.addRow("", self.url_hint)

        self.send_test = QPushButton("Send test event")
        self.open_event = QPushButton("Show in Events")
        self.open_event.hide()
        self.test_result = QLabel("")
        self.test_result.setWordWrap(True)
        self.test_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        test_box = QGroupBox("Test")
        test_layout = QVBoxLayout(test_box)
        test_layout.addWidget(hint("Posts a correctly signed 'call started' sample (fictional number, marked as "
                                   "a test: never a call, never written to the CRM) to this machine's receiver, "
                                   "exactly as the sender would."))
        test_row = QHBoxLayout()
        test_row.addWidget(self.send_test)
        test_row.addWidget(self.open_event)
        test_row.addStretch(1)
        test_layout.addLayout(test_row)
        test_layout.addWidget(self.test_result)

        self.rejected = QLabel("")
        self.rejected.setWordWrap(True)
        self.rejected.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        rejected_box = QGroupBox("Rejected requests (last 24 hours)")
        rejected_layout = QVBoxLayout(rejected_box)
        rejected_layout.addWidget(self.rejected)
        self._rejections: dict[str, dict[str, int]] | None = None  # None until the first snapshot

        left = QVBoxLayout()
        left.addWidget(self.list, 1)
        left.addWidget(self.add)
        column = QWidget()
        right = QVBoxLayout(column)
        right.setContentsMargins(0, 0, 0, 0)
        right.addWidget(source_box)
        self.tunnel = TunnelBox(facade.tunnel, lambda: self._editing)
        self.tunnel.url_changed.connect(lambda: self._editing and self.reload(select=self._editing))
        right.addWidget(self.tunnel)
        right.addWidget(url_box)
        right.addWidget(test_box)
        right.addWidget(rejected_box)
        right.addStretch(1)
        scroll = QScrollArea()  # a short window scrolls the form instead of squeezing its rows together
        scroll.setWidget(column)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        layout = QHBoxLayout(self)
        layout.addLayout(left)
        layout.addWidget(scroll, 1)

        self._editing: str | None = None
        self._last_event: int | None = None
        self.list.currentItemChanged.connect(self._picked)
        self.add.clicked.connect(self.new_source)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.details.signature.currentIndexChanged.connect(self._kind_changed)
        self.details.auth.currentIndexChanged.connect(self._kind_changed)
        self.details.jwt.toggled.connect(self._kind_changed)
        self.details.jwt_public_key.textChanged.connect(self._kind_changed)
        self.save.clicked.connect(self.on_save)
        self.remove.clicked.connect(self.ask_remove)
        self.save_public.clicked.connect(self.on_save_public)
        self.send_test.clicked.connect(self.on_send_test)
        self.open_event.clicked.connect(lambda: self._last_event and self.show_event.emit(self._last_event))
        self.reload()

    # -- list ---------------------------------------------------------------------
    def reload(self, select: str | None = None) -> None:
        views = self.facade.sources()
        select = select or self._editing or (views[0].config.name if views else None)
        self.list.blockSignals(True)
        self.list.clear()
        for view in views:
            item = QListWidgetItem(view.config.name)
            item.setData(Qt.ItemDataRole.UserRole, view.config.name)
            item.setToolTip(KIND_LABELS.get(view.config.kind, view.config.kind))
            self.list.addItem(item)
            if view.config.name == select:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self.public_base.setText(self.facade.config.server.public_url)
        self._apply_keyring_state()
        current = next((v for v in views if v.config.name == select), None)
        if current:
            self._show(current)
        else:
            self.new_source()

    def _apply_keyring_state(self) -> None:
        status = self.facade.keyring_status()
        self.secret.setEnabled(status.usable)
        if not status.usable:
            self.secret.setPlaceholderText("No OS keyring — set the environment variable shown below")
            self.secret.setToolTip(f"{status.message}\n{status.hint}")

    def _picked(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None = None) -> None:
        if item is None:
            return
        name = item.data(Qt.ItemDataRole.UserRole)
        view = next((v for v in self.facade.sources() if v.config.name == name), None)
        if view:
            self._show(view)

    def _show(self, view: SourceView) -> None:
        src = view.config
        if src.name != self._editing:
            self._clear_test_result()  # another source: the last answer was not about this one
        self._editing = src.name
        self.name.setText(src.name)
        self.name.setReadOnly(True)
        if self.kind.findData(src.kind) < 0:  # a kind set in config.toml that the form has no label for
            self.kind.addItem(src.kind, src.kind)
        self.kind.setCurrentIndex(self.kind.findData(src.kind))
        self.signature_header.setText(src.signature_header)
        self.encoding.setCurrentIndex(self.encoding.findData(src.signature_encoding))
        self.timestamp_header.setText(src.timestamp_header)
        self.tolerance.setValue(src.tolerance_seconds)
        self.format.setCurrentIndex(self.format.findData(src.format))
        self.details.load(src)
        self.gap_fill.load(src, self.facade.reconcile_state(src.name))
        self.secret.clear()
        self._show_secret_state(view)
        self.remove.setEnabled(True)
        self.send_test.setEnabled(True)
        self.local_url.set_text(view.local_url)
        self.public_url.set_text(view.public_url, "switch the public HTTPS URL on above")
        self.url_hint.setText(self._url_hint(src))
        self.result.clear()
        self._show_rejected()
        self._kind_changed()

    def _show_secret_state(self, view: SourceView) -> None:
        usable = self.facade.keyring_status().usable
        restart = "in the environment callsync starts with, then restart callsync"
        if view.secret_from_env:
            text = (f"The secret comes from {view.secret_env} (the environment wins over the keyring): "
                    f"to replace it, change {view.secret_env} {restart}.")
        elif view.has_secret:
            text = "A secret is set (OS keyring). Type a new one to replace it."
        elif usable:
            text = "No secret yet: every request to this source is refused (401) until you add one."
        else:
            text = f"No secret: every request is refused (401) until you set {view.secret_env} {restart}."
        self.secret_state.setText(text)

    def _clear_test_result(self) -> None:
        self.test_result.clear()
        self.open_event.hide()
        self._last_event = None

    # -- rejected requests ----------------------------------------------------------
    def show_rejections(self, by_source: dict[str, dict[str, int]]) -> None:
        """Rejected requests per source and reason (from the dashboard's snapshot)."""
        if by_source != self._rejections:
            self._rejections = by_source
            self._show_rejected()

    def _show_rejected(self) -> None:
        name = self._editing
        lines = rejection_lines(self._rejections.get(name, {})) if name and self._rejections else []
        if self._rejections is None:
            text = "Counting…"
        elif not name:
            text = "Save the source to see the requests it refuses."
        elif not lines:
            text = "None: every request to this source was accepted."
        else:
            text = "<br>".join(f"<b>{n:,}</b> — {html.escape(what, quote=False)}" for n, what in lines)
        set_result(self.rejected, False if lines else None, text)

    def _url_hint(self, src: SourceConfig) -> str:
        if src.kind == "twilio":
            return "Twilio signs the public URL: it must be exactly the URL configured at Twilio."
        return "Give the sender the public URL: it reaches this machine through the tunnel."

    def new_source(self) -> None:
        self._editing = None
        self.list.blockSignals(True)
        self.list.setCurrentItem(None)
        self.list.clearSelection()
        self.list.blockSignals(False)
        default = SourceConfig("dialer")
        self.name.setReadOnly(False)
        self.name.setText("" if "dialer" in self.facade.config.sources else "dialer")
        self.kind.setCurrentIndex(self.kind.findData(default.kind))
        self.signature_header.setText(default.signature_header)
        self.encoding.setCurrentIndex(self.encoding.findData(default.signature_encoding))
        self.timestamp_header.setText(default.timestamp_header)
        self.tolerance.setValue(default.tolerance_seconds)
        self.format.setCurrentIndex(self.format.findData("auto"))
        self.details.load(default)
        self.gap_fill.load(default)
        self.secret.clear()
        if self.facade.keyring_status().usable:
            self.secret_state.setText("The secret the sender signs with; it is kept in the OS keyring, "
                                      "never in a file.")
        else:
            self.secret_state.setText("No OS keyring: after saving, set the source's CALLSYNC_SECRET_<NAME> variable "
                                      "in the environment callsync starts with, then restart callsync.")
        self.remove.setEnabled(False)
        self.send_test.setEnabled(False)
        self.local_url.set_text("", "save the source first")
        self.public_url.set_text("", "save the source first")
        self.url_hint.clear()
        self.result.clear()
        self._clear_test_result()
        self._show_rejected()
        self._kind_changed()

    def _kind_changed(self) -> None:
        kind = self.kind.currentData()
        self.details.set_kind(kind)
        self.gap_fill.set_kind(kind)
        is_hmac = self.details.signature_is_hmac()
        for widget in self._hmac_rows:
            widget.setEnabled(is_hmac)
            label = self._form.labelForField(widget)
            if label is not None:
                label.setEnabled(is_hmac)
        self._form.setRowVisible(self.format, kind not in PAYLOAD_KINDS)
        needs_secret = self.details.needs_source_secret()
        self._form.setRowVisible(self.secret, needs_secret)
        if not needs_secret:
            self.secret_state.setText(NO_SECRET)
        elif self.secret_state.text() == NO_SECRET:
            self.secret_state.setText("The secret the sender signs with (or its credential): kept in the OS "
                                      "keyring, never in a file.")

    # -- actions ------------------------------------------------------------------
    def form_source(self) -> SourceConfig:
        """The form's values over the source being edited: settings the form does not show are kept."""
        editing = self.facade.config.sources.get(self._editing or "")
        return self.gap_fill.apply(self.details.apply(replace(
            editing or SourceConfig(""),
            name=self.name.text().strip(),
            kind=self.kind.currentData(),
            signature_header=self.signature_header.text().strip() or "X-Webhook-Signature",
            signature_encoding=self.encoding.currentData(),
            timestamp_header=self.timestamp_header.text().strip(),
            tolerance_seconds=self.tolerance.value(),
            format=self.format.currentData() if self.kind.currentData() not in PAYLOAD_KINDS else "auto",
        )))

    def on_save(self) -> None:
        source = self.form_source()
        if not source.name:
            set_result(self.result, False, "Give the source a name first.")
            return
        if self._editing is None and source.name in self.facade.config.sources:
            set_result(self.result, False, f"A source named {source.name!r} exists already.")
            return
        try:
            view = self.facade.save_source(source, self.secret.text() or None,
                                           auth_secret=self.details.auth_credential())
        except (ConfigError, SecretStoreUnavailable) as exc:
            set_result(self.result, False, str(exc))
            return
        self.reload(select=source.name)
        set_result(self.result, True, f"Saved {source.name!r}: live now at {view.local_url}"
                   + ("" if view.has_secret else " — it still needs a secret."))
        self.changed.emit()

    def ask_remove(self) -> None:
        name = self._editing
        if name:
            self.confirm.ask(f"Remove {name!r}? Its webhook stops working (404) and its secret is deleted.",
                             "Remove", lambda: self.on_remove(name))

    def on_remove(self, name: str) -> None:
        try:
            self.facade.remove_source(name)
        except ConfigError as exc:
            set_result(self.result, False, str(exc))
            return
        self._editing = None
        self.reload()
        set_result(self.result, True, f"Removed {name!r}.")
        self.changed.emit()

    def on_save_public(self) -> None:
        try:
            url = self.facade.set_public_url(self.public_base.text())
        except ConfigError as exc:
            set_result(self.result, False, str(exc))
            return
        self.reload()
        set_result(self.result, True, f"Public URL set to {url}." if url else "Public URL cleared.")

    @asyncSlot()
    async def on_send_test(self) -> None:
        name = self._editing
        if not name:
            return
        self.send_test.setEnabled(False)
        self.open_event.hide()
        set_result(self.test_result, None, f"Sending a signed test event to /hooks/{name}…")
        try:
            result = await self.facade.send_test_event(name)
        finally:
            self.send_test.setEnabled(True)
        if self._editing != name:
            return  # another source is shown now
        set_result(self.test_result, result.ok, result.message)
        self._last_event = result.event_id
        self.open_event.setVisible(result.event_id is not None)
