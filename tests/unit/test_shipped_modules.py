"""What the wheel ships (the packages pyproject.toml includes) never needs the tests: no import of
``tests`` anywhere in its code, and no test double (an in-memory keyring) among its classes."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]


def shipped_packages() -> list[str]:
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = find_packages(str(ROOT), include=find["include"])
    assert "connector" in packages and "gui" in packages
    return sorted(packages)


def shipped_files() -> list[Path]:
    return sorted(p for package in shipped_packages() for p in (ROOT / package.replace(".", "/")).glob("*.py"))


def imported_names(path: Path) -> list[str]:
    """Every module an import statement names, at module level or inside a function."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_no_shipped_source_imports_the_tests():
    offenders = {str(p.relative_to(ROOT)): [n for n in imported_names(p) if n.split(".")[0] == "tests"]
                 for p in shipped_files()}
    assert {path: names for path, names in offenders.items() if names} == {}


def module_names() -> list[str]:
    """Importable names of the shipped files (``__main__`` runs the program: its imports are scanned above)."""
    names = []
    for path in shipped_files():
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_importing_every_shipped_module_loads_no_test_code_and_defines_no_keyring_double():
    code = f"""
import importlib, json, sys
from keyring.backend import KeyringBackend
modules = {module_names()!r}
doubles = []
for name in modules:
    module = importlib.import_module(name)
    doubles += [f"{{name}}.{{k}}" for k, v in vars(module).items()
                if isinstance(v, type) and issubclass(v, KeyringBackend) and v.__module__ == name]
print(json.dumps({{"modules": len(modules), "tests": sorted(m for m in sys.modules if m.split(".")[0] == "tests"),
                  "doubles": doubles}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["modules"] > 30
    assert result["tests"] == [] and result["doubles"] == []


WINDOW_MODULES = ("gui", "PySide6", "qasync", "pyqtgraph")


def test_connector_imports_nothing_of_the_window():
    """connector/ is the headless core: no import of gui/ or Qt anywhere in it (the window's entry point
    is gui/launcher.py)."""
    offenders = {str(p.relative_to(ROOT)): [n for n in imported_names(p) if n.split(".")[0] in WINDOW_MODULES]
                 for p in shipped_files() if p.relative_to(ROOT).parts[0] == "connector"}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_launcher_runs_headless_commands_without_loading_qt(tmp_path):
    code = f"""
import sys
from gui import launcher
code = launcher.main(["dead", "--data-dir", {str(tmp_path)!r}])
print(code, sorted({{m.split(".")[0] for m in sys.modules}} & {set(WINDOW_MODULES[1:])!r}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0 []"


MAX_MODULE_LINES = 450


def test_no_module_of_the_core_is_over_450_lines():
    """Modules under connector/ stay small enough to read in one sitting."""
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / "connector").rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}
