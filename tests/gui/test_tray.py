"""TrayIcon: an icon per state, the tooltip per link, the menu; and the real tray under Xvfb."""

from __future__ import annotations

import shutil

import pytest
from guihelpers import require_real
from PySide6.QtGui import QColor, QGuiApplication, QImage
from PySide6.QtWidgets import QSystemTrayIcon

from flowlink.gui.icons import (
    DISABLED,
    ERROR,
    PAUSED_STATE,
    STATE_COLORS,
    SYNCED,
    SYNCING,
    TRAY_STATES,
    VARIANTS,
    icon_path,
    tray_icon,
)
from flowlink.gui.notifications import Notifier
from flowlink.gui.tray import TrayIcon, overall_state
from flowlink.link.syncer import LinkStatus


def image_of(icon, size: int = 32) -> QImage:
    return icon.pixmap(size, size).toImage().convertToFormat(QImage.Format.Format_ARGB32)


def test_every_state_has_its_own_icon_from_resources(qapp):
    for variant in VARIANTS:
        images = {}
        for state in TRAY_STATES:
            assert icon_path(f"tray-{state}-{variant}.png") is not None, f"resources lack {state}-{variant}"
            image = image_of(tray_icon(state, variant))
            assert not image.isNull()
            images[state] = bytes(image.constBits())
        assert len(set(images.values())) == len(TRAY_STATES), f"two {variant} states look the same"
    assert image_of(tray_icon(SYNCED, "light")) != image_of(tray_icon(SYNCED, "dark"))


def test_state_follows_the_links_and_tooltip_names_each(qtbot):
    tray = TrayIcon("desk")
    icons = {}
    tooltips = {}
    for state, sentence in ((SYNCED, ""), (SYNCING, "sending 3 messages"), (ERROR, "TLS: unknown CA"),
                            (SYNCED, "")):
        tray.set_links([("laptop-b", state, sentence), ("intranet", SYNCED, "")])
        icons.setdefault(state, image_of(tray.icon()))
        tooltips[state] = tray.toolTip()
        assert tray.state == state
    assert tooltips[ERROR].splitlines() == ["Flowlink — desk", "laptop-b: error: TLS: unknown CA",
                                            "intranet: synced"]
    assert "laptop-b: syncing: sending 3 messages" in tooltips[SYNCING]
    assert len({bytes(i.constBits()) for i in icons.values()}) == 3
    assert image_of(tray.icon()) == icons[SYNCED]

    tray.set_paused(True)
    assert tray.state == PAUSED_STATE and "Sync is paused." in tray.toolTip()
    assert tray.pause_action.text() == "Resume sync" and not tray.sync_action.isEnabled()
    tray.set_paused(False)
    assert tray.state == SYNCED and tray.pause_action.text() == "Pause sync"

    tray.set_links([])
    assert tray.state == DISABLED and "No linked workspaces." in tray.toolTip()
    assert not tray.sync_action.isEnabled() and not tray.pause_action.isEnabled()
    with pytest.raises(ValueError):
        tray.set_links([("x", "sleepy", "")])


def test_menu_actions_emit_their_signals(qtbot):
    tray = TrayIcon("desk")
    tray.set_links([("laptop-b", SYNCED, "")])
    with qtbot.waitSignal(tray.show_requested):
        tray.show_action.trigger()
    with qtbot.waitSignal(tray.sync_now_requested):
        tray.sync_action.trigger()
    with qtbot.waitSignal(tray.pause_requested, check_params_cb=lambda paused: paused is True):
        tray.pause_action.trigger()
    tray.set_paused(True)
    with qtbot.waitSignal(tray.pause_requested, check_params_cb=lambda paused: paused is False):
        tray.pause_action.trigger()
    with qtbot.waitSignal(tray.quit_requested):
        tray.quit_action.trigger()
    with qtbot.waitSignal(tray.show_requested):
        tray.activated.emit(QSystemTrayIcon.ActivationReason.Trigger)
    assert [a.text() for a in tray.menu.actions() if not a.isSeparator()] == [
        "Show window", "Sync now", "Resume sync", "Quit Flowlink"]


