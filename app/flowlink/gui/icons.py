"""Icons: the app icon and the tray states from resources/, status dots drawn at runtime.

The PNGs in resources/icons/ are made by resources/make_icons.py with the painters
below, so an install without the resources folder still gets the same pictures,
painted when first asked for.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QGuiApplication,
    QIcon,
    QImage,
    QLinearGradient,
    QPainter,
    QPainterPath,
    QPalette,
    QPen,
    QPixmap,
)

from flowlink.workspace.records import (
    ENDED_CANCELLED,
    ENDED_ERROR,
    ENDED_SUCCESS,
    PAUSED,
    PENDING,
    RUNNING,
    WAITING,
)

SYNCED, SYNCING, ERROR, PAUSED_STATE, DISABLED = "synced", "syncing", "error", "paused", "disabled"
TRAY_STATES = (SYNCED, SYNCING, ERROR, PAUSED_STATE, DISABLED)
# "light" icons are for light panels (a dark glyph), "dark" ones for dark panels.
VARIANTS = ("light", "dark")
APP_ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
TRAY_ICON_SIZE = 64

STATE_COLORS = {
    SYNCED: "#2f9e44",
    SYNCING: "#1c7ed6",
    ERROR: "#e03131",
    PAUSED_STATE: "#f08c00",
    DISABLED: "#868e96",
}
GLYPH_COLORS = {"light": "#343a40", "dark": "#e9ecef"}

STATUS_COLORS = {
    PENDING: "#adb5bd",
    RUNNING: "#1c7ed6",
    WAITING: "#7048e8",
    PAUSED: "#f08c00",
    ENDED_SUCCESS: "#2f9e44",
    ENDED_ERROR: "#e03131",
    ENDED_CANCELLED: "#495057",
}
STATUS_LABELS = {
    PENDING: "Pending",
    RUNNING: "Running",
    WAITING: "Waiting",
    PAUSED: "Paused",
    ENDED_SUCCESS: "Success",
    ENDED_ERROR: "Error",
    ENDED_CANCELLED: "Cancelled",
}


def resources_dir() -> Path | None:
    """resources/ of a source checkout, or flowlink/resources/ when installed as package data."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[1] / "resources", here.parents[3] / "resources"):
        if (candidate / "icons").is_dir():
            return candidate
    return None


def icon_path(name: str) -> Path | None:
    base = resources_dir()
    if base is None:
        return None
    path = base / "icons" / name
    return path if path.is_file() else None


# -- painters (shared with resources/make_icons.py) ---------------------------------------


def _new_image(size: int) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    return image


def _draw_link(painter: QPainter, center: QPointF, size: float, color: QColor, width: float) -> None:
    """Two interlocked rings on the rising diagonal: the Flowlink mark."""
    painter.save()
    painter.translate(center)
    painter.rotate(-45)
    length, height = size * 0.62, size * 0.34
    offset = size * 0.19
    pen = QPen(color, width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin)
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    for dx in (-offset, offset):
        painter.drawRoundedRect(QRectF(dx - length / 2, -height / 2, length, height), height / 2, height / 2)
    painter.restore()


def _draw_badge(painter: QPainter, state: str, center: QPointF, radius: float) -> None:
    # Cut a gap around the badge so it reads at 16 px on any panel.
    painter.save()
    painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Clear)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QBrush(Qt.GlobalColor.black))
    painter.drawEllipse(center, radius * 1.22, radius * 1.22)
    painter.restore()

    painter.save()
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(STATE_COLORS[state]))
    painter.drawEllipse(center, radius, radius)
    white = QPen(QColor("white"), radius * 0.32, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                 Qt.PenJoinStyle.RoundJoin)
    painter.setPen(white)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    cx, cy, r = center.x(), center.y(), radius
    if state == SYNCED:
        path = QPainterPath(QPointF(cx - r * 0.45, cy + r * 0.02))
        path.lineTo(cx - r * 0.12, cy + r * 0.35)
        path.lineTo(cx + r * 0.48, cy - r * 0.32)
        painter.drawPath(path)
    elif state == SYNCING:
        # Two arrows chasing each other round the circle, with heads big enough for 16 px.
        ring = r * 0.50
        arc = QRectF(cx - ring, cy - ring, ring * 2, ring * 2)
        painter.setPen(QPen(QColor("white"), r * 0.24, Qt.PenStyle.SolidLine, Qt.PenCapStyle.FlatCap))
        for start in (200.0, 20.0):
            painter.drawArc(arc, int(start * 16), int(115 * 16))
            end = math.radians(start + 115)
            tip_x, tip_y = cx + ring * math.cos(end), cy - ring * math.sin(end)
            # Tangent (counter-clockwise in screen coordinates) at the end of the arc.
            tx, ty = -math.sin(end), -math.cos(end)
            nx, ny = math.cos(end), -math.sin(end)
            size = r * 0.36
            head = QPainterPath(QPointF(tip_x + tx * size, tip_y + ty * size))
            head.lineTo(tip_x + nx * size, tip_y + ny * size)
            head.lineTo(tip_x - nx * size, tip_y - ny * size)
            head.closeSubpath()
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("white"))
            painter.drawPath(head)
            painter.setPen(QPen(QColor("white"), r * 0.24, Qt.PenStyle.SolidLine, Qt.PenCapStyle.FlatCap))
            painter.setBrush(Qt.BrushStyle.NoBrush)
    elif state == ERROR:
        painter.drawLine(QPointF(cx, cy - r * 0.48), QPointF(cx, cy + r * 0.08))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("white"))
        painter.drawEllipse(QPointF(cx, cy + r * 0.45), r * 0.17, r * 0.17)
    elif state == PAUSED_STATE:
        painter.drawLine(QPointF(cx - r * 0.24, cy - r * 0.40), QPointF(cx - r * 0.24, cy + r * 0.40))
        painter.drawLine(QPointF(cx + r * 0.24, cy - r * 0.40), QPointF(cx + r * 0.24, cy + r * 0.40))
    else:  # disabled
        painter.drawLine(QPointF(cx - r * 0.45, cy), QPointF(cx + r * 0.45, cy))
    painter.restore()


