"""The request path's shortcuts give exactly what the plain code gives: header redaction, the alias lookup
of sender fields, ISO times."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from connector.formats import fields
from connector.redact import REDACTED, header_redactor


@pytest.mark.parametrize("headers, stored", [
    ({"Content-Type": "application/json", "X-Webhook-Signature": "abc"},
     {"Content-Type": "application/json", "X-Webhook-Signature": REDACTED}),
    ({"authorization": "Bearer t", "X-Api-Key": "k", "Cookie": "c", "X-Custom-Sig": "s"},
     {"authorization": REDACTED, "X-Api-Key": REDACTED, "Cookie": REDACTED, "X-Custom-Sig": REDACTED}),
    ({"X-Note": "caf\u00e9", "X-Odd": "a\udc80b"}, {"X-Note": "caf\u00e9", "X-Odd": "a\\udc80b"}),  # UTF-8 kept, a lone surrogate escaped
    ({"X-\udcff": "v"}, {"X-\\udcff": "v"}),
    ({}, {}),
])
def test_headers_are_stored_with_secrets_redacted_and_unstorable_text_escaped(headers, stored):
    redact = header_redactor("X-Custom-Sig", "x-webhook-signature", "")  # a source's own signature header
    assert redact(headers) == stored
    assert redact(CIMultiDict(headers)) == stored


def reference_call_values(data: dict) -> dict:
    """call_values as it read the sender fields before the one-pass lookup: pick() over each alias list."""
    values = {}
    for name, names in fields.ALIASES.items():
        raw = fields.pick(data, names)
        values[name] = fields._COERCE.get(name, fields.text)(raw)
    return values


ALIAS_KEYS = sorted({a for names in fields.ALIASES.values() for a in names} | {"unrelated", "other"})
VALUES = st.one_of(st.none(), st.just(""), st.text(max_size=6), st.integers(-5, 10_000), st.floats(allow_nan=False),
                   st.sampled_from(["2026-06-04T09:14:22Z", "inbound", "486 Busy", "12:30", "USD", "https://x.io/t"]))


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(st.sampled_from(ALIAS_KEYS), VALUES, max_size=14))
def test_sender_fields_are_read_as_the_alias_order_says(data):
    values = fields.call_values(data)
    expected = reference_call_values(data)
    for name in fields.ALIASES:
        if name in ("direction", "transcript", "transcript_url", "to_number", "from_number"):
            continue  # adjusted after the lookup (default direction, a transcript link, a bare phone number)
        assert values[name] == expected[name], name


@pytest.mark.parametrize("moment", [
    datetime(2026, 6, 4, 9, 14, 22, tzinfo=timezone.utc),
    datetime(2026, 6, 4, 9, 14, 22, 250_000, tzinfo=timezone.utc),
    datetime(2026, 6, 4, 11, 14, 22, tzinfo=timezone(timedelta(hours=2))),
    datetime(999, 1, 2, 3, 4, 5, tzinfo=timezone.utc),  # outside the shortcut: strftime as before
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc),
])
def test_iso_times_read_as_strftime_writes_them(moment):
    utc = moment.astimezone(timezone.utc)
    base = utc.strftime("%Y-%m-%dT%H:%M:%S")
    assert fields.iso(moment) == (f"{base}.{moment.microsecond // 1000:03d}Z" if moment.microsecond else f"{base}Z")
