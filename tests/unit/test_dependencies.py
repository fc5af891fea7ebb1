"""Installs are reproducible and never pick a dependency version known to break the store.

sqlite-utils 3.x (checked: 3.30, 3.34, 3.35.2, 3.36, 3.37, 3.38, 3.39, 3.39.1) commits inside
``Table.create``: the migration's transaction ends early and a fresh store is left half-migrated
(``user_version`` 1, no sync tables). 4.0, 4.1.1 and 4.2.1 migrate a fresh store completely.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
BROKEN_SQLITE_UTILS = ("3.30", "3.34", "3.35.2", "3.36", "3.37", "3.38", "3.39", "3.39.1")


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]
    return {canonicalize_name(r.name): r for r in reqs}


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt pins exact versions only: {line!r}"
            pins[canonicalize_name(name)] = version
    return pins


def test_sqlite_utils_range_excludes_the_versions_that_break_migrations():
    spec = _requirements()["sqlite-utils"].specifier
    assert [v for v in BROKEN_SQLITE_UTILS if spec.contains(v)] == []
    assert spec.contains(metadata.version("sqlite-utils"))  # the tested one is allowed


def test_constraints_pin_every_dependency_within_its_declared_range():
    pins = _pins()
    for name, req in _requirements().items():
        assert name in pins, f"{name} is not in constraints.txt: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} outside {req}"


def test_the_environment_was_installed_from_the_constraints():
    """`make test` installs with -c constraints.txt: what runs is what is pinned."""
    pins = _pins()
    for name in _requirements():
        assert metadata.version(name) == pins[name], f"{name}: installed {metadata.version(name)}, pinned {pins[name]}"
