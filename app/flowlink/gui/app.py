"""`flowlink` with no subcommand: the desktop app on one data dir."""

from __future__ import annotations

import logging
import logging.handlers
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import shiboken6
from PySide6.QtCore import QSocketNotifier, Qt, qInstallMessageHandler
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox

import flowlink.gui
from flowlink.errors import FlowlinkError
from flowlink.gui.dialogs import ErrorDialog, FirstRunDialog
from flowlink.gui.icons import app_icon
from flowlink.gui.single_instance import SingleInstance
from flowlink.workspace.workspace import Workspace

log = logging.getLogger("flowlink.gui")

APP_NAME = "Flowlink"
LOG_NAME = "flowlink.log"
LOG_BYTES = 2 * 1024 * 1024
LOG_BACKUPS = 5
EXIT_OK, EXIT_ERROR = 0, 2


def ensure_application() -> QApplication:
    """The QApplication (created with the names QSettings files itself under)."""
    QApplication.setApplicationName(APP_NAME)
    QApplication.setOrganizationName(APP_NAME)
    QGuiApplication.setDesktopFileName("flowlink")
    app = QApplication.instance()
    if app is None:
        # Qt 6 scales for HiDPI by itself; the native style and colour scheme are kept.
        app = QApplication([sys.argv[0] if sys.argv else "flowlink"])
    app.setWindowIcon(app_icon())
    app.setQuitOnLastWindowClosed(False)  # the tray, or an explicit Quit, ends the app
    return app  # type: ignore[return-value]


# -- logging and unexpected errors -----------------------------------------------------------


def setup_logging(log_dir: Path) -> logging.Handler:
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        log_dir / LOG_NAME, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler


def _qt_message(mode: object, context: object, message: str) -> None:
    logging.getLogger("qt").warning("%s", message)


class ExceptionReporter:
    """sys.excepthook: log the error, then show it with a button to the log folder."""

    MAX_OPEN = 3

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.dialogs: list[ErrorDialog] = []

    def __call__(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        log.error("unexpected error", exc_info=(exc_type, exc, tb))
        if issubclass(exc_type, KeyboardInterrupt):
            app = QApplication.instance()
            if app is not None:
                app.quit()
            return
        if QApplication.instance() is None or len(self.dialogs) >= self.MAX_OPEN:
            sys.__excepthook__(exc_type, exc, tb)
            return
        message = str(exc) if isinstance(exc, FlowlinkError) else f"{exc_type.__name__}: {exc}"
        details = "".join(traceback.format_exception(exc_type, exc, tb))
        dialog = ErrorDialog(message, details, self.log_dir)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.finished.connect(lambda _result, d=dialog: self._closed(d))
        self.dialogs.append(dialog)
        dialog.show()
        dialog.raise_()

    def _closed(self, dialog: ErrorDialog) -> None:
        if dialog in self.dialogs:
            self.dialogs.remove(dialog)


@contextmanager
def excepthook(reporter: ExceptionReporter) -> Iterator[ExceptionReporter]:
    previous = sys.excepthook
    sys.excepthook = reporter
    try:
        yield reporter
    finally:
        sys.excepthook = previous


@contextmanager
def quit_on_signals(quit_app: Callable[[], None]) -> Iterator[None]:
    """SIGTERM/SIGINT quit cleanly (engine stopped, lock released) even inside app.exec()."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read)

    def drain() -> None:
        try:
            while reader.recv(64):
                pass
        except OSError:
            pass

    notifier.activated.connect(drain)
    previous_fd = signal.set_wakeup_fd(writer.fileno())
    handlers = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        handlers[signum] = signal.signal(signum, lambda _n, _f: quit_app())
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(previous_fd)
        notifier.setEnabled(False)
        reader.close()
        writer.close()


# -- the workspace ---------------------------------------------------------------------------


def open_or_create(data_dir: Path, acting_user: str | None,
                   instance: SingleInstance | None = None) -> tuple[Workspace | None, int]:
    """The workspace of ``data_dir`` (asking its name on first start), or None and an exit code."""
    if not Workspace.exists(data_dir):
        dialog = FirstRunDialog(data_dir, acting_user)
        if instance is not None:
            instance.raise_requested.connect(dialog.raise_)
            instance.raise_requested.connect(dialog.activateWindow)
        accepted = dialog.exec() == QDialog.DialogCode.Accepted
        workspace = dialog.workspace
        if instance is not None:
            instance.raise_requested.disconnect(dialog.raise_)
            instance.raise_requested.disconnect(dialog.activateWindow)
        # Deleted now: left to interpreter exit, PySide's clean-up crashes on it.
        shiboken6.delete(dialog)
        if not accepted or workspace is None:
            return None, EXIT_OK
        log.info("created workspace %s in %s", workspace.name, data_dir)
        return workspace, EXIT_OK
    try:
        return Workspace.open(data_dir, acting_user), EXIT_OK
    except FlowlinkError as exc:
        log.error("cannot open the workspace in %s: %s", data_dir, exc)
        QMessageBox.critical(None, "Flowlink cannot open the workspace", str(exc))
        return None, EXIT_ERROR


def run_app(data_dir: Path, acting_user: str | None = None, start_minimized: bool = False) -> int:
    """Open the desktop window on ``data_dir``; returns the process exit code.

    ``start_minimized``: start hidden in the system tray (as at login); where there is no
    tray the window shows anyway, so the app is never unreachable."""
    from flowlink.gui.desktop import DesktopApp

    app = ensure_application()
    data_dir = Path(data_dir).expanduser().resolve()
    instance = SingleInstance(data_dir)
    if instance.signal_running():
        print(f"Flowlink is already open on {data_dir}; its window was brought to the front.",
              file=sys.stderr)
        return EXIT_OK
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_dir = data_dir / "logs"
    handler = setup_logging(log_dir)
    previous_qt_handler = qInstallMessageHandler(_qt_message)
    log.info("Flowlink starting on %s (pid %d, Qt platform %s)", data_dir, os.getpid(),
             QGuiApplication.platformName())
    if flowlink.gui.guard_applied:
        log.warning("this PySide6 drops references to None and True on Python %d.%d; they were made immortal "
                    "to keep the app alive (use another PySide6 version or Python 3.12+)",
                    *sys.version_info[:2])
    try:
        running: list[DesktopApp] = []

        def quit_app() -> None:
            if running:
                running[0].request_quit_now()
                return
            dialog = QApplication.activeModalWidget()  # the first-run dialog
            if isinstance(dialog, QDialog):
                dialog.reject()

        with excepthook(ExceptionReporter(log_dir)), quit_on_signals(quit_app):
            instance.listen()
            first_run = not Workspace.exists(data_dir)
            workspace, code = open_or_create(data_dir, acting_user, instance)
            if workspace is None:
                return code
            desktop = DesktopApp(workspace)
            running.append(desktop)
            try:
                instance.raise_requested.connect(desktop.show_window)
                desktop.quit_requested.connect(app.quit)
                desktop.start()
                if start_minimized and desktop.tray is not None and not first_run:
                    log.info("started minimized in the system tray")
                else:
                    if start_minimized:
                        log.info("no system tray to start minimized in: showing the window")
                    desktop.show_window()
                    log.info("window shown")
                code = app.exec()
            finally:
                desktop.shutdown()
                workspace.close()
            log.info("Flowlink stopped (exit code %d)", code)
            return code
    finally:
        instance.close()
        qInstallMessageHandler(previous_qt_handler)
        logging.getLogger().removeHandler(handler)
        handler.close()
