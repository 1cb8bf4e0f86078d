"""Fixtures for a real workspace on disk, a real engine, and the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from flowlink.engine.engine import Engine

# Workspaces in tests keep their secrets in files unless a test asks for the real keyring
# (tests/integration/test_secrets_keyring.py and the keyring-marked tests do).
os.environ.setdefault("FLOWLINK_SECRET_STORE", "file")
from flowlink.workspace.workspace import Workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    ws = Workspace.init(tmp_path / "ws", "test-ws", admin="alice")
    yield ws
    ws.close()


def add_flow(ws: Workspace, name: str, source: str) -> None:
    ws.add_flow(name, textwrap.dedent(source))


@pytest.fixture
def engine(workspace: Workspace) -> Engine:
    eng = Engine(workspace, parallelism=4)
    eng.start()
    yield eng
    eng.stop()


def run_flow(engine: Engine, flow: str, inputs: dict | None = None, timeout: float = 30, **kw):
    execution_id = engine.submit(flow, inputs, **kw)
    assert engine.wait_ended([execution_id], timeout), f"execution {execution_id} did not end"
    return engine.workspace.get_execution(execution_id)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["FLOWLINK_SECRET_STORE"] = "file"
    env.update(extra)
    return env


def flowlink(data_dir: Path, *args: str, timeout: float = 60, env: dict | None = None,
             user: str | None = None) -> CliResult:
    """Run the real `flowlink` command in a new process."""
    cmd = [sys.executable, "-m", "flowlink", *args, "--data-dir", str(data_dir)]
    if user:
        cmd += ["--as", user]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=env or cli_env())
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
