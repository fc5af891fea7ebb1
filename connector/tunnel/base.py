"""The interface every tunnel provider implements, and the one-sentence errors they raise.

A provider opens a public URL that forwards to one local address (the hooks listener, never
the admin port) and reports later changes through :class:`TunnelEvents`:

- ``down(reason)``: the connection to the provider's service was lost and the provider is
  reconnecting by itself (the public URL is kept);
- ``back()``: it reconnected by itself;
- ``ended(reason)``: it gave up (its process exited): the manager opens it again.
"""

from __future__ import annotations

import abc
from typing import Protocol

# Error kinds, each with its own sentence; ``retry`` says whether trying again later can help.
NO_ACCOUNT = "no_account"
BAD_TOKEN = "bad_token"
NO_NETWORK = "no_network"
NOT_INSTALLED = "not_installed"
REFUSED = "refused"
FAILED = "failed"


class TunnelError(Exception):
    """The tunnel could not be opened; ``str(error)`` is one sentence for the CLI and the window."""

    def __init__(self, kind: str, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry = retry


class TunnelEvents(Protocol):
    def down(self, reason: str) -> None: ...

    def back(self) -> None: ...

    def ended(self, reason: str) -> None: ...


class TunnelProvider(abc.ABC):
    name: str = ""

    @abc.abstractmethod
    async def open(self, target: str, events: TunnelEvents) -> str:
        """Forward a public URL to ``target`` (``host:port``); return the URL (``https://...``, no
        trailing slash).  Raises :class:`TunnelError`."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop forwarding; never raises."""
