"""Start Flowlink at login: the per-user entry each desktop reads at login. No Qt here.

- Linux: an XDG autostart entry, ``$XDG_CONFIG_HOME/autostart/flowlink.desktop``
  (``~/.config/autostart``), read by GNOME, KDE, Xfce and the other XDG desktops.
- Windows: the value ``Flowlink`` under ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run``.
- macOS: the LaunchAgent ``~/Library/LaunchAgents/io.flowlink.Flowlink.plist``.

The command is the program that is running now: the installed binary of a frozen
build (the windowed one where the OS has two), else ``python -m flowlink``. With
``start_minimized`` it gets ``--minimized``, so the app starts in the tray.
All three entries belong to the user, not to the package: uninstalling leaves
them, so the Linux entry carries ``TryExec`` (desktops skip it once the program is
gone) and the Windows installer removes its registry value on uninstall.
"""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
from pathlib import Path

APP_NAME = "Flowlink"
DESKTOP_FILE = "flowlink.desktop"
LAUNCH_AGENT_LABEL = "io.flowlink.Flowlink"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
MINIMIZED_FLAG = "--minimized"
MINIMIZED_KEY = "X-Flowlink-Minimized"


# -- what runs at login ------------------------------------------------------------------


def program() -> list[str]:
    """The command that starts this Flowlink, without options."""
    exe = Path(sys.executable)
    if getattr(sys, "frozen", False):
        # Windows and macOS bundles have a windowed `flowlink` beside `flowlink-cli`.
        if exe.stem == "flowlink-cli":
            windowed = exe.with_name("flowlink" + exe.suffix)
            if windowed.exists():
                exe = windowed
        return [str(exe)]
    if sys.platform == "win32" and exe.name.lower() == "python.exe":
        pythonw = exe.with_name("pythonw.exe")  # no console window at login
        if pythonw.exists():
            exe = pythonw
    return [str(exe), "-m", "flowlink"]


def command(start_minimized: bool = False, data_dir: Path | None = None) -> list[str]:
    args = program()
    if data_dir is not None:
        args += ["--data-dir", str(Path(data_dir).expanduser().resolve())]
    if start_minimized:
        args.append(MINIMIZED_FLAG)
    return args


# -- public API ----------------------------------------------------------------------------


def enable(start_minimized: bool = False, data_dir: Path | None = None) -> None:
    """Start Flowlink at login (replacing an earlier entry); ``data_dir`` None: the default one."""
    args = command(start_minimized, data_dir)
    if sys.platform == "win32":
        _windows_set(subprocess.list2cmdline(args))
    elif sys.platform == "darwin":
        path = launch_agent_path()
        _write_atomic(path, launch_agent_plist(args))
    else:
        _write_atomic(desktop_entry_path(), desktop_entry(args, start_minimized).encode())


def disable() -> None:
    """Stop starting Flowlink at login; nothing happens when it was not enabled."""
    if sys.platform == "win32":
        _windows_delete()
    elif sys.platform == "darwin":
        launch_agent_path().unlink(missing_ok=True)
    else:
        desktop_entry_path().unlink(missing_ok=True)


def is_enabled() -> bool:
    """True when an entry of ours exists and the desktop has not switched it off."""
    if sys.platform == "win32":
        return _windows_get() is not None
    if sys.platform == "darwin":
        return launch_agent_path().is_file()
    fields = _read_desktop_entry(desktop_entry_path())
    if fields is None:
        return False
    # GNOME's and other session managers' switches, and the spec's Hidden.
    return (fields.get("Hidden", "false") != "true"
            and fields.get("X-GNOME-Autostart-enabled", "true") != "false")


def starts_minimized() -> bool:
    """True when the entry there is starts Flowlink in the tray."""
    if sys.platform == "win32":
        value = _windows_get()
        return value is not None and MINIMIZED_FLAG in value.split()
    if sys.platform == "darwin":
        try:
            data = plistlib.loads(launch_agent_path().read_bytes())
        except (OSError, plistlib.InvalidFileException, ValueError):
            return False
        return MINIMIZED_FLAG in data.get("ProgramArguments", [])
    fields = _read_desktop_entry(desktop_entry_path()) or {}
    return fields.get(MINIMIZED_KEY) == "true"


# -- Linux: XDG autostart --------------------------------------------------------------------


def desktop_entry_path() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME", "")
    # The XDG spec: a relative XDG_CONFIG_HOME is invalid and must be ignored.
    base = Path(config) if config and os.path.isabs(config) else Path.home() / ".config"
    return base / "autostart" / DESKTOP_FILE


def desktop_entry(args: list[str], start_minimized: bool) -> str:
    lines = [
        "[Desktop Entry]",
        "Type=Application",
        f"Name={APP_NAME}",
        "Comment=Start Flowlink at login",
        f"Exec={exec_line(args)}",
        f"TryExec={_escape_value(args[0])}",
        "Icon=flowlink",
        "Terminal=false",
        "X-GNOME-Autostart-enabled=true",
        f"{MINIMIZED_KEY}={'true' if start_minimized else 'false'}",
    ]
    return "\n".join(lines) + "\n"


def exec_line(args: list[str]) -> str:
    """An Exec value per the Desktop Entry spec: quoted arguments, then value escapes."""
    return _escape_value(" ".join(_quote_arg(a) for a in args))


_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def _quote_arg(arg: str) -> str:
    arg = arg.replace("%", "%%")  # % starts a field code
    if arg and not (set(arg) & _RESERVED):
        return arg
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return f'"{escaped}"'


def _escape_value(text: str) -> str:
    # Value-level escapes of string keys; applied after the Exec quoting rules.
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def _read_desktop_entry(path: Path) -> dict[str, str] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    fields: dict[str, str] = {}
    group, seen = None, False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
            seen = seen or group == "Desktop Entry"
            continue
        if group == "Desktop Entry" and "=" in line:
            key, _, value = line.partition("=")
            fields[key.strip()] = value.strip()
    return fields if seen else None  # without that group, desktops ignore the file too


# -- macOS: LaunchAgent ------------------------------------------------------------------------


def launch_agent_path() -> Path:
    return Path.home() / "Library" / "LaunchAgents" / f"{LAUNCH_AGENT_LABEL}.plist"


def launch_agent_plist(args: list[str]) -> bytes:
    return plistlib.dumps({
        "Label": LAUNCH_AGENT_LABEL,
        "ProgramArguments": args,
        "RunAtLoad": True,
        "ProcessType": "Interactive",
        "LimitLoadToSessionType": "Aqua",  # the graphical login, not ssh sessions
    })


# -- Windows: the Run key ----------------------------------------------------------------------


def _windows_set(value: str) -> None:
    import winreg

    with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
        winreg.SetValueEx(key, APP_NAME, 0, winreg.REG_SZ, value)


def _windows_get() -> str | None:
    import winreg

    try:
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_QUERY_VALUE) as key:
            value, _kind = winreg.QueryValueEx(key, APP_NAME)
    except FileNotFoundError:
        return None
    return str(value)


def _windows_delete() -> None:
    import winreg

    try:
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
            winreg.DeleteValue(key, APP_NAME)
    except FileNotFoundError:
        pass


# -- files ---------------------------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
