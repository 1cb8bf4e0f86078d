"""The secrets audit: no private key, CA key or PEM body anywhere it does not belong.

``audit(folder, ...)`` reads every private key the workspaces under ``folder`` hold (the
file store's ``<data>/secrets/*.secret`` and ``<data>/tls/server.key``) and looks for each
of them, in several forms, in every other file under ``folder`` (data dirs, the SQLite
database with its -wal and -shm, logs, captured serve and CLI output), in Flowlink's
QSettings (``$XDG_CONFIG_HOME`` or ``~/.config``, ``Flowlink*``), and in core dumps
(``core*`` in the working directory, the temp dir and ``folder``, newer than ``since``):

- any PEM private key marker (``PRIVATE KEY-----``: PKCS#8, RSA, EC, encrypted);
- every base64 body line of every private key PEM;
- slices of each key's DER bytes (binary copies: a core dump, a BLOB), and one in hex.

The real audit runs after the soak (test_soak.py); the tests here prove the audit finds
what it must, and passes a clean tree.
"""

from __future__ import annotations

import base64
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from flowlink.workspace.identity import generate_private_key, private_key_to_pem

MARKER = b"PRIVATE KEY-----"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Needle:
    label: str
    data: bytes


@dataclass(frozen=True)
class Finding:
    path: Path
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


def private_key_files(folder: Path) -> list[Path]:
    """Where the workspaces under ``folder`` legitimately keep private keys."""
    found = []
    for data_dir in {p.parent for p in folder.rglob("workspace.db")}:
        found += [p for p in (data_dir / "secrets").glob("*.secret") if b"PRIVATE KEY" in p.read_bytes()]
        server_key = data_dir / "tls" / "server.key"
        if server_key.exists():
            found.append(server_key)
    return found


def needles_for(pem: str, label: str) -> list[Needle]:
    lines = [line.strip() for line in pem.strip().splitlines()]
    body = [line for line in lines if line and not line.startswith("-----")]
    found = [Needle(f"{label}: PEM body line {i + 1}", line.encode("ascii"))
             for i, line in enumerate(body) if len(line) >= 40]
    der = base64.b64decode("".join(body))
    third = len(der) // 3
    for offset in (third, third + 48, 2 * third):  # inside the private exponent and primes
        found.append(Needle(f"{label}: DER bytes at {offset}", der[offset:offset + 48]))
    found.append(Needle(f"{label}: DER bytes at {third} in hex", der[third:third + 32].hex().encode()))
    return found


def audit_needles(folder: Path) -> tuple[list[Needle], set[Path]]:
    """The needles of every private key under ``folder``, and the files that may hold them."""
    needles: list[Needle] = []
    allowed: set[Path] = set()
    for path in private_key_files(folder):
        allowed.add(path.resolve())
        label = f"{path.parent.parent.name}/{path.parent.name}/{path.name}"
        needles += needles_for(path.read_text(encoding="ascii"), label)
    return needles, allowed


def scan_file(path: Path, needles: list[Needle]) -> list[Finding]:
    """Chunked, with an overlap as long as the longest needle: big core dumps fit too."""
    findings: list[str] = []
    overlap = max([len(MARKER), *(len(n.data) for n in needles)])
    tail = b""
    try:
        with open(path, "rb") as stream:
            while chunk := stream.read(CHUNK):
                window = tail + chunk
                if MARKER in window and "a PEM private key marker" not in findings:
                    findings.append("a PEM private key marker")
                for needle in needles:
                    if needle.data in window and needle.label not in findings:
                        findings.append(needle.label)
                tail = window[-overlap:]
    except OSError:
        return []  # a socket, a file that went away: nothing to read
    return [Finding(path, what) for what in findings]


