"""Which store callsync uses: the SQLite file in the data dir, or PostgreSQL (server mode).

The URL comes from ``--store-url``, else ``CALLSYNC_STORE_URL``, else ``[store] url`` in config.toml;
none of them means the SQLite file ``DATA_DIR/callsync.db``.  The password never goes in config.toml
or on the command line (where every local user can read it): it comes from the keyring user
``store`` (``callsync secret set store``), ``CALLSYNC_STORE_PASSWORD``, or inside the URL given by
``CALLSYNC_STORE_URL``.
"""

from __future__ import annotations

import os
from urllib.parse import quote, urlsplit, urlunsplit

from connector.config import ConfigError

ENV_URL = "CALLSYNC_STORE_URL"
PASSWORD_USER = "store"  # keyring user; its environment variable is CALLSYNC_STORE_PASSWORD
SCHEMES = ("postgresql", "postgres")
HOW_TO_SET = ("set [store] url = \"postgresql://user@host/db\" in config.toml, pass --store-url, "
              f"or set {ENV_URL}")


def check_url(url: str, where: str, *, password_allowed: bool = False) -> str:
    """``url`` if callsync can use it as a store, else :class:`ConfigError` saying why."""
    url = url.strip()
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"{where} is not a valid URL: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise ConfigError(f"{where} must be a PostgreSQL URL (postgresql://user@host/database), "
                          f"got {parts.scheme or 'no'} scheme")
    if parts.password is not None and not password_allowed:
        raise ConfigError(f"{where} must not hold a password: store it with `callsync secret set store`, "
                          f"or set CALLSYNC_STORE_PASSWORD, or give the whole URL in {ENV_URL}")
    if not parts.path.strip("/"):
        raise ConfigError(f"{where} must name a database (postgresql://user@host/database)")
    return url


def with_password(url: str, password: str | None) -> str:
    """``url`` with ``password`` in it (unless it has one already)."""
    parts = urlsplit(url)
    if not password or parts.password is not None:
        return url
    user = quote(parts.username or "", safe="")
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def chosen_url(config_url: str, option: str | None, environ: dict[str, str] | None = None) -> str:
    """The store URL in force: ``--store-url``, else ``CALLSYNC_STORE_URL``, else ``[store] url``."""
    env = os.environ if environ is None else environ
    if option:
        return check_url(option, "--store-url")
    if env.get(ENV_URL, "").strip():
        return check_url(env[ENV_URL], ENV_URL, password_allowed=True)
    return config_url


def connection_url(url: str) -> str:
    """The URL to connect with: the password added from the keyring or the environment when the
    URL has none."""
    from connector import secrets

    if urlsplit(url).password is not None:
        return url
    return with_password(url, secrets.get_secret(PASSWORD_USER))
