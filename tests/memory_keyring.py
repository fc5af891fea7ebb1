"""An in-memory keyring for tests, benchmarks and screenshots, so they never touch the user's
real keyring.  The application never installs it and it is not shipped.

``keyring`` registers every backend class it sees and picks the best viable one on its own; this
one must never be picked that way (secrets would vanish on exit), so it is not viable for
auto-detection and works only through ``keyring.set_keyring(MemoryKeyring())``."""

from __future__ import annotations

import keyring.errors
from keyring.backend import KeyringBackend


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]
    viable = False  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.values.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.values[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.values.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError(username)
