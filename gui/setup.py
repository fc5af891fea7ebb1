"""First run: add the first source and the CRM token in one short screen (or skip)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
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

from connector.config import ConfigError, SourceConfig
from connector.facade import Facade, SecretStoreUnavailable
from gui.sources import KIND_LABELS, set_result
from gui.widgets import heading, hint


class SetupPage(QWidget):
    done = Signal()

    def __init__(self, facade: Facade, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self.source_name = QLineEdit("dialer")
        self.kind = QComboBox()
        for kind, label in KIND_LABELS.items():
            self.kind.addItem(label, kind)
        self.secret = QLineEdit()
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret.setPlaceholderText("your dialer's webhook signing secret")
        self.location = QLineEdit()
        self.location.setPlaceholderText("GoHighLevel location (sub-account) id")
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("private integration token (pit-…)")
        self.finish = QPushButton("Save and open callsync")
        self.finish.setDefault(True)
        self.skip = QPushButton("Skip for now")
        self.result = QLabel("")
        self.result.setWordWrap(True)

        source_box = QGroupBox("1. Your dialer")
        source_form = QFormLayout(source_box)
        source_form.addRow("Source name", self.source_name)
        source_form.addRow("Signature kind", self.kind)
        source_form.addRow("Secret", self.secret)
        crm_box = QGroupBox("2. GoHighLevel")
        crm_form = QFormLayout(crm_box)
        crm_form.addRow("Location id", self.location)
        crm_form.addRow("Token", self.token)

        keyring = facade.keyring_status()
        for field in (self.secret, self.token):
            field.setEnabled(keyring.usable)
            if not keyring.usable:
                field.setPlaceholderText("no OS keyring: use the environment (see above)")

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.skip)
        buttons.addWidget(self.finish)
        column = QVBoxLayout()
        column.addWidget(heading("Welcome to callsync"))
        column.addWidget(hint("callsync receives signed call events from your dialer, keeps them on this machine "
                              "and writes each call's outcome to GoHighLevel. Two things to set up — both can be "
                              "changed later in Sources and CRM."))
        column.addWidget(source_box)
        column.addWidget(crm_box)
        column.addLayout(buttons)
        column.addWidget(self.result)
        holder = QWidget()
        holder.setLayout(column)
        holder.setMaximumWidth(640)
        layout = QHBoxLayout(self)
        layout.addWidget(holder, 0, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.finish.clicked.connect(self.on_finish)
        self.skip.clicked.connect(self.done)

    def on_finish(self) -> None:
        name = self.source_name.text().strip()
        try:
            if name:
                self.facade.save_source(SourceConfig(name, kind=self.kind.currentData()),
                                        self.secret.text() or None)
            if self.location.text().strip():
                self.facade.save_crm(self.location.text())
            if self.token.text().strip():
                self.facade.set_token(self.token.text())
        except (ConfigError, SecretStoreUnavailable, ValueError) as exc:
            set_result(self.result, False, str(exc))
            return
        self.done.emit()
