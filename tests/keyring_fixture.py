"""A private, real Secret Service for the test session: dbus-daemon + gnome-keyring-daemon.

Everything lives in a temporary folder (HOME, XDG dirs, the bus socket), so tests never touch
the real user's login keyring, and both daemons are stopped when the session ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import require_real

SECRETS_BUS_NAME = "org.freedesktop.secrets"
WHAT = "a real Secret Service (dbus-daemon + gnome-keyring-daemon)"
_START_TIMEOUT = 15.0
_ENV_VARS = (
    "HOME",
    "XDG_RUNTIME_DIR",
    "XDG_DATA_HOME",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "DBUS_SESSION_BUS_ADDRESS",
    "PYTHON_KEYRING_BACKEND",
    "GNOME_KEYRING_CONTROL",
)


@dataclass(frozen=True)
class SessionKeyring:
    bus_address: str
    root: Path
    data_home: Path


@pytest.fixture(scope="session")
def session_keyring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SessionKeyring]:
    dbus_daemon = shutil.which("dbus-daemon")
    keyring_daemon = shutil.which("gnome-keyring-daemon")
    require_real(bool(dbus_daemon and keyring_daemon), WHAT)
    assert dbus_daemon and keyring_daemon

    root = tmp_path_factory.mktemp("keyring")
    dirs = {name: root / name for name in ("home", "runtime", "data", "config", "cache")}
    for path in dirs.values():
        path.mkdir(mode=0o700)
    saved = {name: os.environ.get(name) for name in _ENV_VARS}
    os.environ.update(
        HOME=str(dirs["home"]),
        XDG_RUNTIME_DIR=str(dirs["runtime"]),
        XDG_DATA_HOME=str(dirs["data"]),
        XDG_CONFIG_HOME=str(dirs["config"]),
        XDG_CACHE_HOME=str(dirs["cache"]),
    )
    os.environ.pop("PYTHON_KEYRING_BACKEND", None)
    os.environ.pop("GNOME_KEYRING_CONTROL", None)

    processes: list[subprocess.Popen[bytes]] = []
    failure = ""
    address = ""
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        bus = subprocess.Popen(
            [
                dbus_daemon,
                "--session",
                "--nofork",
                f"--address=unix:path={dirs['runtime'] / 'bus'}",
                "--print-address=1",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        processes.append(bus)
        address = _read_line(bus, deadline)
        if not address:
            failure = "dbus-daemon did not start"
        else:
            os.environ["DBUS_SESSION_BUS_ADDRESS"] = address
            with open(root / "gnome-keyring.log", "wb") as log:
                daemon = subprocess.Popen(
                    [keyring_daemon, "--foreground", "--unlock", "--components=secrets"],
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=log,
                )
            processes.append(daemon)
            assert daemon.stdin is not None
            # --unlock reads the login keyring's password from stdin up to EOF.
            daemon.stdin.write(b"flowlink-test-keyring")
            daemon.stdin.close()
            if not _wait_for_name(address, SECRETS_BUS_NAME, daemon, deadline):
                failure = f"gnome-keyring-daemon did not own {SECRETS_BUS_NAME} in time"
    except OSError as exc:
        failure = f"starting the daemons failed ({exc.strerror})"

    try:
        if failure:
            require_real(False, f"{WHAT}: {failure}")
        _reset_keyring_backend()
        yield SessionKeyring(bus_address=address, root=root, data_home=dirs["data"])
    finally:
        for process in reversed(processes):
            _stop(process)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _reset_keyring_backend()


def _reset_keyring_backend() -> None:
    """Make keyring detect its backend again, against the bus in os.environ now."""
    import keyring.backend
    import keyring.core

    # keyring remembers both the viable backends and the chosen one for the whole process;
    # reset() raises KeyError when nothing was remembered yet.
    with contextlib.suppress(KeyError):
        keyring.backend.get_all_keyring.reset()
    keyring.core.init_backend()


def _read_line(process: subprocess.Popen[bytes], deadline: float) -> str:
    assert process.stdout is not None
    fd = process.stdout.fileno()
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return ""
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return ""
        chunk = os.read(fd, 4096)
        if not chunk:
            return ""
        data += chunk
    return data.split(b"\n", 1)[0].decode().strip()


def _wait_for_name(
    address: str, name: str, daemon: subprocess.Popen[bytes], deadline: float
) -> bool:
    """Wait for ``name`` on the bus: woken by NameOwnerChanged, re-checked in short slices."""
    from jeepney import MatchRule
    from jeepney.bus_messages import message_bus
    from jeepney.io.blocking import open_dbus_connection

    rule = MatchRule(
        type="signal",
        sender="org.freedesktop.DBus",
        interface="org.freedesktop.DBus",
        member="NameOwnerChanged",
        path="/org/freedesktop/DBus",
    )
    rule.add_arg_condition(0, name)
    with open_dbus_connection(bus=address) as connection:
        with connection.filter(rule) as changes:
            connection.send_and_get_reply(message_bus.AddMatch(rule), timeout=5)
            while time.monotonic() < deadline:
                reply = connection.send_and_get_reply(message_bus.NameHasOwner(name), timeout=5)
                if reply.body[0]:
                    return True
                if daemon.poll() is not None:
                    return False
                try:
                    # Not a fixed sleep: returns as soon as the name changes owner.
                    connection.recv_until_filtered(changes, timeout=0.2)
                except TimeoutError:
                    pass
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    if process.stdout is not None:
        process.stdout.close()


# Shared by the CLI keyring tests: what the real Secret Service holds for a workspace.


def keyring_env() -> dict[str, str]:
    env = dict(os.environ)  # the session_keyring fixture put its bus and HOME here
    env.pop("FLOWLINK_SECRET_STORE", None)
    env.pop("PYTHON_KEYRING_BACKEND", None)
    return env


def keyring_items(workspace_id: str) -> tuple[list[str], list[str]]:
    """(usernames, labels) of the workspace's items as libsecret's secret-tool lists them.

    secret-tool prints each secret on stdout, so only the label lines are kept from it;
    the attributes come on stderr.
    """
    secret_tool = shutil.which("secret-tool")
    if secret_tool is None:
        pytest.fail("secret-tool (libsecret-tools) is needed for the keyring tests")
    result = subprocess.run(
        [secret_tool, "search", "--all", "service", f"flowlink/{workspace_id}"],
        capture_output=True, text=True, timeout=30, env=keyring_env())
    assert result.returncode in (0, 1), "secret-tool search failed"
    labels = sorted(line.split(" = ", 1)[1] for line in result.stdout.splitlines()
                    if line.startswith("label = "))
    users = sorted(line.split(" = ", 1)[1] for line in
                   (result.stdout + "\n" + result.stderr).splitlines()
                   if line.startswith("attribute.username = "))
    headers = [line for line in result.stdout.splitlines() if re.match(r"^\[/", line)]
    assert len(headers) == len(labels) == len(users)
    return users, labels