def config_files() -> list[Path]:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    found: list[Path] = []
    for entry in base.glob("Flowlink*"):
        found += [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
    return found


def core_dumps(folder: Path, since: float) -> list[Path]:
    places = {Path.cwd(), Path(tempfile.gettempdir()), folder}
    found = []
    for place in places:
        for path in place.glob("core*"):
            try:
                if path.is_file() and path.stat().st_mtime >= since:
                    found.append(path)
            except OSError:
                continue
    return found


@dataclass
class AuditReport:
    findings: list[Finding]
    files: int
    needles: int
    keys: int
    extra: list[Path]

    def __str__(self) -> str:
        head = (f"secrets audit: {self.keys} private keys, {self.needles} needles, {self.files} "
                f"files ({len(self.extra)} QSettings/core files)")
        return head + "".join(f"\n  FOUND {f}" for f in self.findings)


def audit(folder: Path, *, since: float = 0.0, outputs: list[str] = ()) -> AuditReport:
    needles, allowed = audit_needles(folder)
    keys = len(allowed)
    findings: list[Finding] = []
    extra = config_files() + core_dumps(folder, since)
    files = [p for p in folder.rglob("*") if p.is_file() and p.resolve() not in allowed] + extra
    for path in files:
        findings += scan_file(path, needles)
    for i, text in enumerate(outputs):
        data = text.encode("utf-8", "replace")
        if MARKER in data:
            findings.append(Finding(Path(f"<output {i}>"), "a PEM private key marker"))
        findings += [Finding(Path(f"<output {i}>"), n.label) for n in needles if n.data in data]
    return AuditReport(findings, len(files), len(needles), keys, extra)


# -- the audit itself must be able to fail -----------------------------------------------------


@pytest.fixture(scope="module")
def key_pem() -> str:
    return private_key_to_pem(generate_private_key(2048))


def fake_tree(root: Path, pem: str) -> Path:
    data = root / "ws"
    (data / "secrets").mkdir(parents=True)
    (data / "tls").mkdir()
    (data / "workspace.db").write_bytes(b"SQLite format 3\0" + b"\0" * 100)
    (data / "secrets" / "workspace_private-key-0123.secret").write_text(pem)
    (data / "secrets" / "remote-key-4567.secret").write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    (data / "tls" / "server.key").write_text(private_key_to_pem(generate_private_key(2048)))
    (root / "logs").mkdir()
    (root / "logs" / "a-serve.err").write_text("listening on https://127.0.0.1:1\nall well\n")
    return data


def test_a_clean_tree_passes(tmp_path, key_pem):
    fake_tree(tmp_path, key_pem)
    report = audit(tmp_path, since=time.time() + 3600)
    assert report.keys == 2 and report.needles > 40
    assert not report.findings, report


@pytest.mark.parametrize("plant", ["pem", "body-line", "der", "hex", "marker", "wal", "output"])
def test_the_audit_finds_each_form(tmp_path, key_pem, plant):
    data = fake_tree(tmp_path, key_pem)
    body = [line for line in key_pem.splitlines() if line and not line.startswith("-----")]
    der = base64.b64decode("".join(body))
    outputs: list[str] = []
    if plant == "pem":
        (tmp_path / "logs" / "a-serve.err").write_text("oops " + key_pem)
    elif plant == "body-line":
        (tmp_path / "logs" / "a-cli.log").write_text(f"debug: {body[7]}\n")
    elif plant == "der":
        (data / "workspace.db").write_bytes(b"\0" * 5000 + der + b"\0" * 5000)
    elif plant == "hex":
        (tmp_path / "logs" / "trace.txt").write_text(f"key={der.hex()}\n")
    elif plant == "marker":
        (data / "endpoint.json").write_text('{"x": "-----BEGIN EC PRIVATE KEY-----"}')
    elif plant == "wal":  # across a chunk boundary of a big binary file
        (data / "workspace.db-wal").write_bytes(b"\1" * (CHUNK - 10) + der + b"\1" * 100)
    else:
        outputs.append(f"Traceback ... {body[3]}")
    report = audit(tmp_path, outputs=outputs)
    assert report.findings, f"the audit missed a planted {plant}"
    print(f"\nplanted {plant}: {report.findings[0]}")


def test_the_audit_reads_core_dumps_and_settings(tmp_path, key_pem, monkeypatch):
    """QSettings and core dumps live outside the audited folder: they are found anyway."""
    tree = tmp_path / "tree"
    fake_tree(tree, key_pem)
    body = [line for line in key_pem.splitlines() if line and not line.startswith("-----")]
    config = tmp_path / "config"
    (config / "Flowlink").mkdir(parents=True)
    (config / "Flowlink" / "Flowlink.conf").write_text(f"[links]\nb\\key={body[2]}\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    der = base64.b64decode("".join(body))
    third = len(der) // 3  # a fragment of the key's memory image, around the private exponent
    (cwd / "core.1234").write_bytes(b"\0" * 100 + der[third - 20:third + 80] + b"\0" * 100)
    (cwd / "core.old").write_bytes(base64.b64decode("".join(body)))
    os.utime(cwd / "core.old", (time.time() - 7200, time.time() - 7200))  # before the run: not ours
    report = audit(tree, since=time.time() - 60)
    where = {f.path.name for f in report.findings}
    assert where == {"Flowlink.conf", "core.1234"}, report
