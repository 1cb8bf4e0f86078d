"""The app icon in every form the platforms want, from resources/icons/flowlink-<size>.png.

    python packaging/icons.py OUT_DIR

writes OUT_DIR/hicolor/<size>x<size>/apps/flowlink.png (Linux), OUT_DIR/flowlink.ico
(Windows) and OUT_DIR/flowlink.icns (macOS). When the repository has no PNGs yet,
placeholders are painted with Qt into OUT_DIR/png/ (never into resources/).
ICO and ICNS are written here rather than by Pillow or iconutil: both formats
accept PNG data as is, so a few lines of struct cover them on every OS.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
# ICNS element types that hold PNG data, by pixel size (ic10 is 512@2x; ic09 is 512).
ICNS_TYPES = {16: b"icp4", 32: b"icp5", 64: b"icp6", 128: b"ic07", 256: b"ic08", 512: b"ic09"}

PLACEHOLDER_SCRIPT = r"""
import sys
from PySide6.QtCore import Qt, QRectF
from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter, QPen
app = QGuiApplication(sys.argv[:1])
out = sys.argv[1]
for size in map(int, sys.argv[2:]):
    img = QImage(size, size, QImage.Format.Format_ARGB32)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setBrush(QColor("#1c7ed6"))
    p.setPen(Qt.PenStyle.NoPen)
    p.drawRoundedRect(QRectF(0, 0, size, size), size * 0.2, size * 0.2)
    p.setPen(QPen(QColor("white"), max(1.0, size / 12)))
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawEllipse(QRectF(size * 0.18, size * 0.32, size * 0.4, size * 0.36))
    p.drawEllipse(QRectF(size * 0.42, size * 0.32, size * 0.4, size * 0.36))
    p.end()
    if not img.save(f"{out}/flowlink-{size}.png"):
        sys.exit(f"cannot write {out}/flowlink-{size}.png")
"""


def source_pngs(out: Path) -> dict[int, Path]:
    """size -> PNG: the repository's, or placeholders painted into out/png."""
    found = {s: SOURCE / f"flowlink-{s}.png" for s in SIZES}
    if all(p.is_file() for p in found.values()):
        return found
    target = out / "png"
    target.mkdir(parents=True, exist_ok=True)
    print(f"icons: {SOURCE} lacks some sizes; painting placeholders in {target}", file=sys.stderr)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    subprocess.run([sys.executable, "-c", PLACEHOLDER_SCRIPT, str(target), *map(str, SIZES)],
                   check=True, env=env)
    return {s: (p if p.is_file() else target / f"flowlink-{s}.png") for s, p in found.items()}


def png_size(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    return struct.unpack(">II", data[16:24])


def ico_bytes(pngs: dict[int, bytes]) -> bytes:
    """An ICO whose images are PNG streams (Windows Vista and later read these)."""
    sizes = sorted(pngs)
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = len(header) + 16 * len(sizes)
    entries, blobs = b"", b""
    for size in sizes:
        data = pngs[size]
        dim = 0 if size >= 256 else size  # 0 means 256 in an ICONDIRENTRY
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(data), offset)
        offset += len(data)
        blobs += data
    return header + entries + blobs


def icns_bytes(pngs: dict[int, bytes]) -> bytes:
    body = b""
    for size, kind in ICNS_TYPES.items():
        if size in pngs:
            body += kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size]
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def build(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    pngs = source_pngs(out)
    data = {}
    for size, path in pngs.items():
        blob = path.read_bytes()
        if png_size(blob) != (size, size):
            raise SystemExit(f"{path} is {png_size(blob)}, not {size}x{size}")
        data[size] = blob
        dest = out / "hicolor" / f"{size}x{size}" / "apps" / "flowlink.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    (out / "flowlink.ico").write_bytes(ico_bytes({s: data[s] for s in ICO_SIZES}))
    (out / "flowlink.icns").write_bytes(icns_bytes(data))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python packaging/icons.py OUT_DIR")
    build(Path(sys.argv[1]))
