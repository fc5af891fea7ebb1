#!/bin/sh
# Installs the Debian packages a step needs, only when something is missing.
# Usage: sysdeps.sh venv|gui|test|bench
set -e
need=""
want() { dpkg -s "$1" >/dev/null 2>&1 || need="$need $1"; }

command -v dpkg >/dev/null 2>&1 || exit 0   # not Debian/Ubuntu: nothing to do here

case "$1" in
  venv)
    python3 -c "import ensurepip, venv" >/dev/null 2>&1 || want python3-venv
    ;;
  gui|test)
    # Qt 6 (PySide6 wheels) needs these at run time; fonts so text renders offscreen.
    for p in libglib2.0-0 libegl1 libgl1 libx11-6 libxkbcommon0 libfontconfig1 libfreetype6 \
             libdbus-1-3 fonts-dejavu-core; do want "$p"; done
    # The tests start a throwaway PostgreSQL cluster from the server binaries (tests/pg.py).
    if [ "$1" = test ]; then want postgresql; fi
    if [ "$1" = gui ]; then
      for p in libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \
               libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libx11-xcb1; do
        want "$p"
      done
    fi
    ;;
  bench)
    want wrk
    want postgresql   # serve --workers on PostgreSQL
    ;;
esac

[ -z "$need" ] && exit 0
echo "installing system packages:$need"
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
  echo "missing system packages:$need (run as root: apt-get install$need)" >&2; exit 1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
