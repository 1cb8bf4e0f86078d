"""This workspace: who and where it is, who runs it, and its public identity.

Each line is one ``InfoForm`` row (label, value, buttons), so a new fact is one
``add_row`` call. Nothing secret is ever shown here: only public keys, the CA
certificate and the *name* of the secret store.
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
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from flowlink.gui.widgets import monospace_font
from flowlink.workspace.workspace import Workspace

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


class _Relay(QObject):
    arrived = Signal(str, str)


class WorkspacePage(QWidget):
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
        self.form.add_row("listen", "Listening address",
                          "Off. Other workspaces reach this one once listening can be switched on here "
                          "(it arrives with workspace links); until then use 'flowlink serve'.")
        self.form.add_row("secret_store", "Secret store", "Asking the secret store…")
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
