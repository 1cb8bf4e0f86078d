#!/usr/bin/env bash
# Build dist/Flowlink.app and dist/Flowlink-<version>.dmg on macOS.
#
#     packaging/macos/build_app.sh [--tray-only]
#
# Written and reviewed on Linux, NOT YET RUN ON A MAC: expect to fix details the first
# time. --tray-only sets LSUIElement (menu-bar app, no Dock icon). Environment:
# PYTHON (default .venv/bin/python with the 'gui' and 'package' extras),
# CODESIGN_IDENTITY ("Developer ID Application: ..."; default: ad-hoc signature, which
# runs on the building Mac only), NOTARY_PROFILE (a `xcrun notarytool store-credentials`
# profile; when set, the .dmg is notarized and stapled).
#
# The app holds two programs in Contents/MacOS: `flowlink` (the window; what Finder and
# the login item start) and `flowlink-cli` (for Terminal; link it onto the PATH with
#     ln -s /Applications/Flowlink.app/Contents/MacOS/flowlink-cli /usr/local/bin/flowlink).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
TRAY_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --tray-only) TRAY_ONLY=1 ;;
    *) echo "usage: $0 [--tray-only]" >&2; exit 2 ;;
  esac
done
[ "$(uname -s)" = Darwin ] || { echo "build_app.sh: run this on macOS" >&2; exit 2; }

VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' app/flowlink/__init__.py)
APP=dist/Flowlink.app
DMG=dist/Flowlink-$VERSION.dmg

"$PYTHON" packaging/icons.py build/icons
rm -rf "$APP" dist/flowlink
FLOWLINK_ICONS=$ROOT/build/icons FLOWLINK_TRAY_ONLY=$TRAY_ONLY \
  "$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/flowlink.spec

plutil -lint "$APP/Contents/Info.plist"
for program in flowlink flowlink-cli; do
  [ -x "$APP/Contents/MacOS/$program" ] || { echo "build_app.sh: $program missing from $APP" >&2; exit 1; }
done
# The bundle must start and answer before it is worth signing.
"$APP/Contents/MacOS/flowlink-cli" --version

# Sign inside out, deepest paths first (Apple advises against --deep for signing):
# every Mach-O file, every framework bundle after its contents, then the app.
# PyInstaller signed everything ad hoc already; this replaces those signatures.
IDENTITY=${CODESIGN_IDENTITY:--}
sign_opts=(--force --sign "$IDENTITY")
if [ "$IDENTITY" != "-" ]; then
  sign_opts+=(--timestamp --options runtime --entitlements packaging/macos/entitlements.plist)
fi
find "$APP/Contents" \( -type f -o -type d -name '*.framework' \) -print \
  | awk -F/ '{print NF "\t" $0}' | sort -rn | cut -f2- \
  | while IFS= read -r item; do
      if [ -d "$item" ] || file -b "$item" | grep -q 'Mach-O'; then
        codesign "${sign_opts[@]}" "$item"
      fi
    done
codesign "${sign_opts[@]}" "$APP"
codesign --verify --strict --verbose=2 "$APP"

# The disk image: the app beside a link to /Applications, to drag it onto.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
ditto "$APP" "$stage/Flowlink.app"  # keeps the symlinks and signatures intact
ln -s /Applications "$stage/Applications"
rm -f "$DMG"
hdiutil create -volname "Flowlink $VERSION" -srcfolder "$stage" -fs HFS+ -format UDZO -ov "$DMG"
if [ "$IDENTITY" != "-" ]; then
  codesign --force --sign "$IDENTITY" --timestamp "$DMG"
fi
if [ -n "${NOTARY_PROFILE:-}" ]; then
  xcrun notarytool submit "$DMG" --keychain-profile "$NOTARY_PROFILE" --wait
  xcrun stapler staple "$DMG"
fi
echo "built $APP and $DMG ($(du -h "$DMG" | cut -f1))"
