"""The Synch Config form: every field of the platform's form, plus Allowed flows.

Key fields are write-only: a key is pasted (or loaded, or generated) into a
masked field, held only until Save, and afterwards the form shows nothing but
"stored in <secret store>, key id …". Validation is the core's
(``Workspace.links``); each error appears beside its field and nothing is saved
until everything is valid. Saving, key generation and "Test link" run off the
GUI thread.
"""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from flowlink.errors import FlowlinkError, PermissionDeniedError, ValidationErrors
from flowlink.gui.background import run_in_background
from flowlink.gui.widgets import ErrorLabel, monospace_font
from flowlink.workspace.links import FIELD_LABELS, USE_WORKSPACE_KEY, SyncConfig, SyncConfigChange
from flowlink.workspace.workspace import Workspace

HELP = {
    "name": "The name of the other workspace. Flows here use it as remote_workspace_name.",
    "enabled": "If unset, the workspace sync is turned off: no exchange in either direction.",
    "remote_url": (
        "The other workspace's sync URL, like https://host:8443/api/latest/sync_config/{this}/sync. "
        "Leave it empty if the other workspace controls this one: this one then never connects "
        "out and cannot start flows there."
    ),
    "ca_cert": "The other workspace's CA certificate ('flowlink tls ca-cert' there). Only needed for "
               "self-signed HTTPS certificates.",
    "verify_ssl": "Verify the other workspace's HTTPS certificate. Messages are signed either way.",
    "own_private_key": "The RSA private key that signs this workspace's messages on this link. "
                       "Not shown after saving.",
    "remote_public_key": "The other workspace's RSA public key ('flowlink keys public --pem' there). "
                         "Not shown after saving.",
    "send_all_executions": "If unset, executions the other workspace starts here do not show up "
                           "in its executions list (it still gets their results).",
    "sync_interval": "Seconds between exchanges. Empty: sync as soon as something changes.",
    "allow_flows": "Flows the other workspace may run here, as patterns like collect_*, "
                   "separated by commas. * allows all.",
}

MAX_PASTE_CHARS = 64 * 1024  # far more than any key or certificate; Qt lays out a 1 MB line for minutes

_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)


def normalize_pem(text: str) -> str:
    """Rebuild PEM that lost its line breaks on the way (a one-line field, a chat client)."""
    match = _PEM.search(text)
    if match is None:
        return text
    label, body = match.group(1), re.sub(r"\s+", "", match.group(2))
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n"


class BoundedPlainTextEdit(QPlainTextEdit):
    """A text field that refuses a paste or drop too large to be what it asks for."""

    refused = Signal(str)

    def insertFromMimeData(self, source: QMimeData) -> None:  # noqa: N802 - Qt's name
        if source.hasText() and len(source.text()) + len(self.toPlainText()) > MAX_PASTE_CHARS:
            self.refused.emit(f"That text is larger than {MAX_PASTE_CHARS // 1024} KiB; it is not one "
                              "certificate. Paste only the certificate (-----BEGIN CERTIFICATE----- …).")
            return
        super().insertFromMimeData(source)


