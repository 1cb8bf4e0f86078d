"""The main window: navigation on the left, one page per concept on the right."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QSettings, QSize, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QStyle,
    QSystemTrayIcon,
    QVBoxLayout,
    QWidget,
)

from flowlink.gui.executions_page import ExecutionsPage
from flowlink.gui.feed import ChangeBatch
from flowlink.gui.flows_page import FlowsPage
from flowlink.gui.icons import app_icon
from flowlink.gui.links_page import LinksPage
from flowlink.gui.resources_pages import FilesPage, SettingsPage
from flowlink.gui.workspace_page import WorkspacePage
from flowlink.workspace.workspace import Workspace

FLOWS, EXECUTIONS, LINKS, THIS_WORKSPACE, SETTINGS, FILES = (
    "Flows", "Executions", "Links", "This workspace", "Settings", "Files")
PAGES = (FLOWS, EXECUTIONS, LINKS, THIS_WORKSPACE, SETTINGS, FILES)
PAGE_ICONS = {
    FLOWS: QStyle.StandardPixmap.SP_FileDialogDetailedView,
    EXECUTIONS: QStyle.StandardPixmap.SP_MediaPlay,
    LINKS: QStyle.StandardPixmap.SP_DriveNetIcon,
    THIS_WORKSPACE: QStyle.StandardPixmap.SP_ComputerIcon,
    SETTINGS: QStyle.StandardPixmap.SP_FileDialogContentsView,
    FILES: QStyle.StandardPixmap.SP_DirIcon,
}


def window_title(workspace_name: str) -> str:
    return f"Flowlink — {workspace_name}"


class MainWindow(QMainWindow):
    quit_requested = Signal()

    def __init__(self, workspace: Workspace, runner: Callable[[str, dict[str, Any]], int],
                 canceller: Callable[[int], None], parent: QWidget | None = None, *,
                 threaded: bool = True) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.quitting = False
        self.tray: QSystemTrayIcon | None = None
        self._told_about_tray = False
        self.setWindowTitle(window_title(workspace.name))
        self.setWindowIcon(app_icon())
        self.setMinimumSize(QSize(760, 480))

        self.flows = FlowsPage(workspace, runner)
        self.executions = ExecutionsPage(workspace, canceller, threaded=threaded)
        self.links = LinksPage(workspace)
        self.this_workspace = WorkspacePage(workspace)
        self.settings_page = SettingsPage(workspace)
        self.files = FilesPage(workspace)
        self.pages: dict[str, QWidget] = {
            FLOWS: self.flows, EXECUTIONS: self.executions, LINKS: self.links,
            THIS_WORKSPACE: self.this_workspace, SETTINGS: self.settings_page, FILES: self.files,
        }

        self.nav = QListWidget()
        self.nav.setObjectName("navigation")
        self.nav.setIconSize(QSize(20, 20))
        self.nav.setSpacing(2)
        self.stack = QStackedWidget()
        for name in PAGES:
            item = QListWidgetItem(self.style().standardIcon(PAGE_ICONS[name]), name, self.nav)
            item.setSizeHint(QSize(150, 34))
            self.stack.addWidget(self.pages[name])
        self.nav.setFixedWidth(170)
        self.nav.currentRowChanged.connect(self._page_changed)

        self.banner = QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(
            "QLabel#banner { background: #fff3bf; color: #5c3c00; border: 1px solid #fcc419;"
            " border-radius: 4px; padding: 6px 10px; }")
        self.banner.hide()

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.banner)
        right_layout.addWidget(self.stack, 1)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.addWidget(self.nav)
        layout.addWidget(right, 1)
        self.setCentralWidget(central)

        self.engine_label = QLabel()
        self.statusBar().addWidget(self.engine_label, 1)

        self.flows.execution_started.connect(self.show_execution)
        self.flows.flows_changed.connect(self.executions.refresh_filter_choices)
        for index, name in enumerate(PAGES):
            shortcut = QShortcut(QKeySequence(f"Ctrl+{index + 1}"), self)
            shortcut.activated.connect(lambda n=name: self.show_page(n))
        self.nav.setCurrentRow(PAGES.index(EXECUTIONS))
        self.resize(1180, 760)

    # -- pages --------------------------------------------------------------------------

    def show_page(self, name: str) -> None:
        self.nav.setCurrentRow(PAGES.index(name))

    def current_page(self) -> str:
        return PAGES[self.stack.currentIndex()]

    def _page_changed(self, row: int) -> None:
        if row < 0:
            return
        self.stack.setCurrentIndex(row)
        self._refresh_page(PAGES[row])

    def _refresh_page(self, name: str) -> None:
        page = self.pages[name]
        if name == EXECUTIONS:
            self.executions.refresh_filter_choices()
        elif hasattr(page, "reload"):
            page.reload()

    def show_execution(self, execution_id: int) -> None:
        self.show_page(EXECUTIONS)
        self.executions.select_execution(execution_id)

    def apply_changes(self, batch: ChangeBatch) -> None:
        self.executions.apply_changes(batch)
        if batch.store and self.isVisible():
            # Another process may have added a flow, setting, file or link: re-read the
            # list in sight (cheap; unchanged lists are left alone).
            name = self.current_page()
            if name != EXECUTIONS:
                self._refresh_page(name)

    # -- ownership ----------------------------------------------------------------------

    def set_engine_state(self, text: str, banner: str | None = None) -> None:
        self.engine_label.setText(text)
        self.this_workspace.set_engine_state(text)
        if banner:
            self.banner.setText(banner)
            self.banner.show()
        else:
            self.banner.hide()

    # -- closing ------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.save_state()
        if self.quitting:
            event.accept()
            return
        if QSystemTrayIcon.isSystemTrayAvailable() and self.tray is not None and self.tray.isVisible():
            event.ignore()
            self.hide()
            if not self._told_about_tray and self.tray.supportsMessages():
                self._told_about_tray = True
                self.tray.showMessage("Flowlink keeps running",
                                      "Flows keep running here. Open the window again from the tray icon.",
                                      QSystemTrayIcon.MessageIcon.Information, 5000)
            return
        # No tray to come back from: closing the window is quitting, so ask.
        answer = QMessageBox.question(
            self, "Quit Flowlink?",
            "Quit Flowlink? Flows started here stop running until you open it again "
            "(there is no system tray to keep it running in).",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer == QMessageBox.StandardButton.Yes:
            event.accept()
            self.quit_requested.emit()
        else:
            event.ignore()

    # -- remembered layout (no secrets: sizes and column orders only) --------------------

    def save_state(self) -> None:
        settings = QSettings()
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/state", self.saveState())
        settings.setValue("window/page", self.current_page())
        settings.setValue("flows/splitter", self.flows.splitter.saveState())
        self.executions.save_state(settings)
        settings.sync()

    def restore_state(self) -> None:
        settings = QSettings()
        geometry = settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = settings.value("window/state")
        if state is not None:
            self.restoreState(state)
        page = settings.value("window/page")
        if page in PAGES:
            self.show_page(page)
        splitter = settings.value("flows/splitter")
        if splitter is not None:
            self.flows.splitter.restoreState(splitter)
        self.executions.restore_state(settings)

    def close_models(self) -> None:
        self.executions.close_model()
