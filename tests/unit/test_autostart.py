"""Start at login, Linux path: the XDG autostart entry, with HOME and XDG_CONFIG_HOME in tmp."""

from __future__ import annotations

import plistlib
import sys
from pathlib import Path

import pytest

from flowlink import autostart

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG path is Linux's")


@pytest.fixture
def config(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config"


def entry(config: Path) -> dict[str, str]:
    fields = autostart._read_desktop_entry(config / "autostart" / "flowlink.desktop")
    assert fields is not None
    return fields


def exec_args(value: str) -> list[str]:
    """Parse an Exec value as a desktop would: value escapes, then the quoting rules."""
    text = value.replace("\\\\", "\\")
    args, current, quoted, i, started = [], "", False, 0, False
    while i < len(text):
        c = text[i]
        if quoted and c == "\\" and i + 1 < len(text) and text[i + 1] in '"`$\\':
            current += text[i + 1]
            i += 2
            continue
        if c == '"':
            quoted, started = not quoted, True
        elif c == " " and not quoted:
            if started:
                args.append(current)
            current, started = "", False
        else:
            current, started = current + c, True
        i += 1
    if started:
        args.append(current)
    return [a.replace("%%", "%") for a in args]


def test_enable_writes_the_xdg_entry_for_a_source_install(config):
    assert not autostart.is_enabled()
    autostart.enable()
    path = config / "autostart" / "flowlink.desktop"
    assert path.is_file()
    assert path.stat().st_mode & 0o777 == 0o644
    fields = entry(config)
    assert fields["Type"] == "Application"
    assert fields["Name"] == "Flowlink"
    assert exec_args(fields["Exec"]) == [sys.executable, "-m", "flowlink"]
    assert fields["TryExec"] == sys.executable
    assert autostart.is_enabled()
    assert not autostart.starts_minimized()


def test_minimized_and_data_dir_are_passed(config, tmp_path):
    data = tmp_path / "my data"
    autostart.enable(start_minimized=True, data_dir=data)
    args = exec_args(entry(config)["Exec"])
    assert args == [sys.executable, "-m", "flowlink", "--data-dir", str(data.resolve()), "--minimized"]
    assert autostart.starts_minimized()
    autostart.enable(start_minimized=False)  # replaces the entry
    assert exec_args(entry(config)["Exec"]) == [sys.executable, "-m", "flowlink"]
    assert not autostart.starts_minimized()


def test_frozen_build_runs_the_installed_binary(config, monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", "/opt/flowlink/flowlink")
    autostart.enable(start_minimized=True)
    fields = entry(config)
    assert fields["Exec"] == "/opt/flowlink/flowlink --minimized"
    assert fields["TryExec"] == "/opt/flowlink/flowlink"


def test_frozen_cli_program_points_at_the_windowed_sibling(tmp_path, monkeypatch):
    (tmp_path / "flowlink").write_text("")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "flowlink-cli"))
    assert autostart.program() == [str(tmp_path / "flowlink")]


def test_disable_removes_the_entry_and_is_idempotent(config):
    autostart.disable()  # nothing there: no error
    autostart.enable()
    autostart.disable()
    assert not (config / "autostart" / "flowlink.desktop").exists()
    assert not autostart.is_enabled()
    autostart.disable()


def test_default_location_without_xdg_config_home(config, monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CONFIG_HOME")
    autostart.enable()
    assert (tmp_path / "home" / ".config" / "autostart" / "flowlink.desktop").is_file()


def test_relative_xdg_config_home_is_ignored(config, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/config")
    assert autostart.desktop_entry_path() == tmp_path / "home" / ".config" / "autostart" / "flowlink.desktop"


@pytest.mark.parametrize("switch", ["Hidden=true", "X-GNOME-Autostart-enabled=false"])
def test_an_entry_switched_off_by_the_desktop_is_not_enabled(config, switch):
    autostart.enable()
    path = config / "autostart" / "flowlink.desktop"
    text = path.read_text().replace("X-GNOME-Autostart-enabled=true\n", "")
    path.write_text(text + switch + "\n")
    assert not autostart.is_enabled()


def test_a_file_without_a_desktop_entry_group_is_not_enabled(config):
    path = config / "autostart" / "flowlink.desktop"
    path.parent.mkdir(parents=True)
    path.write_text("garbage\n")
    assert not autostart.is_enabled()


def test_exec_quoting_follows_the_desktop_entry_spec():
    args = ["/opt/my apps/flow$link", "--data-dir", '/x/"quoted"', "100%", "back\\slash"]
    line = autostart.exec_line(args)
    assert line == ('"/opt/my apps/flow\\\\$link" --data-dir "/x/\\\\"quoted\\\\"" 100%% '
                    '"back\\\\\\\\slash"')
    assert exec_args(line) == args


def test_launch_agent_plist_for_macos():
    data = plistlib.loads(autostart.launch_agent_plist(["/Applications/Flowlink.app/Contents/MacOS/flowlink",
                                                        "--minimized"]))
    assert data["Label"] == "io.flowlink.Flowlink"
    assert data["ProgramArguments"][-1] == "--minimized"
    assert data["RunAtLoad"] is True
