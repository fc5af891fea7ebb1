"""Integration tests: the store, receiver, sync and crash tests run on both engines (tests/backends.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _each_backend(backend):
    yield backend