class KeyField(QWidget):
    """A masked, write-only key input with a line saying what is stored."""

    changed = Signal()

    def __init__(self, field: str, *, private: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.field = field
        self.private = private
        self._generated: str | None = None
        self._use_workspace_key = False
        self.edit = QLineEdit()
        self.edit.setObjectName(f"{field}_input")
        self.edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.edit.setPlaceholderText("paste a PEM key here (it stays hidden)")
        self.edit.textChanged.connect(self._edited)
        self.stored = QLabel()
        self.stored.setObjectName(f"{field}_stored")
        self.stored.setWordWrap(True)
        self.load = QPushButton("Load file…")
        self.load.clicked.connect(self._load_file)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.edit, 1)
        buttons.addWidget(self.load)
        if private:
            self.generate = QPushButton("Generate new")
            self.generate.setObjectName(f"{field}_generate")
            self.generate.clicked.connect(self._generate)
            self.workspace_key = QPushButton("Use workspace key")
            self.workspace_key.setObjectName(f"{field}_use_workspace")
            self.workspace_key.clicked.connect(self._choose_workspace_key)
            buttons.addWidget(self.generate)
            buttons.addWidget(self.workspace_key)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.stored)
        self.generated_public: str | None = None

    def value(self) -> str | None:
        """What to save: None = unchanged; USE_WORKSPACE_KEY; or PEM text."""
        if self._use_workspace_key:
            return USE_WORKSPACE_KEY
        if self._generated is not None:
            return self._generated
        text = self.edit.text()
        return normalize_pem(text) if text.strip() else None

    def set_stored(self, sentence: str) -> None:
        self.stored.setText(sentence)

    def forget(self) -> None:
        """After saving: nothing of the key stays in any widget."""
        self._generated = None
        self._use_workspace_key = False
        self.generated_public = None
        self.edit.blockSignals(True)
        self.edit.clear()
        self.edit.blockSignals(False)

    def set_read_only(self, read_only: bool) -> None:
        for widget in (self.edit, self.load, getattr(self, "generate", None),
                       getattr(self, "workspace_key", None)):
            if widget is not None:
                widget.setEnabled(not read_only)

    def _edited(self) -> None:
        self._generated = None
        self._use_workspace_key = False
        self.changed.emit()

    def _load_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"Load {FIELD_LABELS[self.field]}", str(Path.home()),
                                              "PEM files (*.pem *.key *.pub *.txt);;All files (*)")
        if path:
            self.load_path(Path(path))

    def load_path(self, path: Path) -> None:
        try:
            data = path.read_bytes()[: 1024 * 1024]
        except OSError as exc:
            self.stored.setText(f"Cannot read {path}: {exc.strerror}.")
            return
        self.edit.setText(data.decode("utf-8", "replace"))

    def _generate(self) -> None:
        from flowlink.workspace import identity

        self.generate.setEnabled(False)
        self.stored.setText("Generating a new RSA-3072 key…")

        def make() -> tuple[str, str, str]:
            key = identity.generate_private_key()
            return (identity.private_key_to_pem(key), identity.public_key_to_pem(key.public_key()),
                    identity.key_id(key.public_key()))

        def done(result: tuple[str, str, str]) -> None:
            self.generate.setEnabled(True)
            self.edit.blockSignals(True)
            self.edit.clear()
            self.edit.blockSignals(False)
            self._generated, self.generated_public, kid = result
            self._use_workspace_key = False
            self.stored.setText(f"New key, key id {kid}: saved with the form. Give its public key "
                                "(Copy public key) to the other workspace.")
            self.changed.emit()

        def failed(exc: BaseException) -> None:
            self.generate.setEnabled(True)
            self.stored.setText(f"Could not generate a key: {exc}")

        run_in_background(make, done, failed)

    def _choose_workspace_key(self) -> None:
        self.forget()
        self._use_workspace_key = True
        self.stored.setText("Will sign with the workspace key after saving.")
        self.changed.emit()


