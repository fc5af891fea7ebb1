"""The README's "Payloads understood" names every event name each format's parser knows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connector.formats import dialercx, fields, twilio, unlimcall

README = Path(__file__).resolve().parents[2] / "README.md"


def section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("### Payloads understood")
    return text[start:text.index("\n## ", start)]


def named(text: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", text))


@pytest.mark.parametrize(
    "fmt, names",
    [
        ("unlimcall", sorted(unlimcall.EVENT_STATUS)),
        ("dialercx", sorted(dialercx.CALL_TYPES)),
        ("twilio", sorted(twilio.CALL_STATUS)),
        ("standard", sorted(word for words in fields.STATUS_WORDS.values() for word in words)),
        ("all", [prefix + "*" for prefix in fields.NON_CALL_PREFIXES]),
    ],
)
def test_readme_lists_each_formats_event_names(fmt, names):
    rows = [line for line in section().splitlines() if line.startswith("|") and (fmt == "all" or f"(`{fmt}`)" in line)]
    assert rows, f"no row for {fmt}"
    shown = named("\n".join(rows))
    # Standard Webhooks types are written with "_" ("call.no_answer"); the parser reads "-", "_" and "." alike.
    missing = [n for n in names if n not in shown and n.replace("-", "_") not in shown]
    assert missing == []
