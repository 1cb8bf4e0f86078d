"""This workspace: who and where it is, who runs it, its public identity, and habits.

Each line is one ``InfoForm`` row (label, value, buttons), so a new fact is one
``add_row`` call. Nothing secret is ever shown here: only public keys, the CA
certificate and the *name* of the secret store.

The listening address (the same HTTPS endpoint as `flowlink serve`, off by
default) is asked for through ``listen_requested``; the app starts or stops it
off the GUI thread and reports back with ``set_listening``. The choice is
remembered in the workspace store, not in QSettings. "Start at login" uses
``flowlink.autostart`` (in the background: it writes a file or the registry).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from flowlink.gui.background import run_in_background
from flowlink.gui.notifications import notifications_enabled, set_notifications_enabled
from flowlink.gui.widgets import ErrorLabel, monospace_font
from flowlink.workspace.workspace import Workspace

LISTEN_HOSTS = (("127.0.0.1", "This computer only (127.0.0.1)"),
                ("0.0.0.0", "All networks (0.0.0.0)"))  # noqa: S104 - the user's explicit choice

log = logging.getLogger(__name__)


class InfoForm(QWidget):
    """Rows of label, selectable value and buttons."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.grid = QGridLayout(self)
        self.grid.setColumnStretch(1, 1)
        self.grid.setHorizontalSpacing(16)
        self.grid.setVerticalSpacing(10)
        self.values: dict[str, QLabel] = {}
        self.buttons: dict[str, dict[str, QPushButton]] = {}

    def add_row(self, key: str, label: str, value: str = "",
                buttons: list[tuple[str, Callable[[], object]]] | None = None, *, hint: str = "") -> QLabel:
        row = self.grid.rowCount()
        caption = QLabel(f"<b>{label}</b>")
        caption.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        caption.setContentsMargins(0, 4, 0, 0)
        value_label = QLabel(value)
        value_label.setWordWrap(True)
        value_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        value_label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        value_label.setObjectName(f"value-{key}")
        value_label.setContentsMargins(0, 4, 0, 0)
        if hint:
            value_label.setToolTip(hint)
        box = QHBoxLayout()
        self.buttons[key] = {}
        for text, callback in buttons or []:
            button = QPushButton(text)
            button.clicked.connect(lambda _checked=False, cb=callback: cb())
            box.addWidget(button)
            self.buttons[key][text] = button
        box.addStretch(1)
        top = Qt.AlignmentFlag.AlignTop
        self.grid.addWidget(caption, row, 0, top | Qt.AlignmentFlag.AlignRight)
        self.grid.addWidget(value_label, row, 1, top)
        self.grid.addLayout(box, row, 2, top)
        self.values[key] = value_label
        return value_label

    def set_value(self, key: str, text: str) -> None:
        self.values[key].setText(text)

    def value(self, key: str) -> str:
        return self.values[key].text()

    def add_widget_row(self, key: str, label: str, widget: QWidget) -> QWidget:
        row = self.grid.rowCount()
        caption = QLabel(f"<b>{label}</b>")
        caption.setContentsMargins(0, 4, 0, 0)
        top = Qt.AlignmentFlag.AlignTop
        self.grid.addWidget(caption, row, 0, top | Qt.AlignmentFlag.AlignRight)
        self.grid.addWidget(widget, row, 1, 1, 2, top)
        return widget


