"""CRM: GoHighLevel location, token, connection test and the outcome → CRM rules."""

from __future__ import annotations

import re
from dataclasses import replace

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from qasync import asyncSlot

from connector.config import ConfigError
from connector.facade import Facade, SecretStoreUnavailable
from connector.model import OUTCOMES
from connector.sync.settings import CALLBACK_ACTIONS, DEFAULT_RULES, Rule
from gui.sources import set_result
from gui.widgets import OUTCOME_LABELS, Banner, hint

RULE_COLUMNS = ("When outcome is", "and disposition is", "and campaign is", "Add tags", "Remove tags", "Note",
                "Task title", "Callback counter")
OUTCOME, DISPOSITION, CAMPAIGN, ADD_TAGS, REMOVE_TAGS, NOTE, TASK, CALLBACK = range(len(RULE_COLUMNS))
ANY_VALUE = "any"  # placeholder of an empty condition
ANY = "any outcome"


def split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class AnyWhenEmpty(QStyledItemDelegate):
    """An empty condition cell reads "any" (in grey): it matches every value."""

    def initStyleOption(self, option: QStyleOptionViewItem, index: QModelIndex) -> None:  # noqa: N802 - Qt API
        super().initStyleOption(option, index)
        if not option.text:
            option.text = ANY_VALUE
            option.palette.setColor(QPalette.ColorRole.Text, QColor("#90a4ae"))


