#!/bin/sh
# macOS: wrap dist/callsync.app (from `python packaging/build.py`) into dist/callsync-<version>.dmg.
set -eu
cd "$(dirname "$0")/../.."
VERSION="${1:-$(python3 -c 'from connector.version import VERSION; print(VERSION)')}"
STAGE="build/dmg"
rm -rf "$STAGE" && mkdir -p "$STAGE"
cp -R dist/callsync.app "$STAGE/"
cp packaging/macos/com.callsync.desktop.plist "$STAGE/Start on login (LaunchAgent).plist"
ln -s /Applications "$STAGE/Applications"
hdiutil create -volname callsync -srcfolder "$STAGE" -ov -format UDZO "dist/callsync-$VERSION.dmg"
