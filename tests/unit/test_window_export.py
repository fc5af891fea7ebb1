"""What a tab's search and filters mean to an export, in column matches and in words (pure tables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.store.events import phone_variants
from connector.window_export import ExportScope, count_text, scope_for, scope_text, with_format

PHONE_FORMS = phone_variants("(202) 555-0302")  # the forms the tabs' own phone search looks for
assert {"+12025550302", "2025550302"} <= set(PHONE_FORMS)


@pytest.mark.parametrize(("kind", "search", "search_as", "filters", "match", "applied", "not_applied"), [
    ("events", "", None, {}, {}, [], []),
    ("events", "", None, {"source": "dialer", "event_type": None, "outcome": "connected"},
     {"source": ["dialer"], "outcome": ["connected"]}, ["source dialer", "outcome connected"], []),
    ("events", "(202) 555-0302", "phone", {"event_type": "call.completed"},
     {"phone": PHONE_FORMS, "event_type": ["call.completed"]},
     ["phone number (202) 555-0302", "type call.completed"], []),
    # A long numeric call id the tab read as a call id (its phone search found nothing).
    ("events", "4155550100123", "call_id", {}, {"call_id": ["4155550100123"]}, ["call id 4155550100123"], []),
    # Not known how the tab read it: guessed like the tab guesses.
    ("events", "abc-123", None, {}, {"call_id": ["abc-123"]}, ["call id abc-123"], []),
    ("calls", "", None, {}, {"test": [0]}, [], []),
    ("calls", " (202) 555-0302 ", "phone", {}, {"test": [0], "phone": PHONE_FORMS},
     ["phone number (202) 555-0302"], []),
    # A filter export cannot apply is said, not silently dropped.
    ("calls", "", None, {"agent": "maria"}, {"test": [0]}, [], ["agent maria"]),
])
def test_scope_for(kind, search, search_as, filters, match, applied, not_applied):
    scope = scope_for(kind, search, search_as, filters)
    assert scope == ExportScope(match, applied, not_applied)


@pytest.mark.parametrize(("kind", "scope", "text"), [
    ("events", ExportScope(), "All events in the time range."),
    ("calls", ExportScope({"test": [0]}), "All calls in the time range."),
    ("events", ExportScope({"source": ["a"]}, ["source a"]), "Only events of the tab's search and filters: source a."),
    ("calls", ExportScope({}, [], ["agent maria"]),
     "The export holds every call in the time range: agent maria cannot be applied to an export."),
])
def test_scope_text(kind, scope, text):
    assert scope_text(kind, scope) == text


@pytest.mark.parametrize(("path", "fmt", "expected"), [
    ("out.csv", "jsonl", "out.jsonl"),
    ("out.JSONL", "csv", "out.csv"),
    ("out.csv", "csv", "out.csv"),
    ("report", "csv", "report.csv"),
    ("report.2026", "jsonl", "report.2026.jsonl"),
])
def test_with_format(path, fmt, expected):
    assert with_format(Path(path), fmt) == Path(expected)


@pytest.mark.parametrize(("kind", "n", "text"), [
    ("calls", 1, "1 call"), ("calls", 1234, "1,234 calls"), ("events", 0, "0 events"), ("events", 1, "1 event"),
])
def test_count_text(kind, n, text):
    assert count_text(kind, n) == text
