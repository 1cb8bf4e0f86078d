"""One window per data dir: a second launch asks the first to raise its window, then exits.

The first instance listens on a local socket whose name is a hash of the user and the
resolved data dir (short, no path characters, different per data dir and per user).
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import os
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QAbstractSocket, QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

RAISE = b"raise\n"


def server_name(data_dir: Path) -> str:
    try:
        user = str(os.getuid()) if hasattr(os, "getuid") else getpass.getuser()
    except (KeyError, OSError):
        user = "user"
    key = f"{user}\0{Path(data_dir).expanduser().resolve()}"
    return "flowlink-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:24]


class SingleInstance(QObject):
    raise_requested = Signal()

    def __init__(self, data_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = server_name(data_dir)
        self.server: QLocalServer | None = None

    def signal_running(self, timeout_ms: int = 1000) -> bool:
        """True when another instance listens (it was asked to raise its window)."""
        socket = QLocalSocket()
        socket.connectToServer(self.name)
        if not socket.waitForConnected(timeout_ms):
            return False
        socket.write(RAISE)
        socket.flush()
        socket.waitForBytesWritten(timeout_ms)
        socket.disconnectFromServer()
        if socket.state() != QLocalSocket.LocalSocketState.UnconnectedState:
            socket.waitForDisconnected(timeout_ms)
        return True

    def listen(self) -> bool:
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            if server.serverError() != QAbstractSocket.SocketError.AddressInUseError or self.signal_running(200):
                log.warning("single-instance socket %s unavailable: %s", self.name, server.errorString())
                return False
            # Left over by an instance that crashed: nobody answers on it.
            QLocalServer.removeServer(self.name)
            if not server.listen(self.name):
                log.warning("single-instance socket %s unavailable: %s", self.name, server.errorString())
                return False
        server.newConnection.connect(self._accept)
        self.server = server
        return True

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    # Connections are reached through sender(), never kept in Python: Qt owns and deletes them.

    def _accept(self) -> None:
        assert self.server is not None
        while self.server.hasPendingConnections():
            connection = self.server.nextPendingConnection()
            connection.readyRead.connect(self._ready_read)
            connection.disconnected.connect(self._disconnected)
            self._consume(connection)

    def _ready_read(self) -> None:
        connection = self.sender()
        if isinstance(connection, QLocalSocket):
            self._consume(connection)

    def _disconnected(self) -> None:
        connection = self.sender()
        if isinstance(connection, QLocalSocket):
            self._consume(connection)
            connection.deleteLater()

    def _consume(self, connection: QLocalSocket) -> None:
        pending = bytes(connection.property("flowlink-pending") or b"")
        data = pending + bytes(connection.readAll().data())
        while b"\n" in data:
            line, data = data.split(b"\n", 1)
            if line.strip() == RAISE.strip():
                log.info("another launch asked to raise the window")
                self.raise_requested.emit()
        connection.setProperty("flowlink-pending", data[-64:])
