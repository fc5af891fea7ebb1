"""Builds the Linux artefacts (PyInstaller one-folder + .deb) and runs the built program's self-test.

Slow (about a minute of freezing on two cores), so it is marked ``slow``; ``make test`` runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="only the Linux build can be made here"),
    pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is needed for the .deb"),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("PyInstaller", reason="pip install -e '.[package]'")
    out = tmp_path_factory.mktemp("package")
    result = subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "build.py"), "--dist", str(out / "dist"), "--work", str(out / "work")],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out / "dist"


def _run(exe: Path, *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSYNC_")}
    env |= {"QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)


def test_built_program_passes_its_self_test(built: Path, tmp_path: Path) -> None:
    result = _run(built / "callsync" / "callsync", "--self-test", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for name in ("receiver", "signed event", "store", "CRM queue", "keyring", "window toolkit"):
        assert any(line.startswith(("[ok  ]", "[note]")) and f"] {name}:" in line for line in lines), lines
    assert "Traceback" not in result.stderr


def test_built_program_reports_its_version(built: Path, tmp_path: Path) -> None:
    from connector.version import VERSION

    result = _run(built / "callsync" / "callsync", "--version", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert VERSION in result.stdout


def test_deb_installs_a_menu_entry_that_starts_the_program(built: Path, tmp_path: Path) -> None:
    debs = list(built.glob("callsync_*.deb"))
    assert len(debs) == 1, list(built.iterdir())
    info = subprocess.run(["dpkg-deb", "--field", str(debs[0]), "Package", "Version", "Depends"],
                          capture_output=True, text=True, check=True).stdout
    assert "Package: callsync" in info and "libxcb-cursor0" in info
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(root)], check=True)
    desktop = (root / "usr/share/applications/callsync.desktop").read_text()
    exec_line = next(line for line in desktop.splitlines() if line.startswith("Exec="))
    program, *args = exec_line.removeprefix("Exec=").split()
    assert program == "/opt/callsync/callsync" and args == ["gui"]
    assert (root / "usr/share/icons/hicolor/256x256/apps/callsync.png").is_file()
    assert os.readlink(root / "usr/bin/callsync") == "/opt/callsync/callsync"
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(["desktop-file-validate", str(root / "usr/share/applications/callsync.desktop")],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    # The installed tree (relocated under the extraction root) runs: the menu entry's program works.
    result = _run(root / program.lstrip("/"), "--self-test", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_built_window_starts(built: Path, tmp_path: Path) -> None:
    """The frozen program opens its window (offscreen) and serves: every Qt module the window needs was
    bundled, which the self-test's plugin check alone would not show."""
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSYNC_")}
    env |= {"QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    proc = subprocess.Popen([str(built / "callsync" / "callsync"), "gui", "--data-dir", str(tmp_path / "d"),
                             "--port", "0", "--admin-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        lines = []
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "callsync listening" in line:
                break
        assert any("callsync listening" in line for line in lines), "".join(lines)
        assert proc.poll() is None, "".join(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert "Traceback" not in "".join(lines) + out
