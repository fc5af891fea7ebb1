"""Action templates: ``{field}`` placeholders over an alert's fields, ``{{`` and ``}}`` for literal braces.

Nothing else is special: no attribute access, indexing or format specs (a template from a config file
must not reach into Python objects).  In a URL the values are percent-encoded; in a header, line
breaks are removed; in a ``json`` table, a string that is exactly one placeholder keeps the field's
type (``"{rate}"`` is a number), any other string is rendered as text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class TemplateError(ValueError):
    """A template that cannot be rendered (an unmatched brace, a placeholder that is not a name)."""


def placeholders(template: str) -> list[str]:
    """The field names a template uses, in order; raises :class:`TemplateError` when it is malformed."""
    names = []
    for match in _TOKEN.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            raise TemplateError(f"unmatched {token!r} in {template!r} (write {token * 2} for a literal brace)")
        if not _NAME.match(name):
            raise TemplateError(f"{{{name}}} in {template!r} is not a field name (only {{field}} is allowed)")
        names.append(name)
    return names


def text_of(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render(template: str, fields: Mapping[str, Any], escape: Callable[[str], str] = lambda s: s) -> str:
    """Fill a template; a field the alert does not have renders as an empty string."""
    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        if name is None or not _NAME.match(name):
            raise TemplateError(f"malformed template {template!r}")
        return escape(text_of(fields.get(name)))

    return _TOKEN.sub(one, template)


def render_url(template: str, fields: Mapping[str, Any]) -> str:
    return render(template, fields, lambda s: quote(s, safe=""))


def render_header(template: str, fields: Mapping[str, Any]) -> str:
    return render(template, fields, lambda s: s.replace("\r", " ").replace("\n", " "))


def render_json(value: Any, fields: Mapping[str, Any]) -> Any:
    """A ``json = {...}`` table with its string values rendered (recursively)."""
    if isinstance(value, str):
        names = placeholders(value)
        if len(names) == 1 and value == "{" + names[0] + "}":
            return fields.get(names[0])
        return render(value, fields)
    if isinstance(value, Mapping):
        return {str(k): render_json(v, fields) for k, v in value.items()}
    if isinstance(value, list):
        return [render_json(v, fields) for v in value]
    return value


def json_placeholders(value: Any) -> list[str]:
    if isinstance(value, str):
        return placeholders(value)
    if isinstance(value, Mapping):
        return [n for v in value.values() for n in json_placeholders(v)]
    if isinstance(value, list):
        return [n for v in value for n in json_placeholders(v)]
    return []
