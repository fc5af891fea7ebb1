"""Build the installer artefacts for the machine this runs on into ``dist/``.

    python packaging/build.py            # one-folder build (+ .deb on Linux)
    python packaging/build.py --no-deb   # one-folder build only

Linux: ``dist/callsync/`` (PyInstaller one-folder) and ``dist/callsync_<version>_<arch>.deb``.
Windows and macOS: ``dist/callsync/`` (``dist/callsync.app`` on macOS); their installers are made by
``packaging/windows/callsync.iss`` (Inno Setup) and ``packaging/macos/make_dmg.sh`` on those systems.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "packaging" / "pyinstaller" / "callsync.spec"
LINUX = ROOT / "packaging" / "linux"

DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf"}


def version() -> str:
    sys.path.insert(0, str(ROOT))
    from connector.version import VERSION

    return VERSION


def freeze(dist: Path, work: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN", "--distpath", str(dist),
         "--workpath", str(work / "pyinstaller"), str(SPEC)],
        check=True,
    )
    return dist / "callsync"


def build_deb(folder: Path, ver: str, dist: Path, work: Path) -> Path:
    """A .deb with the one-folder build in /opt/callsync, a launcher in /usr/bin, a menu entry and icon."""
    arch = DEB_ARCH.get(platform.machine(), platform.machine())
    root = work / "deb"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(folder, root / "opt" / "callsync", symlinks=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "callsync").symlink_to("/opt/callsync/callsync")
    apps = root / "usr" / "share" / "applications"
    apps.mkdir(parents=True)
    shutil.copy(LINUX / "callsync.desktop", apps / "callsync.desktop")
    icons = root / "usr" / "share" / "icons" / "hicolor"
    (icons / "256x256" / "apps").mkdir(parents=True)
    (icons / "scalable" / "apps").mkdir(parents=True)
    shutil.copy(ROOT / "gui" / "assets" / "callsync.png", icons / "256x256" / "apps" / "callsync.png")
    shutil.copy(ROOT / "gui" / "assets" / "callsync.svg", icons / "scalable" / "apps" / "callsync.svg")
    size_kib = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink()) // 1024
    control = (LINUX / "control.in").read_text(encoding="utf-8")
    debian = root / "DEBIAN"
    debian.mkdir()
    (debian / "control").write_text(
        control.format(version=ver.replace("+", "~"), arch=arch, size=size_kib), encoding="utf-8"
    )
    for script in ("postinst", "postrm"):
        target = debian / script
        shutil.copy(LINUX / f"deb-{script}", target)
        target.chmod(0o755)
    out = dist / f"callsync_{ver}_{arch}.deb"
    # gzip -1: a 250 MB tree packs in seconds; xz would take minutes on two cores.
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", str(root), str(out)], check=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-deb", action="store_true", help="skip the .deb on Linux")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="where the artefacts go (default dist/)")
    parser.add_argument("--work", type=Path, default=ROOT / "build", help="scratch folder (default build/)")
    args = parser.parse_args()
    ver = version()
    folder = freeze(args.dist, args.work)
    print(f"built {folder}")
    if sys.platform.startswith("linux") and not args.no_deb:
        if shutil.which("dpkg-deb") is None:
            print("dpkg-deb not found: no .deb built (apt-get install dpkg-dev)", file=sys.stderr)
            return 1
        print(f"built {build_deb(folder, ver, args.dist, args.work)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