class ListenBox(QWidget):
    """Listen on/off, the address and port, and what is listened on now."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.enabled = QCheckBox("Listen for linked workspaces")
        self.enabled.setObjectName("listen_input")
        self.host = QComboBox()
        self.host.setObjectName("listen_host_input")
        for host, text in LISTEN_HOSTS:
            self.host.addItem(text, host)
        self.port = QSpinBox()
        self.port.setObjectName("listen_port_input")
        self.port.setRange(0, 65535)
        self.port.setSpecialValueText("any free port")
        self.port.setValue(8443)
        self.port.setMinimumWidth(130)
        self.state = QLabel("Off.")
        self.state.setObjectName("listen_state")
        self.state.setWordWrap(True)
        self.state.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error = ErrorLabel()
        self.error.setObjectName("listen_error")
        self.help = QLabel("The same HTTPS endpoint as 'flowlink serve': linked workspaces whose "
                           "Synch Config has this workspace's URL reach it here. Off by default.")
        self.help.setWordWrap(True)
        self.help.setStyleSheet("color: palette(placeholder-text);")
        controls = QHBoxLayout()
        controls.setContentsMargins(0, 0, 0, 0)
        controls.addWidget(self.enabled)
        controls.addSpacing(12)
        controls.addWidget(self.host)
        controls.addWidget(QLabel("port"))
        controls.addWidget(self.port)
        controls.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addLayout(controls)
        layout.addWidget(self.state)
        layout.addWidget(self.error)
        layout.addWidget(self.help)

    def chosen_host(self) -> str:
        return str(self.host.currentData())

    def set_host(self, host: str) -> None:
        index = self.host.findData(host)
        if index < 0:
            self.host.addItem(host, host)
            index = self.host.count() - 1
        self.host.setCurrentIndex(index)


class _Relay(QObject):
    arrived = Signal(str, str)


class WorkspacePage(QWidget):
    listen_requested = Signal(bool, str, int)  # enabled, host, port
    notifications_changed = Signal(bool)
    autostart_changed = Signal(bool, bool)  # start at login, minimized (after it was written)

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.form = InfoForm()
        ws = workspace
        role = ws.role_of(ws.acting_user)
        self.form.add_row("name", "Name", ws.name)
        self.form.add_row("user", "Acting user",
                          f"{ws.acting_user} ({(role or 'not a workspace user').replace('_', ' ')})")
        self.form.add_row("engine", "Runs flows", "…")
        self.form.add_row("data_dir", "Data folder", str(ws.data_dir),
                          [("Open", lambda: self.open_folder(ws.data_dir))])
        self.form.add_row("log_dir", "Log folder", str(ws.log_dir),
                          [("Open", lambda: self.open_folder(ws.log_dir))])
        self.form.add_row("public_key", "Public key", self._public_key_text(),
                          [("Copy public key", self.copy_public_key)],
                          hint="Give this to the other workspace of a link (its Remote public key).")
        self.form.add_row("ca_cert", "CA certificate", self._ca_text(),
                          [("Copy", self.copy_ca_cert), ("Save as…", self.save_ca_cert)],
                          hint="Workspaces that call this one over HTTPS trust this CA.")
        self.listen = ListenBox()
        self.form.add_widget_row("listen", "Listening address", self.listen)
        self.form.add_row("secret_store", "Secret store", "Asking the secret store…")
        self.start_at_login = QCheckBox("Start Flowlink at login")
        self.start_at_login.setObjectName("autostart_input")
        self.start_minimized = QCheckBox("Start minimized to the tray")
        self.start_minimized.setObjectName("autostart_minimized_input")
        self.autostart_error = ErrorLabel()
        start_box = QWidget()
        start_layout = QVBoxLayout(start_box)
        start_layout.setContentsMargins(0, 4, 0, 0)
        start_layout.setSpacing(3)
        start_layout.addWidget(self.start_at_login)
        start_layout.addWidget(self.start_minimized)
        start_layout.addWidget(self.autostart_error)
        self.form.add_widget_row("autostart", "Start", start_box)
        self.notify = QCheckBox("Notify when a link fails or a remote execution ends in error")
        self.notify.setObjectName("notifications_input")
        self.notify.setChecked(notifications_enabled())
        self.form.add_widget_row("notifications", "Notifications", self.notify)
        for key in ("public_key", "ca_cert"):
            self.form.values[key].setFont(monospace_font())
        if not ws.public_key_pem:
            self.form.buttons["public_key"]["Copy public key"].setEnabled(False)
        if not ws.ca_cert_pem:
            for button in self.form.buttons["ca_cert"].values():
                button.setEnabled(False)

        inner = QWidget()
        inner_layout = QVBoxLayout(inner)
        title = QLabel(f"<h2>{ws.name}</h2>")
        inner_layout.addWidget(title)
        inner_layout.addWidget(self.form)
        inner_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)

        self._relay = _Relay(self)
        self._relay.arrived.connect(self._set_value_from_thread, Qt.ConnectionType.QueuedConnection)
        self._ask_secret_store()

        self._listen_busy = False
        self._listening_url: str | None = None
        self._listen_reason = ""
        self.listen.enabled.toggled.connect(self._listen_toggled)
        self.set_listen_available(False, "Waiting for the workspace to start…")
        self.start_at_login.setEnabled(False)
        self.start_minimized.setEnabled(False)
        self.start_at_login.toggled.connect(self._autostart_toggled)
        self.start_minimized.toggled.connect(self._autostart_toggled)
        self.notify.toggled.connect(self._notify_toggled)
        self._read_autostart()

    # -- facts --------------------------------------------------------------------------

    def _public_key_text(self) -> str:
        try:
            return f"RSA, key id {self.workspace.key_id}"
        except Exception:  # noqa: BLE001 - an incomplete workspace still opens
            return "No key pair yet."

    def _ca_text(self) -> str:
        pem = self.workspace.ca_cert_pem
        if not pem:
            return "No CA certificate yet."
        try:
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes

            cert = x509.load_pem_x509_certificate(pem.encode())
            digest = cert.fingerprint(hashes.SHA256()).hex(":").upper()
            until = cert.not_valid_after_utc.strftime("%Y-%m-%d")
            half = len(digest) // 2 + 1
            return (f"{cert.subject.rfc4514_string()}\nvalid until {until}\n"
                    f"SHA-256 {digest[:half]}\n        {digest[half:]}")
        except Exception:  # noqa: BLE001
            log.debug("could not read the CA certificate", exc_info=True)
            return "Present (could not be read for display)."

    def _ask_secret_store(self) -> None:
        # The keyring's first call can block on D-Bus (or an unlock prompt): not on this thread.
        def ask() -> None:
            try:
                text = self.workspace.secrets.display_name
            except Exception as exc:  # noqa: BLE001 - shown as the value
                text = f"Not available: {exc}"
            try:
                self._relay.arrived.emit("secret_store", text)
            except RuntimeError:
                pass

        threading.Thread(target=ask, name="flowlink-secret-store-name", daemon=True).start()

    @Slot(str, str)
    def _set_value_from_thread(self, key: str, text: str) -> None:
        self.form.set_value(key, text)

    def set_engine_state(self, text: str) -> None:
        self.form.set_value("engine", text)

    # -- listening ------------------------------------------------------------------------

    def set_listen_setting(self, setting: dict) -> None:
        """Show the remembered host and port (and on/off, until the endpoint reports)."""
        box = self.listen
        box.enabled.blockSignals(True)
        box.enabled.setChecked(bool(setting.get("enabled")) and self._listen_available)
        box.enabled.blockSignals(False)
        box.set_host(str(setting.get("host") or "127.0.0.1"))
        box.port.setValue(int(setting.get("port") or 0))
        if setting.get("enabled") and self._listen_available:
            self._set_listen_busy(True, "Starting…")
        self._update_listen_controls()

    def set_listen_available(self, available: bool, reason: str = "") -> None:
        """False when this window cannot listen (another process runs the workspace, not an admin)."""
        self._listen_available = available
        self._listen_reason = reason
        if not available and self._listening_url is None:
            self.listen.state.setText(reason)
        elif available and self._listening_url is None and not self._listen_busy:
            self.listen.state.setText("Off.")
        self._update_listen_controls()

    def set_listening(self, url: str | None, error: str | None = None) -> None:
        """The endpoint's answer: listening on ``url``, or not (with ``error`` when it failed)."""
        self._listening_url = url
        self._set_listen_busy(False)
        box = self.listen
        box.enabled.blockSignals(True)
        box.enabled.setChecked(url is not None)
        box.enabled.blockSignals(False)
        if error:
            box.error.show_error(error)
        else:
            box.error.clear_error()
        if url is not None:
            box.state.setText(f"Listening on {url}. A linked workspace named P uses the Remote URL "
                              f"{url}/api/latest/sync_config/{self.workspace.name}/sync "
                              f"(with this workspace's CA certificate).")
        elif not self._listen_available:
            box.state.setText(self._listen_reason)
        else:
            box.state.setText("Off.")
        self._update_listen_controls()

    @property
    def listening_url(self) -> str | None:
        return self._listening_url

    def _listen_toggled(self, checked: bool) -> None:
        box = self.listen
        box.error.clear_error()
        self._set_listen_busy(True, "Starting…" if checked else "Stopping…")
        self.listen_requested.emit(checked, box.chosen_host(), box.port.value())

    def _set_listen_busy(self, busy: bool, sentence: str = "") -> None:
        self._listen_busy = busy
        if busy:
            self.listen.state.setText(sentence)
        self._update_listen_controls()

    def _update_listen_controls(self) -> None:
        box = self.listen
        usable = self._listen_available and not self._listen_busy
        box.enabled.setEnabled(usable)
        box.enabled.setToolTip("" if self._listen_available else self._listen_reason)
        # Address and port change while off: switch off, change, switch on.
        editable = usable and self._listening_url is None and not box.enabled.isChecked()
        box.host.setEnabled(editable)
        box.port.setEnabled(editable)

    # -- start at login, notifications ------------------------------------------------------

    def _read_autostart(self) -> None:
        from flowlink import autostart

        def done(result: tuple[bool, bool]) -> None:
            enabled, minimized = result
            for box, value in ((self.start_at_login, enabled), (self.start_minimized, minimized)):
                box.blockSignals(True)
                box.setChecked(value)
                box.blockSignals(False)
            self.start_at_login.setEnabled(True)
            self.start_minimized.setEnabled(enabled)

        def failed(exc: BaseException) -> None:
            self.autostart_error.show_error(f"Cannot tell whether Flowlink starts at login: {exc}")

        run_in_background(lambda: (autostart.is_enabled(), autostart.starts_minimized()), done, failed)

    def _autostart_toggled(self) -> None:
        from flowlink import autostart
        from flowlink.workspace.workspace import default_data_dir

        enabled = self.start_at_login.isChecked()
        minimized = self.start_minimized.isChecked()
        data_dir = self.workspace.data_dir
        if Path(data_dir).resolve() == Path(default_data_dir()).expanduser().resolve():
            data_dir = None  # the default: the entry keeps working if the platform moves it
        self.start_at_login.setEnabled(False)
        self.start_minimized.setEnabled(False)
        self.autostart_error.clear_error()

        def work() -> None:
            if enabled:
                autostart.enable(start_minimized=minimized, data_dir=data_dir)
            else:
                autostart.disable()

        def done(_result: object) -> None:
            self.start_at_login.setEnabled(True)
            self.start_minimized.setEnabled(enabled)
            self.autostart_changed.emit(enabled, minimized and enabled)

        def failed(exc: BaseException) -> None:
            self.autostart_error.show_error(f"Could not change starting at login: {exc}")
            self._read_autostart()

        run_in_background(work, done, failed)

    def _notify_toggled(self, checked: bool) -> None:
        set_notifications_enabled(checked)
        self.notifications_changed.emit(checked)

    # -- actions ------------------------------------------------------------------------

    @staticmethod
    def open_folder(path: Path) -> bool:
        Path(path).mkdir(parents=True, exist_ok=True)
        return QDesktopServices.openUrl(QUrl.fromLocalFile(os.fspath(path)))

    def copy_public_key(self) -> None:
        QGuiApplication.clipboard().setText(self.workspace.public_key_pem)

    def copy_ca_cert(self) -> None:
        QGuiApplication.clipboard().setText(self.workspace.ca_cert_pem)

    def save_ca_cert(self) -> None:
        path, _filter = QFileDialog.getSaveFileName(
            self, "Save the CA certificate", str(Path.home() / f"{self.workspace.name}-ca.pem"),
            "PEM certificate (*.pem *.crt);;All files (*)")
        if path:
            Path(path).write_text(self.workspace.ca_cert_pem)
