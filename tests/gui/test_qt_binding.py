"""The Qt binding must not drop references it does not own: PySide6 6.12.0 does in some setters, and the
window, which calls them on every refresh, then kills the interpreter ("deallocating None/True")."""

from __future__ import annotations

import gc
import sys

from PySide6.QtWidgets import QCheckBox, QLabel, QLineEdit, QPushButton


def test_setters_the_window_calls_keep_reference_counts(qapp):
    label, check, edit, button = QLabel("x"), QCheckBox(), QLineEdit(), QPushButton()
    calls = [lambda: label.setWordWrap(True), lambda: label.setText("y"), lambda: label.setVisible(False),
             lambda: check.setChecked(True), lambda: edit.setReadOnly(True), lambda: button.setEnabled(False),
             lambda: label.setStyleSheet("color: red")]
    for call in calls:
        call()  # first call: caches on the binding's side are filled
    gc.collect()
    before = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(200):
        for call in calls:
            call()
    gc.collect()
    after = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
    assert after == before, f"references to None/True/False went from {before} to {after}"
