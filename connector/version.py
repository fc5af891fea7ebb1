"""The installed version of callsync (from the package metadata; frozen builds carry it too)."""

from __future__ import annotations

from importlib import metadata

try:
    VERSION = metadata.version("callsync")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0.0.0+source"
