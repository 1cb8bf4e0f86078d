"""Real linked workspaces: each a data dir and a `flowlink serve` process on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from flowlink.workspace.workspace import Workspace
from workspace_fixtures import cli_env, flowlink


def wait_until(condition, timeout: float = 30.0, what: str = "condition", interval: float = 0.02):
    """Poll state that lives in another process, with a bound."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Peer:
    name: str
    data_dir: Path
    proc: subprocess.Popen | None = None
    url: str | None = None
    port: int = 0
    files: dict[str, Path] = field(default_factory=dict)

    def cli(self, *args: str, check: bool = True, timeout: float = 60):
        result = flowlink(self.data_dir, *args, timeout=timeout)
        if check:
            assert result.returncode == 0, f"flowlink {' '.join(args)}: {result.stderr}"
        return result

    def init(self) -> None:
        self.cli("init", "--name", self.name)
        self.files["pub"] = self.data_dir.parent / f"{self.name}.pub"
        self.files["pub"].write_text(self.cli("keys", "public", "--pem").stdout)
        self.files["ca"] = self.data_dir.parent / f"{self.name}.ca"
        self.files["ca"].write_text(self.cli("tls", "ca-cert").stdout)

    def serve(self) -> str:
        assert self.proc is None or self.proc.poll() is not None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flowlink", "serve", "--listen", f"127.0.0.1:{self.port}",
             "--data-dir", str(self.data_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
        )
        first = self.proc.stdout.readline()
        assert first.startswith("listening on https://127.0.0.1:"), (first, self.proc.stderr.read())
        self.url = first.split()[-1]
        self.port = int(self.url.rsplit(":", 1)[1])
        assert json.loads((self.data_dir / "endpoint.json").read_text())["url"] == self.url
        return self.url

    def sync_url(self, for_peer: str) -> str:
        assert self.url, "serve first"
        return f"{self.url}/api/latest/sync_config/{for_peer}/sync"

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(30)
        finally:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream:
                    stream.close()
        self.proc = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def workspace(self) -> Workspace:
        return Workspace.open(self.data_dir)

    def add_flow(self, name: str, source: str) -> None:
        path = self.data_dir.parent / f"{self.name}-{name}.py"
        path.write_text(source)
        self.cli("flow", "add", name, str(path))

    def executions(self, *args: str) -> list[dict]:
        return json.loads(self.cli("executions", "--json", "--limit", "1000", *args).stdout)

    def run(self, flow: str, *args: str, timeout: float = 60) -> tuple[int, dict]:
        result = self.cli("run", flow, *args, check=False, timeout=timeout)
        assert result.stdout, result.stderr
        return result.returncode, json.loads(result.stdout)


def link(src: Peer, dst: Peer, *extra: str, url: bool = True) -> None:
    """Give ``src`` a Synch Config for ``dst`` (with a Remote URL unless url=False)."""
    args = ["link", "add", dst.name, "--remote-public-key", str(dst.files["pub"]),
            "--ca-cert", str(dst.files["ca"])]
    if url:
        args += ["--remote-url", dst.sync_url(src.name)]
    src.cli(*args, *extra)