def paint_tray_icon(state: str, variant: str, size: int = TRAY_ICON_SIZE) -> QImage:
    if state not in TRAY_STATES:
        raise ValueError(f"unknown tray state {state!r}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown icon variant {variant!r}")
    image = _new_image(size)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    glyph = QColor(GLYPH_COLORS[variant])
    if state == DISABLED:
        glyph.setAlphaF(0.55)
    _draw_link(painter, QPointF(size * 0.42, size * 0.42), size * 0.80, glyph, size * 0.105)
    _draw_badge(painter, state, QPointF(size * 0.73, size * 0.73), size * 0.25)
    painter.end()
    return image


def paint_app_icon(size: int) -> QImage:
    image = _new_image(size)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    margin = size * 0.06
    rect = QRectF(margin, margin, size - 2 * margin, size - 2 * margin)
    gradient = QLinearGradient(rect.topLeft(), rect.bottomRight())
    gradient.setColorAt(0.0, QColor("#4c6ef5"))
    gradient.setColorAt(1.0, QColor("#1098ad"))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(gradient)
    painter.drawRoundedRect(rect, size * 0.2, size * 0.2)
    _draw_link(painter, rect.center(), rect.width() * 0.86, QColor("white"), size * 0.085)
    painter.end()
    return image


def paint_status_dot(status: str, size: int) -> QImage:
    image = _new_image(size)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    color = QColor(STATUS_COLORS.get(status, "#adb5bd"))
    center = QPointF(size / 2, size / 2)
    radius = size * 0.34
    if status == PENDING:
        painter.setPen(QPen(color, size * 0.12))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(center, radius, radius)
    else:
        painter.setPen(QPen(color.darker(130), size * 0.06))
        painter.setBrush(color)
        painter.drawEllipse(center, radius, radius)
        if status == RUNNING or status == WAITING:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("white"))
            painter.drawEllipse(center, radius * 0.38, radius * 0.38)
    painter.end()
    return image


# -- QIcons -------------------------------------------------------------------------------


def panel_variant() -> str:
    """Which tray variant suits the current colour scheme."""
    app = QGuiApplication.instance()
    if app is None:
        return "light"
    hints = QGuiApplication.styleHints()
    scheme = getattr(hints, "colorScheme", None)
    if scheme is not None:
        value = scheme()
        if value == Qt.ColorScheme.Dark:
            return "dark"
        if value == Qt.ColorScheme.Light:
            return "light"
    window = QGuiApplication.palette().color(QPalette.ColorRole.Window)
    return "dark" if window.lightness() < 128 else "light"


@cache
def tray_icon(state: str, variant: str) -> QIcon:
    path = icon_path(f"tray-{state}-{variant}.png")
    if path is not None:
        return QIcon(str(path))
    return QIcon(QPixmap.fromImage(paint_tray_icon(state, variant)))


@cache
def app_icon() -> QIcon:
    icon = QIcon()
    for size in APP_ICON_SIZES:
        path = icon_path(f"flowlink-{size}.png")
        if path is not None:
            icon.addFile(str(path))
        else:
            icon.addPixmap(QPixmap.fromImage(paint_app_icon(size)))
    return icon


@cache
def status_icon(status: str) -> QIcon:
    icon = QIcon()
    for size in (16, 32):
        icon.addPixmap(QPixmap.fromImage(paint_status_dot(status, size)))
    return icon


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status.replace("_", " ").capitalize())
