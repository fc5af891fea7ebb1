"""pytest plugin with the ``twilio_api`` fixture (a running :class:`FakeTwilio`); it fails the test
at teardown when a request violated Twilio's OpenAPI description."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.twilio_server import FakeTwilio


@pytest.fixture
async def twilio_api() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
    if fake.violations:
        listing = "\n  ".join(fake.violations)
        pytest.fail(f"requests violating Twilio's OpenAPI description:\n  {listing}", pytrace=False)
