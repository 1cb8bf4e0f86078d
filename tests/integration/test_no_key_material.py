"""No key material anywhere: a full run of the real command, then a search for private keys.

Two workspaces are made, linked both ways with private key files of their own, shown, changed,
rotated and unlinked, and a flow runs. Afterwards neither data folder (SQLite with its WAL,
logs, everything but the secret store and the server's own TLS key file) nor any captured
stdout/stderr holds a private key: not its PEM marker, not one line of its base64 body, not a
slice of its DER bytes. Assertion messages name files and commands, never what was found.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from flowlink.workspace.identity import generate_private_key, private_key_to_pem, public_key_to_pem
from flowlink.workspace.workspace import Workspace
from workspace_fixtures import CliResult, flowlink

FLOW = """\
def handler(system, this):
    print('hello from the flow')
    this.log('a log line')
    this.save(output_value={'ok': True})
"""


def _shown(text: str) -> str:
    """Command output for an assertion message, unless it might hold key material."""
    if "PRIVATE KEY" in text or re.search(r"[A-Za-z0-9+/=]{40,}", text):
        return "(withheld: it may hold key material)"
    return text


class Run:
    """Every command of the run, with its captured output, and every private key seen."""

    def __init__(self) -> None:
        self.outputs: list[tuple[str, CliResult]] = []
        self.private_pems: list[str] = []

    def __call__(self, data: Path, *args: str, ok: bool = True) -> CliResult:
        r = flowlink(data, *args, user="alice")
        self.outputs.append((" ".join(args[:3]), r))
        if ok:
            failed = r.returncode != 0
            assert not failed, f"'flowlink {' '.join(args[:3])}' failed: {_shown(r.stderr)}"
        return r

    def collect_workspace_secrets(self, data: Path) -> None:
        """The workspace key, the CA key and the server TLS key as they are now."""
        ws = Workspace.open(data)
        try:
            self.private_pems.append(ws.secrets.get(f"workspace/private-key/{ws.key_id}"))
            self.private_pems.append(ws.secrets.get("workspace/ca-key"))
        finally:
            ws.close()
        self.private_pems.append((data / "tls" / "server.key").read_text())

    def needles(self) -> tuple[list[str], list[bytes]]:
        """Base64 body lines of every private key, and slices of their DER encodings."""
        lines, slices = [], []
        for pem in self.private_pems:
            lines += [line for line in pem.splitlines() if line and not line.startswith("-----")]
            der = serialization.load_pem_private_key(pem.encode(), password=None).private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption())
            slices += [der[i:i + 24] for i in range(40, len(der) - 24, 97)]
        return lines, slices


def _write_key_pair(folder: Path, name: str, run: Run) -> tuple[Path, Path]:
    key = generate_private_key(2048)
    pem = private_key_to_pem(key)
    run.private_pems.append(pem)
    private_path, public_path = folder / f"{name}.key", folder / f"{name}.pub"
    private_path.write_text(pem)
    public_path.write_text(public_key_to_pem(key.public_key()))
    return private_path, public_path


def test_a_full_run_leaves_no_private_key_outside_the_secret_store(tmp_path):
    run = Run()
    keys = tmp_path / "keys"
    keys.mkdir()
    a, b = tmp_path / "a", tmp_path / "b"
    run(a, "init", "--name", "alpha", "--tls-name", "alpha.example.org")
    run(b, "init", "--name", "beta")
    run.collect_workspace_secrets(a)
    run.collect_workspace_secrets(b)
    a_key, a_pub = _write_key_pair(keys, "alpha-own", run)
    b_key, b_pub = _write_key_pair(keys, "beta-own", run)
    a_key2, _ = _write_key_pair(keys, "alpha-own-2", run)
    for data, name in ((a, "alpha"), (b, "beta")):
        (keys / f"{name}-ca.pem").write_text(run(data, "tls", "ca-cert").stdout)
    run(a, "keys", "public")
    run(b, "keys", "public", "--pem")

    # Linked both ways, each side signing with a private key file of its own.
    run(a, "link", "add", "beta", "--remote-url",
        "https://localhost:9/api/latest/sync_config/alpha/sync", "--remote-public-key",
        str(b_pub), "--own-private-key", str(a_key), "--ca-cert", str(keys / "beta-ca.pem"),
        "--sync-interval", "60", "--allow-flows", "hello")
    run(b, "link", "add", "alpha", "--remote-url",
        "https://localhost:9/api/latest/sync_config/beta/sync", "--remote-public-key",
        str(a_pub), "--own-private-key", str(b_key), "--ca-cert", str(keys / "alpha-ca.pem"),
        "--send-all-executions")
    # A private key pasted where the public one belongs is refused without being echoed.
    r = run(a, "link", "set", "beta", "--remote-public-key", str(b_key), ok=False)
    refused = r.returncode == 2 and "is a private key" in r.stderr
    assert refused, "a private key as remote public key was not refused"
    run(a, "link", "show", "beta")
    run(b, "link", "list")
    run(a, "link", "set", "beta", "--own-private-key", str(a_key2), "--sync-interval", "30")
    run(a, "link", "show", "beta")
    run(b, "link", "set", "alpha", "--use-workspace-key", "--no-verify-ssl")
    run(b, "link", "show", "alpha")

    for data in (a, b):
        run(data, "keys", "rotate")
        run(data, "tls", "renew")
        run.collect_workspace_secrets(data)
    run(b, "link", "show", "alpha")

    (tmp_path / "hello.py").write_text(FLOW)
    run(a, "flow", "add", "hello", str(tmp_path / "hello.py"))
    run(a, "run", "hello")
    run(a, "executions")
    run(a, "users", "list")
    run(a, "link", "remove", "beta")
    run(b, "link", "remove", "alpha")

    lines, slices = run.needles()
    assert len(run.private_pems) == 3 + 3 * 4  # three link keys; per workspace two rounds
    assert len(set(lines)) > 100 and slices

    # Captured output of every command.
    for command, r in run.outputs:
        text = r.stdout + r.stderr
        marker = "PRIVATE KEY" in text
        assert not marker, f"'flowlink {command}' printed a private key marker"
        assert not any(line in text for line in lines), f"'flowlink {command}' printed key material"

    # The data folders: everything but the secret store and the server's TLS key file.
    searched = []
    for data in (a, b):
        for path in sorted(data.rglob("*")):
            if not path.is_file():
                continue
            relative = path.relative_to(data)
            if relative.parts[0] == "secrets" or relative == Path("tls", "server.key"):
                continue
            content = path.read_bytes()
            text = content.decode("latin-1")
            marker = "PRIVATE KEY" in text
            assert not marker, f"{data.name}/{relative} holds a private key marker"
            assert not any(line in text for line in lines), f"{data.name}/{relative} holds key material"
            assert not any(s in content for s in slices), f"{data.name}/{relative} holds DER key bytes"
            searched.append(str(relative))
    assert searched.count("workspace.db") == 2
    assert searched.count(str(Path("tls", "server.pem"))) == 2

    # The secret store: private files in a private folder, and no link key left behind.
    for data in (a, b):
        folder = data / "secrets"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        files = sorted(folder.iterdir())
        assert [f.name.split("-")[0] for f in files] == ["workspace_ca", "workspace_private"]
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
        assert stat.S_IMODE((data / "tls" / "server.key").stat().st_mode) == 0o600