def test_falling_into_error_notifies_once(qtbot, workspace, monkeypatch):
    """The Notifier decides (first report: no balloon for old errors); the tray shows it."""
    tray = TrayIcon("desk")
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(tray, "isVisible", lambda: True)
    monkeypatch.setattr(tray, "supportsMessages", lambda: True)
    monkeypatch.setattr(tray, "showMessage", lambda title, text, *a: shown.append((title, text)))
    notifier = Notifier(workspace)
    notifier.notified.connect(tray.notify)

    def report(state: str, sentence: str = "") -> None:
        notifier.links_changed({"laptop-b": LinkStatus("laptop-b", state, sentence),
                                "old": LinkStatus("old", "error", "was already failing")})

    report("synced")
    report("error", "clock skew of 90 s")
    report("error", "clock skew of 90 s")
    assert shown == [("Link to laptop-b failed", "clock skew of 90 s")]
    tray.notifications_enabled = False  # the tray can be quiet on its own too
    report("synced")
    report("error", "refused")
    assert len(shown) == 1
    tray.notifications_enabled = True
    notifier.set_enabled(False)
    report("synced")
    report("error", "refused")
    assert len(shown) == 1


def test_overall_state_puts_errors_first():
    assert overall_state([("a", SYNCED, ""), ("b", ERROR, "x"), ("c", SYNCING, "")]) == ERROR
    assert overall_state([("a", SYNCED, ""), ("c", SYNCING, "")]) == SYNCING
    assert overall_state([("a", DISABLED, ""), ("c", SYNCED, "")]) == SYNCED
    assert overall_state([("a", PAUSED_STATE, ""), ("c", SYNCED, "")]) == PAUSED_STATE
    assert overall_state([("a", PAUSED_STATE, ""), ("c", SYNCING, "")]) == SYNCING
    assert overall_state([("a", DISABLED, "")]) == DISABLED
    assert overall_state([]) == DISABLED


@pytest.mark.xdist_group("tray")  # tray icons of one display share the tray: one at a time
def test_real_tray_shows_each_state(qtbot):
    """Under Xvfb with a tray host (trayer), the icon is really in the tray and changes."""
    require_real(QSystemTrayIcon.isSystemTrayAvailable() and shutil.which("trayer") is not None,
                 "a system tray (Xvfb + trayer)")
    tray = TrayIcon("desk")
    tray.notifications_enabled = False  # a balloon over the icon would change the pixels
    tray.show()
    try:
        qtbot.waitUntil(lambda: not tray.geometry().isEmpty(), timeout=10_000)
        screen = QGuiApplication.primaryScreen()
        badges = {state: QColor(STATE_COLORS[state]) for state in (SYNCED, SYNCING, ERROR, PAUSED_STATE)}

        def badges_in_tray() -> set[str]:
            """Which state colours the screen shows where the tray has our icon."""
            area = tray.geometry()
            image = screen.grabWindow(0, area.x(), area.y(), area.width(), area.height()).toImage()
            colours = {image.pixel(x, y) for x in range(image.width()) for y in range(image.height())}
            found = set()
            for state, badge in badges.items():
                for rgb in colours:
                    c = QColor(rgb)
                    if abs(c.red() - badge.red()) + abs(c.green() - badge.green()) + abs(c.blue() - badge.blue()) < 40:
                        found.add(state)
                        break
            return found

        for state, sentence in ((SYNCED, ""), (SYNCING, "sending"), (ERROR, "refused"), (SYNCED, "")):
            tray.set_links([("laptop-b", state, sentence)])
            assert tray.toolTip().endswith(f"laptop-b: {state}" + (f": {sentence}" if sentence else ""))
            # The tray host repaints on its own schedule (and windows of other tests may pass over
            # it): wait until the screen shows this state's badge and no other.
            qtbot.waitUntil(lambda s=state: badges_in_tray() == {s}, timeout=10_000)
        tray.set_paused(True)
        qtbot.waitUntil(lambda: badges_in_tray() == {PAUSED_STATE}, timeout=10_000)
    finally:
        tray.hide()
