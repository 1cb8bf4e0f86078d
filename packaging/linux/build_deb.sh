#!/usr/bin/env bash
# Build the one-folder bundle (PyInstaller) and dist/flowlink_<version>_<arch>.deb.
#
#     packaging/linux/build_deb.sh            # bundle + .deb
#     packaging/linux/build_deb.sh --no-bundle  # .deb from the existing dist/flowlink/
#
# Environment: PYTHON (default .venv/bin/python, with the 'package' extra installed),
# DEB_COMPRESSION (default: zstd level 9 when dpkg-deb has zstd, else xz),
# DEB_MAINTAINER. Figures go to build/package-figures.env for `make package-test`.
#
# The package installs /opt/flowlink (the bundle), /usr/bin/flowlink (a symlink: the
# bundle finds its _internal folder from the resolved path), the desktop entry, the
# hicolor icons and the AppStream metainfo. Depends is read off the bundle's ELF files
# by dpkg-shlibdeps: Python and Qt are in the bundle, the system libraries they link
# (X11/xcb, Wayland, fontconfig, D-Bus, GLib, OpenSSL...) come from Debian.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
BUILD=$ROOT/build
DIST=$ROOT/dist
STAGE=$BUILD/deb/root
FIGURES=$BUILD/package-figures.env
MAINTAINER=${DEB_MAINTAINER:-Flowlink maintainers <maintainers@flowlink.invalid>}

bundle=1
case "${1:-}" in
  --no-bundle) bundle=0 ;;
  "") ;;
  *) echo "usage: $0 [--no-bundle]" >&2; exit 2 ;;
esac

command -v dpkg-deb >/dev/null || { echo "build_deb.sh: dpkg-deb is needed (Debian/Ubuntu)." >&2; exit 2; }
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' app/flowlink/__init__.py)
[ -n "$VERSION" ] || { echo "build_deb.sh: no __version__ in app/flowlink/__init__.py" >&2; exit 2; }
ARCH=$(dpkg --print-architecture)
DEB=$DIST/flowlink_${VERSION}_${ARCH}.deb
mkdir -p "$BUILD" "$DIST"

# -- bundle ---------------------------------------------------------------------------
t0=$(date +%s.%N)
if [ "$bundle" = 1 ]; then
  if ! "$PYTHON" -m PyInstaller --version >/dev/null 2>&1; then
    echo "build_deb.sh: PyInstaller is not installed for $PYTHON; run: $PYTHON -m pip install -e '.[gui,package]'" >&2
    exit 2
  fi
  "$PYTHON" packaging/icons.py "$BUILD/icons"
  FLOWLINK_ICONS=$BUILD/icons "$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$DIST" --workpath "$BUILD/pyinstaller" packaging/flowlink.spec
fi
[ -x "$DIST/flowlink/flowlink" ] || { echo "build_deb.sh: no bundle in $DIST/flowlink; run without --no-bundle" >&2; exit 2; }
[ -d "$BUILD/icons/hicolor" ] || "$PYTHON" packaging/icons.py "$BUILD/icons"
t1=$(date +%s.%N)

# -- staging tree -----------------------------------------------------------------------
rm -rf "$BUILD/deb"
mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/share/applications" \
  "$STAGE/usr/share/metainfo" "$STAGE/usr/share/doc/flowlink"
cp -a "$DIST/flowlink" "$STAGE/opt/flowlink"
ln -s /opt/flowlink/flowlink "$STAGE/usr/bin/flowlink"
install -m 644 packaging/linux/flowlink.desktop "$STAGE/usr/share/applications/flowlink.desktop"
sed -e "s/@VERSION@/$VERSION/" -e "s/@DATE@/$(date -u +%Y-%m-%d)/" \
  packaging/linux/io.flowlink.Flowlink.metainfo.xml > "$STAGE/usr/share/metainfo/io.flowlink.Flowlink.metainfo.xml"