class RulesTable(QTableWidget):
    """One row per rule: its conditions (outcome, disposition, campaign) and what it writes; the task's due
    time, which the table does not show, is kept."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(RULE_COLUMNS), parent)
        self.setHorizontalHeaderLabels(RULE_COLUMNS)
        self.verticalHeader().hide()
        header = self.horizontalHeader()
        fit, stretch = QHeaderView.ResizeMode.ResizeToContents, QHeaderView.ResizeMode.Stretch
        for column, mode in enumerate((fit, stretch, stretch, stretch, stretch, fit, stretch, fit)):
            header.setSectionResizeMode(column, mode)
        self._rules: list[Rule] = []
        self._any = AnyWhenEmpty(self)
        for column in (DISPOSITION, CAMPAIGN):
            self.setItemDelegateForColumn(column, self._any)

    def set_rules(self, rules: list[Rule]) -> None:
        self.setRowCount(0)
        self._rules = []
        for rule in rules:
            self.add_rule(rule)

    def add_rule(self, rule: Rule | None = None) -> None:
        rule = replace(rule) if rule else Rule(outcome=["no_answer"], callback="increment")
        row = self.rowCount()
        self.insertRow(row)
        self._rules.append(rule)
        outcome = QComboBox()
        outcome.addItem(ANY, [])
        for name in OUTCOMES:
            outcome.addItem(OUTCOME_LABELS.get(name, name), [name])
        if len(rule.outcome) > 1:
            outcome.addItem(", ".join(rule.outcome), list(rule.outcome))
        outcome.setCurrentIndex(max(0, outcome.findData(list(rule.outcome))))
        self.setCellWidget(row, OUTCOME, outcome)
        for column, values in ((DISPOSITION, rule.disposition), (CAMPAIGN, rule.campaign)):
            item = QTableWidgetItem(", ".join(values))
            item.setToolTip("Comma-separated; empty matches any (case does not matter).")
            self.setItem(row, column, item)
        self.setItem(row, ADD_TAGS, QTableWidgetItem(", ".join(rule.add_tags)))
        self.setItem(row, REMOVE_TAGS, QTableWidgetItem(", ".join(rule.remove_tags)))
        note = QCheckBox()
        note.setChecked(rule.note)
        holder = QWidget()
        holder_layout = QHBoxLayout(holder)
        holder_layout.setContentsMargins(0, 0, 0, 0)
        holder_layout.setAlignment(Qt.AlignmentFlag.AlignCenter)
        holder_layout.addWidget(note)
        self.setCellWidget(row, NOTE, holder)
        self.setItem(row, TASK, QTableWidgetItem(rule.task))
        callback = QComboBox()
        for action in CALLBACK_ACTIONS:
            callback.addItem(action, action)
        callback.setCurrentIndex(callback.findData(rule.callback))
        self.setCellWidget(row, CALLBACK, callback)

    def remove_selected(self) -> None:
        for row in sorted({i.row() for i in self.selectedIndexes()} | {self.currentRow()}, reverse=True):
            if 0 <= row < self.rowCount():
                self.removeRow(row)
                del self._rules[row]

    def text(self, row: int, column: int) -> str:
        item = self.item(row, column)
        return item.text() if item else ""

    def rules(self) -> list[Rule]:
        out = []
        for row, kept in enumerate(self._rules):
            note = self.cellWidget(row, NOTE).findChild(QCheckBox)
            out.append(replace(
                kept,
                outcome=list(self.cellWidget(row, OUTCOME).currentData()),
                disposition=split_list(self.text(row, DISPOSITION)),
                campaign=split_list(self.text(row, CAMPAIGN)),
                add_tags=split_list(self.text(row, ADD_TAGS)),
                remove_tags=split_list(self.text(row, REMOVE_TAGS)),
                note=bool(note and note.isChecked()),
                task=self.text(row, TASK).strip(),
                callback=self.cellWidget(row, CALLBACK).currentData(),
            ))
        return out


class CrmView(QWidget):
    changed = Signal()

    def __init__(self, facade: Facade, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self.location = QLineEdit()
        self.location.setPlaceholderText("GoHighLevel sub-account (location) id")
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("Private integration token (pit-…)")
        self.save_token = QPushButton("Save token")
        self.token_state = hint("")
        self.token_banner = Banner()  # the token was rejected: how to replace it
        self.token_banner.hide()
        self.shown_auth_error: str | None = None
        self.test = QPushButton("Test connection")
        self.verdict = QLabel("")
        self.verdict.setWordWrap(True)
        self.verdict.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        token_row = QHBoxLayout()
        token_row.addWidget(self.token, 1)
        token_row.addWidget(self.save_token)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test)
        test_row.addWidget(self.verdict, 1)
        account = QGroupBox("GoHighLevel")
        account_form = QFormLayout(account)
        account_form.addRow("Location id", self.location)
        account_form.addRow("Token", token_row)
        account_form.addRow("", self.token_state)
        account_form.addRow("", test_row)

        self.threshold = QSpinBox()
        self.threshold.setRange(1, 99)
        self.threshold.setSuffix(" unanswered calls")
        self.exhausted_tag = QLineEdit()
        self.active_tag = QLineEdit()
        callbacks = QGroupBox("Callbacks")
        callbacks_form = QFormLayout(callbacks)
        callbacks_form.addRow("Give up after", self.threshold)
        callbacks_form.addRow("Then add tag", self.exhausted_tag)
        callbacks_form.addRow("and remove tag", self.active_tag)

        self.rules = RulesTable()
        self.rules_state = hint("")
        self.add_rule = QPushButton("Add rule")
        self.remove_rule = QPushButton("Remove rule")
        self.defaults = QPushButton("Reset to defaults")
        rule_buttons = QHBoxLayout()
        rule_buttons.addWidget(self.add_rule)
        rule_buttons.addWidget(self.remove_rule)
        rule_buttons.addWidget(self.defaults)
        rule_buttons.addStretch(1)
        rules_box = QGroupBox("Rules: what each call outcome writes to the contact")
        rules_layout = QVBoxLayout(rules_box)
        rules_layout.addWidget(self.rules_state)
        rules_layout.addWidget(self.rules, 1)
        rules_layout.addLayout(rule_buttons)

        self.save = QPushButton("Save CRM settings")
        self.save.setDefault(True)
        self.result = QLabel("")
        self.result.setWordWrap(True)
        save_row = QHBoxLayout()
        save_row.addWidget(self.save)
        save_row.addWidget(self.result, 1)

        top = QHBoxLayout()
        top.addWidget(account, 3)
        top.addWidget(callbacks, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.token_banner)
        layout.addLayout(top)
        layout.addWidget(rules_box, 1)
        layout.addLayout(save_row)

        self.save_token.clicked.connect(self.on_save_token)
        self.test.clicked.connect(self.on_test)
        self.add_rule.clicked.connect(lambda: self.rules.add_rule())
        self.remove_rule.clicked.connect(self.rules.remove_selected)
        self.defaults.clicked.connect(lambda: self.rules.set_rules(list(DEFAULT_RULES)))
        self.save.clicked.connect(self.on_save)
        self.reload()

    def reload(self) -> None:
        view = self.facade.crm_settings()
        s = view.settings
        self.location.setText(s.location_id)
        self.threshold.setValue(s.callback_threshold)
        self.exhausted_tag.setText(s.callback_exhausted_tag)
        self.active_tag.setText(s.active_dialing_tag)
        self.rules.set_rules(view.rules)
        self._defaults_shown = list(view.rules) if view.rules_are_defaults else None
        self.rules_state.setText(
            "First matching rule wins. " + ("These are the built-in defaults; save to keep your own version."
                                            if view.rules_are_defaults else "The built-in defaults apply after "
                                                                            "your rules.")
        )
        self.show_token_state()

    def show_token_state(self) -> None:
        view = self.facade.crm_settings()
        keyring = self.facade.keyring_status()
        # A token from the environment wins over the keyring: typing one here would change nothing.
        typed = keyring.usable and not view.token_from_env
        self.token.setEnabled(typed)
        self.save_token.setEnabled(typed)
        env = view.token_env
        restart = f"set {env} in the environment callsync starts with, then restart callsync"
        if not keyring.usable:
            self.token.setPlaceholderText(f"No OS keyring — set {env} instead")
            self.token.setToolTip(keyring.message)
        elif view.token_from_env:
            self.token.setPlaceholderText(f"Read from {env}")
        if view.token_from_env:
            self.token_state.setText(f"The token comes from {env}. To replace it, {restart}.")
        elif view.has_token:
            self.token_state.setText("A token is set (OS keyring). Paste a new one to replace it.")
        elif keyring.usable:
            self.token_state.setText("No token yet: nothing is written to the CRM until you save one.")
        else:
            self.token_state.setText(f"No token: nothing is written to the CRM until you {restart}.")
        self.shown_auth_error = view.auth_error
        self.token_banner.setVisible(bool(view.auth_error))
        if view.auth_error:
            status = re.search(r"HTTP \d+", view.auth_error)
            how = (f"To replace it, {restart} (the environment wins over the keyring)." if view.token_from_env
                   else f"This computer has no OS keyring: {restart}." if not keyring.usable
                   else "Paste a new one below and click “Save token”.")
            self.token_banner.set_message(
                "error", f"GoHighLevel rejected the token{f' ({status.group()})' if status else ''}. Nothing is "
                "written to the CRM until it is replaced. Create a new Private Integration token in GoHighLevel "
                f"(Settings → Private Integrations, with the contacts scopes). {how}")

    def on_save_token(self) -> None:
        try:
            self.facade.set_token(self.token.text())
        except (ValueError, SecretStoreUnavailable) as exc:
            set_result(self.result, False, str(exc))
            return
        self.token.clear()
        self.show_token_state()  # keeps what is typed in the other fields
        set_result(self.result, True, "Token saved in the OS keyring. Use “Test connection” to check it.")
        self.changed.emit()

    @asyncSlot()
    async def on_test(self) -> None:
        if self.location.text().strip() != self.facade.crm_settings().settings.location_id:
            self.on_save()  # test what is on screen
        self.test.setEnabled(False)
        set_result(self.verdict, None, "Asking GoHighLevel…")
        try:
            result = await self.facade.test_crm()
        finally:
            self.test.setEnabled(True)
        set_result(self.verdict, bool(result.get("ok")), result.get("verdict", ""))

    def on_save(self) -> None:
        try:
            self.facade.save_crm(
                self.location.text(),
                callback_threshold=self.threshold.value(),
                callback_exhausted_tag=self.exhausted_tag.text(),
                active_dialing_tag=self.active_tag.text(),
            )
            rules = self.rules.rules()
            if rules != self._defaults_shown:  # untouched defaults stay out of the file
                self.facade.save_rules(rules)
        except ConfigError as exc:
            set_result(self.result, False, str(exc))
            return
        self.reload()
        set_result(self.result, True, "Saved to config.toml and applied.")
        self.changed.emit()
