"""Edits of ``config.toml`` that keep the user's comments and layout (tomlkit).

Every edit reads the file, changes one part, checks that the result still loads
(:func:`connector.config.parse_config` and the ``[crm.ghl]`` / ``[[rules]]``
parser) and only then replaces the file atomically.  A bad value raises
:class:`connector.config.ConfigError` and leaves the file untouched.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import AoT, InlineTable, Table
from tomlkit.toml_document import TOMLDocument

from connector.config import DEFAULT_CONFIG, ConfigError, SourceConfig, parse_config
from connector.sync.settings import Rule

# Keys a [sources.<name>] table may hold; those the new settings do not write are removed.
SOURCE_KEYS = tuple(key for key in SourceConfig.__dataclass_fields__ if key != "name")  # managed by the window
RULE_DEFAULTS = Rule()


def read_document(path: Path) -> TOMLDocument:
    text = path.read_text(encoding="utf-8") if path.exists() else DEFAULT_CONFIG
    return tomlkit.parse(text)


def validate(text: str, data_dir: Path) -> dict[str, Any]:
    """Parse ``text`` as a whole config ([crm.ghl] and [[rules]] too); raises ConfigError with the key at fault."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from exc
    parse_config(data, data_dir)
    return data


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def edit(path: Path, change: Callable[[TOMLDocument], None]) -> dict[str, Any]:
    """Apply ``change`` to the document, validate, write; returns the new parsed data."""
    doc = read_document(path)
    change(doc)
    text = tomlkit.dumps(doc)
    data = validate(text, path.parent)
    _write_atomically(path, text)
    return data


def _super_table(doc: TOMLDocument | Table, key: str) -> Table | InlineTable:
    """``doc[key]`` as a table that only holds sub-tables (written as ``[key.sub]`` headers)."""
    if key not in doc:
        doc[key] = tomlkit.table(is_super_table=True)
    table = doc[key]
    if not isinstance(table, (Table, InlineTable)):
        raise ConfigError(f"{key} must be a table")
    return table


def _table(doc: TOMLDocument | Table | InlineTable, key: str) -> Table | InlineTable:
    if key not in doc:
        doc[key] = tomlkit.table()
    table = doc[key]
    if not isinstance(table, (Table, InlineTable)):
        raise ConfigError(f"{key} must be a table")
    return table


def _update(table: Table | InlineTable, values: dict[str, Any], managed: Iterable[str] = ()) -> None:
    """Set changed values in place (comments on untouched keys survive), drop managed keys not given."""
    for key in managed:
        if key in table and key not in values:
            del table[key]
    for key, value in values.items():
        if key not in table or table[key] != value:
            table[key] = value


# -- the edits the window makes -------------------------------------------------


def set_source(path: Path, source: SourceConfig) -> dict[str, Any]:
    def change(doc: TOMLDocument) -> None:
        sources = _super_table(doc, "sources")
        if source.name not in sources:
            sources[source.name] = tomlkit.table()
        _update(sources[source.name], source.to_toml(), SOURCE_KEYS)

    return edit(path, change)


def remove_source(path: Path, name: str) -> dict[str, Any]:
    def change(doc: TOMLDocument) -> None:
        sources = doc.get("sources")
        if sources is not None and name in sources:
            del sources[name]

    return edit(path, change)


def set_server(path: Path, **values: Any) -> dict[str, Any]:
    return edit(path, lambda doc: _update(_table(doc, "server"), values))


def set_tunnel(path: Path, **values: Any) -> dict[str, Any]:
    """Set keys of ``[tunnel]`` (the window's switch, ``serve --tunnel``); ``None`` removes a key."""

    def change(doc: TOMLDocument) -> None:
        _update(_table(doc, "tunnel"), {k: v for k, v in values.items() if v is not None},
                [k for k, v in values.items() if v is None])

    return edit(path, change)


def set_crm(path: Path, **values: Any) -> dict[str, Any]:
    """Set keys of ``[crm.ghl]``; a value of ``None`` removes the key (back to the default)."""

    def change(doc: TOMLDocument) -> None:
        ghl = _table(_super_table(doc, "crm"), "ghl")
        _update(ghl, {k: v for k, v in values.items() if v is not None}, [k for k, v in values.items() if v is None])

    return edit(path, change)


def rule_to_toml(rule: Rule) -> dict[str, Any]:
    """Only what differs from a blank rule, so the file stays short."""
    data: dict[str, Any] = {}
    for name in Rule.__dataclass_fields__:
        value = getattr(rule, name)
        if value != getattr(RULE_DEFAULTS, name):
            data[name] = value
    if "note" not in data:
        data["note"] = rule.note  # always explicit: people look for it
    return data


def set_rules(path: Path, rules: list[Rule]) -> dict[str, Any]:
    def change(doc: TOMLDocument) -> None:
        if "rules" in doc:
            del doc["rules"]
        if not rules:
            return
        aot = AoT([])
        for rule in rules:
            table = tomlkit.table()
            for key, value in rule_to_toml(rule).items():
                table[key] = value
            aot.append(table)
        doc["rules"] = aot

    return edit(path, change)
