"""pytest plugin with the ``ghl`` fixture (a running :class:`FakeGhl`).

Load it from a test module with ``pytest_plugins = ["tests.fakes.ghl_fixture"]``
or ``from tests.fakes.ghl_fixture import ghl``.  The fixture fails the test at
teardown when the fake recorded spec violations; a test that sends an invalid
request on purpose must clear ``ghl.violations`` itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.ghl_server import FakeGhl


@pytest.fixture
async def ghl() -> AsyncIterator[FakeGhl]:
    fake = FakeGhl()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
    if fake.violations:
        listing = "\n  ".join(fake.violations)
        pytest.fail(f"requests violating the GHL OpenAPI spec:\n  {listing}", pytrace=False)
    if fake.unhandled:
        listing = "\n  ".join(fake.unhandled)
        pytest.fail(f"requests the fake GHL does not implement:\n  {listing}", pytrace=False)
