"""The tray icon: one picture per sync state, a tooltip naming each link's state, a menu."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtGui import QAction, QGuiApplication, QIcon
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from flowlink.gui.icons import (
    DISABLED,
    ERROR,
    PAUSED_STATE,
    SYNCED,
    SYNCING,
    TRAY_STATES,
    panel_variant,
    tray_icon,
)

STATE_WORDS = {
    SYNCED: "synced",
    SYNCING: "syncing",
    ERROR: "error",
    PAUSED_STATE: "paused",
    DISABLED: "disabled",
}

LinkState = tuple[str, str, str]  # (link name, state, sentence)


def overall_state(links: Iterable[LinkState]) -> str:
    """The state the icon shows for several links: any error, else any syncing, else any
    paused; disabled when every link is (or there is none); synced otherwise."""
    states = {state for _name, state, _sentence in links}
    for state in (ERROR, SYNCING, PAUSED_STATE, SYNCED):
        if state in states:
            return state
    return DISABLED


class TrayIcon(QSystemTrayIcon):
    show_requested = Signal()
    sync_now_requested = Signal()
    pause_requested = Signal(bool)  # True: pause, False: resume
    quit_requested = Signal()

    def __init__(self, workspace_name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.workspace_name = workspace_name
        self._links: list[LinkState] = []
        self._paused = False
        self._state = DISABLED
        self._variant = panel_variant()
        self._shown_variant: str | None = None
        self.notifications_enabled = True

        self.menu = QMenu()
        self.show_action = QAction("Show window", self.menu)
        self.sync_action = QAction("Sync now", self.menu)
        self.pause_action = QAction("Pause sync", self.menu)
        self.quit_action = QAction("Quit Flowlink", self.menu)
        self.show_action.triggered.connect(self.show_requested)
        self.sync_action.triggered.connect(self.sync_now_requested)
        self.pause_action.triggered.connect(lambda: self.pause_requested.emit(not self._paused))
        self.quit_action.triggered.connect(self.quit_requested)
        self.menu.addAction(self.show_action)
        self.menu.addSeparator()
        self.menu.addAction(self.sync_action)
        self.menu.addAction(self.pause_action)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        self.setContextMenu(self.menu)
        self.activated.connect(self._activated)
        app = QGuiApplication.instance()
        if app is not None:
            app.installEventFilter(self)
        self._apply(DISABLED, force=True)
        self._refresh()

    # -- state --------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def links(self) -> list[LinkState]:
        return list(self._links)

    def set_links(self, links: Iterable[LinkState]) -> None:
        """Each link as (name, state, sentence); the icon shows the most urgent state.
        (What deserves a notification is the Notifier's call, not the icon's.)"""
        links = list(links)
        for name, state, _sentence in links:
            if state not in TRAY_STATES:
                raise ValueError(f"link {name!r} has an unknown state {state!r}")
        self._links = links
        self._refresh()

    def set_paused(self, paused: bool) -> None:
        self._paused = paused
        self._refresh()

    def set_state(self, state: str) -> None:
        """Show ``state`` whatever the links say (until the next set_links/set_paused)."""
        if state not in TRAY_STATES:
            raise ValueError(f"unknown tray state {state!r}")
        self._apply(state)

    def icon_for(self, state: str) -> QIcon:
        return tray_icon(state, self._variant)

    def _refresh(self) -> None:
        self._apply(PAUSED_STATE if self._paused else overall_state(self._links))
        has_links = bool(self._links)
        self.sync_action.setEnabled(has_links and not self._paused)
        self.pause_action.setEnabled(has_links)
        self.pause_action.setText("Resume sync" if self._paused else "Pause sync")

    def _apply(self, state: str, *, force: bool = False) -> None:
        # Link reports arrive often during a sync; the tray host repaints only on a change.
        if force or state != self._state or self._shown_variant != self._variant:
            self.setIcon(self.icon_for(state))
            self._shown_variant = self._variant
        self._state = state
        tooltip = self.tooltip_text()
        if tooltip != self.toolTip():
            self.setToolTip(tooltip)

    def tooltip_text(self) -> str:
        lines = [f"Flowlink — {self.workspace_name}"]
        if self._paused:
            lines.append("Sync is paused.")
        if not self._links:
            lines.append("No linked workspaces.")
        for name, state, sentence in self._links:
            words = STATE_WORDS[state] + (f": {sentence}" if sentence else "")
            lines.append(f"{name}: {words}")
        return "\n".join(lines)

    # -- notifications and events ---------------------------------------------------------

    def notify(self, title: str, message: str) -> bool:
        if not self.notifications_enabled or not self.isVisible() or not self.supportsMessages():
            return False
        self.showMessage(title, message, QSystemTrayIcon.MessageIcon.Warning, 10_000)
        return True

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.show_requested.emit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() in (QEvent.Type.ApplicationPaletteChange, QEvent.Type.ThemeChange) \
                and watched is QGuiApplication.instance():
            variant = panel_variant()
            if variant != self._variant:
                self._variant = variant
                self._apply(self._state)
        return False