class SyncConfigForm(QWidget):
    """Add or edit the Synch Config for one linked workspace."""

    saved = Signal(str)
    busy_changed = Signal(bool)
    tested = Signal(str)

    def __init__(self, workspace: Workspace, name: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.name = name
        self.errors: dict[str, ErrorLabel] = {}
        self.setObjectName("syncConfigForm")

        self.read_only_note = QLabel()
        self.read_only_note.setObjectName("readOnlyNote")
        self.read_only_note.setWordWrap(True)
        self.read_only_note.hide()

        self.name_edit = QLineEdit(name or "")
        self.name_edit.setObjectName("name_input")
        self.name_edit.setReadOnly(name is not None)
        self.enabled = QCheckBox("Enabled")
        self.enabled.setObjectName("enabled_input")
        self.enabled.setChecked(True)
        self.remote_url = QLineEdit()
        self.remote_url.setObjectName("remote_url_input")
        self.remote_url.setPlaceholderText(f"https://host:8443/api/latest/sync_config/{workspace.name}/sync")
        self.ca_cert = BoundedPlainTextEdit()
        self.ca_cert.setObjectName("ca_cert_input")
        self.ca_cert.setFont(monospace_font())
        self.ca_cert.setPlaceholderText("-----BEGIN CERTIFICATE----- …")
        self.ca_cert.setFixedHeight(90)
        self.ca_load = QPushButton("Load file…")
        self.ca_load.clicked.connect(self._load_ca)
        self.verify_ssl = QCheckBox("Verify SSL certificates")
        self.verify_ssl.setObjectName("verify_ssl_input")
        self.verify_ssl.setChecked(True)
        self.own_key = KeyField("own_private_key", private=True)
        self.remote_key = KeyField("remote_public_key", private=False)
        self.copy_public = QPushButton("Copy public key")
        self.copy_public.setObjectName("copy_public_key")
        self.copy_public.clicked.connect(self._copy_public)
        self.copy_public.setEnabled(False)
        self.own_key.changed.connect(lambda: self.copy_public.setEnabled(self.own_key.generated_public is not None))
        self.send_all = QCheckBox("Send all executions")
        self.send_all.setObjectName("send_all_executions_input")
        self.sync_interval = QLineEdit()
        self.sync_interval.setObjectName("sync_interval_input")
        self.sync_interval.setPlaceholderText("empty: immediately")
        self.allow_flows = QLineEdit("*")
        self.allow_flows.setObjectName("allow_flows_input")

        form = QFormLayout()
        # Every field takes the full width: wrapped help under a check box otherwise gets the
        # check box's width and is cut off.
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        ca_box = QWidget()
        ca_layout = QHBoxLayout(ca_box)
        ca_layout.setContentsMargins(0, 0, 0, 0)
        ca_layout.addWidget(self.ca_cert, 1)
        ca_layout.addWidget(self.ca_load, 0, Qt.AlignmentFlag.AlignTop)
        own_box = QWidget()
        own_layout = QVBoxLayout(own_box)
        own_layout.setContentsMargins(0, 0, 0, 0)
        own_layout.addWidget(self.own_key)
        own_layout.addWidget(self.copy_public, 0, Qt.AlignmentFlag.AlignLeft)
        rows: list[tuple[str, QWidget]] = [
            ("name", self.name_edit), ("enabled", self.enabled), ("remote_url", self.remote_url),
            ("ca_cert", ca_box), ("verify_ssl", self.verify_ssl), ("own_private_key", own_box),
            ("remote_public_key", self.remote_key), ("send_all_executions", self.send_all),
            ("sync_interval", self.sync_interval), ("allow_flows", self.allow_flows),
        ]
        for field, widget in rows:
            box = QWidget()
            column = QVBoxLayout(box)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(2)
            column.addWidget(widget)
            help_text = QLabel(HELP[field].replace("{this}", workspace.name))
            help_text.setWordWrap(True)
            help_text.setObjectName(f"{field}_help")
            help_text.setStyleSheet("color: palette(placeholder-text);")
            column.addWidget(help_text)
            error = ErrorLabel()
            error.setObjectName(f"{field}_error")
            column.addWidget(error)
            self.errors[field] = error
            form.addRow(FIELD_LABELS[field], box)

        self.status = QLabel()
        self.status.setObjectName("formStatus")
        self.status.setWordWrap(True)
        self.save_button = QPushButton("Save")
        self.save_button.setObjectName("save")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        self.test_button = QPushButton("Test link")
        self.test_button.setObjectName("test_link")
        self.test_button.clicked.connect(self.test_link)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.test_button)
        buttons.addWidget(self.save_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.read_only_note)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addStretch(1)  # a taller window leaves room below, not inside the fields

        self.ca_cert.refused.connect(self.errors["ca_cert"].show_error)
        self._store_name = "the OS keyring" if workspace.secret_store_kind == "keyring" else "the file store"
        self._apply_role()
        self._ask_store_name()
        if name is not None:
            self.load(self.ws.links.get(name))
        else:
            self.own_key.set_stored("Not set: signs with the workspace key "
                                    f"(key id {self.ws.key_id}).")
            self.remote_key.set_stored("Not set.")
            self.test_button.setEnabled(False)

    # -- state ----------------------------------------------------------------

    def _apply_role(self) -> None:
        if self.ws.is_admin:
            return
        self.read_only_note.setText(
            f"Only an organization admin can change workspace links; you are '{self.ws.acting_user}'.")
        self.read_only_note.show()
        for widget in (self.name_edit, self.remote_url, self.sync_interval, self.allow_flows):
            widget.setReadOnly(True)
        self.ca_cert.setReadOnly(True)
        for widget in (self.enabled, self.verify_ssl, self.send_all, self.ca_load, self.save_button,
                       self.copy_public):
            widget.setEnabled(False)
        self.own_key.set_read_only(True)
        self.remote_key.set_read_only(True)

    def _ask_store_name(self) -> None:
        # Naming the keyring backend may talk to D-Bus: never on the GUI thread.
        secrets = self.ws.secrets

        def done(display_name: str) -> None:
            self._store_name = display_name
            if self.name is not None:
                self._show_stored(self.ws.links.get(self.name))

        run_in_background(lambda: secrets.display_name, done, lambda exc: None)

    def _show_stored(self, config: SyncConfig) -> None:
        store = self._store_name
        if config.own_key_id is None:
            self.own_key.set_stored(f"The workspace key, key id {self.ws.key_id}.")
        else:
            self.own_key.set_stored(f"Stored in {store}, key id {config.own_key_id}.")
        self.remote_key.set_stored(f"Stored in {store}, key id {config.remote_key_id}.")

    @property
    def read_only(self) -> bool:
        return not self.ws.is_admin

    def load(self, config: SyncConfig) -> None:
        self.name = config.name
        self.name_edit.setText(config.name)
        self.name_edit.setReadOnly(True)
        self.enabled.setChecked(config.enabled)
        self.remote_url.setText(config.remote_url or "")
        self.ca_cert.setPlainText(config.ca_cert or "")
        self.verify_ssl.setChecked(config.verify_ssl)
        self.send_all.setChecked(config.send_all_executions)
        self.sync_interval.setText("" if config.sync_interval is None else str(config.sync_interval))
        self.allow_flows.setText(", ".join(config.allow_flows))
        self._show_stored(config)
        self.own_key.forget()
        self.remote_key.forget()
        self.test_button.setEnabled(True)

    def change(self) -> SyncConfigChange:
        interval = self.sync_interval.text()
        return SyncConfigChange(
            enabled=self.enabled.isChecked(),
            remote_url=self.remote_url.text(),
            ca_cert=normalize_pem(self.ca_cert.toPlainText()),
            verify_ssl=self.verify_ssl.isChecked(),
            own_private_key=self.own_key.value(),
            remote_public_key=self.remote_key.value(),
            send_all_executions=self.send_all.isChecked(),
            sync_interval=interval,
            allow_flows=self.allow_flows.text(),
        )

    # -- actions ----------------------------------------------------------------

    def clear_errors(self) -> None:
        for label in self.errors.values():
            label.clear_error()

    def show_errors(self, errors: dict[str, str]) -> None:
        for field, sentence in errors.items():
            self.errors.get(field, self.errors["name"]).show_error(sentence)

    def _busy(self, busy: bool, sentence: str = "") -> None:
        self.save_button.setEnabled(not busy and not self.read_only)
        self.test_button.setEnabled(not busy and self.name is not None)
        self.status.setText(sentence)
        self.busy_changed.emit(busy)

    def save(self) -> None:
        if self.read_only:
            return
        self.clear_errors()
        name = self.name or self.name_edit.text().strip()
        change = self.change()
        adding = self.name is None
        links = self.ws.links
        self._busy(True, "Saving…")

        def work() -> SyncConfig:
            return links.add(name, change) if adding else links.update(name, change)

        def done(config: SyncConfig) -> None:
            self._busy(False, " ".join(["Saved.", *change.warnings]))
            self.load(config)
            self.saved.emit(config.name)

        def failed(exc: BaseException) -> None:
            if isinstance(exc, ValidationErrors):
                self.show_errors(exc.errors)
                self._busy(False, "Nothing was saved: correct the fields marked in red.")
            elif isinstance(exc, PermissionDeniedError | FlowlinkError):
                self._busy(False, f"Nothing was saved: {exc}")
            else:
                self._busy(False, f"Nothing was saved: unexpected {type(exc).__name__}; the log has details.")
                raise exc

        run_in_background(work, done, failed)

    def test_link(self) -> None:
        """One checked exchange with the saved keys and the form's URL and TLS settings."""
        if self.name is None:
            return
        from dataclasses import replace

        config = self.ws.links.get(self.name)
        candidate = replace(
            config,
            remote_url=self.remote_url.text().strip() or None,
            ca_cert=self.ca_cert.toPlainText().strip() or None,
            verify_ssl=self.verify_ssl.isChecked(),
        )
        keys_changed = self.own_key.value() is not None or self.remote_key.value() is not None
        workspace = self.ws
        self._busy(True, "Testing the link…")

        def work() -> float:
            from flowlink.link.client import LinkClient
            from flowlink.link.exchange import LinkExchange

            client = LinkClient(LinkExchange(workspace), candidate)
            try:
                return client.probe()
            finally:
                client.close()

        def done(seconds: float) -> None:
            note = " (with the saved keys: save to test the new ones)" if keys_changed else ""
            sentence = f"OK in {seconds * 1000:.0f} ms{note}."
            self._busy(False, sentence)
            self.tested.emit(sentence)

        def failed(exc: BaseException) -> None:
            sentence = str(exc) if isinstance(exc, FlowlinkError) else f"The test failed: {type(exc).__name__}."
            self._busy(False, sentence)
            self.tested.emit(sentence)

        run_in_background(work, done, failed)

    def _load_ca(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load CA certificate", str(Path.home()),
                                              "Certificates (*.pem *.crt *.cer);;All files (*)")
        if path:
            try:
                data = Path(path).read_bytes()[: MAX_PASTE_CHARS + 1]
                if len(data) > MAX_PASTE_CHARS:
                    self.errors["ca_cert"].show_error(f"{path} is larger than 64 KiB; it is not one certificate.")
                    return
                self.ca_cert.setPlainText(data.decode("utf-8", "replace"))
            except OSError as exc:
                self.errors["ca_cert"].show_error(f"Cannot read {path}: {exc.strerror}.")

    def _copy_public(self) -> None:
        if self.own_key.generated_public:
            QGuiApplication.clipboard().setText(self.own_key.generated_public)
            self.status.setText("The new public key is on the clipboard.")