for dir in "$BUILD"/icons/hicolor/*/; do
  size=$(basename "$dir")
  install -D -m 644 "$dir/apps/flowlink.png" "$STAGE/usr/share/icons/hicolor/$size/apps/flowlink.png"
done
cat > "$STAGE/usr/share/doc/flowlink/README.Debian" <<EOF
Flowlink $VERSION for Debian and Ubuntu.

The program lives in /opt/flowlink (Python and Qt included); /usr/bin/flowlink opens
the window, and 'flowlink --help' lists the command-line subcommands. Workspaces are
kept in ~/.local/share/Flowlink unless --data-dir names another folder; removing the
package leaves them in place.
EOF
install -m 755 packaging/linux/postinst packaging/linux/postrm "$STAGE/DEBIAN/"
chmod -R u+rwX,go+rX,go-w "$STAGE"

# -- Depends ----------------------------------------------------------------------------
# What the bundle's ELF files link from the system. dpkg-shlibdeps (dpkg-dev) maps
# each library to its package and minimum version; without it, this list (read off
# a Debian 12 build) stands in.
FALLBACK_DEPENDS="libc6 (>= 2.35), libgcc-s1, libstdc++6 (>= 11), zlib1g, libbz2-1.0, liblzma5, libzstd1,
 libffi8, libssl3, libsqlite3-0, libuuid1, libreadline8, libcrypt1, libnsl2, libtirpc3, libbrotli1,
 libglib2.0-0, libdbus-1-3, libfontconfig1, libfreetype6, libgssapi-krb5-2, libegl1, libgl1,
 libx11-6, libx11-xcb1, libxcb1, libxcb-cursor0, libxcb-glx0, libxcb-icccm4, libxcb-image0,
 libxcb-keysyms1, libxcb-randr0, libxcb-render-util0, libxcb-render0, libxcb-shape0, libxcb-shm0,
 libxcb-sync1, libxcb-util1, libxcb-xfixes0, libxcb-xkb1, libxkbcommon-x11-0, libxkbcommon0,
 libwayland-client0, libwayland-cursor0, libwayland-egl1"
depends=""
if command -v dpkg-shlibdeps >/dev/null; then
  shlib_dir=$BUILD/deb/shlibdeps
  mkdir -p "$shlib_dir/debian"
  printf 'Source: flowlink\n\nPackage: flowlink\nArchitecture: any\n' > "$shlib_dir/debian/control"
  mapfile -t elves < <(find "$STAGE/opt/flowlink" -type f -exec sh -c \
    'for f; do [ "$(head -c 4 "$f" | od -An -c | tr -d " ")" = "177ELF" ] && echo "$f"; done' _ {} +)
  args=()
  for f in "${elves[@]}"; do args+=("-e$f"); done
  # Libraries found in the staging tree are the package's own and need no dependency.
  depends=$(cd "$shlib_dir" && dpkg-shlibdeps -O -S"$STAGE" -l"$STAGE/opt/flowlink/_internal" \
    -l"$STAGE/opt/flowlink/_internal/PySide6/Qt/lib" "${args[@]}" 2>"$shlib_dir/warnings.txt" \
    | sed -n 's/^shlibs:Depends=//p') || {
      cat "$shlib_dir/warnings.txt" >&2
      echo "build_deb.sh: dpkg-shlibdeps failed (above)" >&2
      exit 1
    }
fi
if [ -z "$depends" ]; then
  echo "build_deb.sh: dpkg-shlibdeps not available; using the Depends list written for Debian 12" >&2
  depends=$(echo "$FALLBACK_DEPENDS" | tr -d '\n')
fi

installed_kb=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
cat > "$STAGE/DEBIAN/control" <<EOF
Package: flowlink
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $installed_kb
Depends: $depends
Recommends: gnome-keyring | kwalletmanager | keepassxc, fonts-dejavu-core | fonts-liberation2
Section: utils
Priority: optional
Description: workspace manager for automation flows, with linked workspaces
 Flowlink keeps flow scripts (small Python programs), settings, files and the
 executions that running them produces in a local workspace, and links
 workspaces over HTTPS so that a flow in one can run a flow in another.
 .
 This package holds the desktop app (window and tray icon) and the headless
 command line ('flowlink serve' and friends). Private keys are kept in the
 Secret Service (GNOME Keyring, KWallet, KeePassXC) when one runs.
EOF

# -- the .deb ---------------------------------------------------------------------------
if [ -z "${DEB_COMPRESSION:-}" ]; then
  # Not `dpkg-deb --help | grep -q`: with pipefail, grep quitting early fails the pipe.
  deb_help=$(dpkg-deb --help 2>&1 || true)
  case "$deb_help" in
    *zstd*) DEB_COMPRESSION="-Zzstd -z9" ;;
    *) DEB_COMPRESSION="-Zxz" ;;
  esac
fi
rm -f "$DIST"/flowlink_*.deb
# shellcheck disable=SC2086 # DEB_COMPRESSION holds two options
dpkg-deb --root-owner-group $DEB_COMPRESSION --build "$STAGE" "$DEB" >/dev/null
t2=$(date +%s.%N)

deb_bytes=$(stat -c %s "$DEB")
bundle_s=$(awk "BEGIN {printf \"%.1f\", $t1 - $t0}")
deb_s=$(awk "BEGIN {printf \"%.1f\", $t2 - $t1}")
cat > "$FIGURES" <<EOF
BUNDLE_SECONDS=$bundle_s
DEB_SECONDS=$deb_s
BUNDLED=$bundle
DEB_BYTES=$deb_bytes
INSTALLED_KB=$installed_kb
EOF
echo "built $DEB"
echo "  bundle: ${bundle_s} s$([ "$bundle" = 1 ] || echo ' (reused)'); .deb: ${deb_s} s ($DEB_COMPRESSION)"
echo "  .deb size: $((deb_bytes / 1024 / 1024)) MiB ($deb_bytes bytes); installed size: $((installed_kb / 1024)) MiB"
