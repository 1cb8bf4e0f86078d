"""Regenerate the PNG icons in resources/icons/ (run from the repository root):

    QT_QPA_PLATFORM=offscreen .venv/bin/python resources/make_icons.py

Tray icons come in two variants: ``-light`` for light panels (dark glyph) and
``-dark`` for dark panels (light glyph). The painters live in flowlink.gui.icons so
the app can draw the same pictures when it runs without this folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtGui import QGuiApplication  # noqa: E402

from flowlink.gui.icons import (  # noqa: E402
    APP_ICON_SIZES,
    TRAY_STATES,
    VARIANTS,
    paint_app_icon,
    paint_tray_icon,
)


def main(out: Path) -> list[Path]:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - painting needs one
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for state in TRAY_STATES:
        for variant in VARIANTS:
            path = out / f"tray-{state}-{variant}.png"
            if not paint_tray_icon(state, variant).save(str(path)):
                raise SystemExit(f"could not write {path}")
            written.append(path)
    for size in APP_ICON_SIZES:
        path = out / f"flowlink-{size}.png"
        if not paint_app_icon(size).save(str(path)):
            raise SystemExit(f"could not write {path}")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in main(Path(__file__).resolve().parent / "icons"):
        print(written_path)
