"""Workspace identity through the real command: init, keys, tls, users, and the secret store.

Covers the RSA key pair (key id = SHA-256 of the DER SubjectPublicKeyInfo), the workspace CA
and server certificate, rotation and renewal, the role checks, a machine with no keyring at
all, and the real Secret Service (session_keyring fixture). Assertions compare key ids,
labels and counts; no key text is ever part of an assertion message.
"""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from flowlink.workspace.identity import (
    generate_private_key,
    private_key_to_pem,
    public_key_to_pem,
)
from flowlink.workspace.links import SyncConfigChange
from flowlink.workspace.workspace import Workspace
from keyring_fixture import keyring_env, keyring_items
from workspace_fixtures import cli_env, flowlink

TLS_NAMES = ["flowlink.example.org", "192.0.2.7"]
CHOOSE_FILE_STORE = "choose the file store with --secret-store file or FLOWLINK_SECRET_STORE=file"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _spki_sha256(public_key) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _open(data: Path, user: str = "alice") -> Workspace:
    return Workspace.open(data, acting_user=user)


def _meta(data: Path) -> dict[str, str]:
    ws = Workspace.open(data)
    try:
        return {"id": ws.id, "key_id": ws.key_id, "secret_store": ws.secret_store_kind}
    finally:
        ws.close()


def _init(data: Path, name: str, *extra: str, env: dict | None = None):
    r = flowlink(data, "init", "--name", name, *extra, user="alice", env=env)
    assert r.returncode == 0, r.stderr
    return r


def _body_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, str]:
    """One workspace made by `init --tls-name ...`, never changed by the tests that use it."""
    data = tmp_path_factory.mktemp("ident") / "data"
    args = [a for name in TLS_NAMES for a in ("--tls-name", name)]
    r = _init(data, "ident", *args)
    return data, r.stdout


@pytest.fixture
def fresh(tmp_path) -> Path:
    """A workspace a test may change."""
    data = tmp_path / "data"
    _init(data, "fresh")
    ws = _open(data)
    try:
        ws.add_user("bob", "user")
    finally:
        ws.close()
    return data


# --- init: the key pair -----------------------------------------------------------------------


def test_init_makes_an_rsa_3072_pair_whose_key_id_is_the_spki_hash(made):
    data, init_out = made
    kid = _meta(data)["key_id"]
    assert re.fullmatch(r"[0-9a-f]{64}", kid)
    assert f"Key id {kid};" in init_out
    assert "alice is its organization admin" in init_out
    assert f"file store in {data / 'secrets'}" in init_out

    r = flowlink(data, "keys", "public", "--pem")
    assert r.returncode == 0, r.stderr
    pem = r.stdout
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n") and pem.endswith("-----END PUBLIC KEY-----\n")
    public = serialization.load_pem_public_key(pem.encode())
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size == 3072
    assert _spki_sha256(public) == kid

    r = flowlink(data, "keys", "public")
    assert r.returncode == 0, r.stderr
    first, rest = r.stdout.split("\n", 1)
    assert first == f"key id: {kid}"
    assert rest == pem

    # The private half is in the secret store and pairs with the public key.
    ws = _open(data)
    try:
        assert _spki_sha256(ws.private_key().public_key()) == kid
        assert ws.secrets.get_optional(f"workspace/private-key/{kid}") is not None
        assert ws.secrets.get_optional("workspace/ca-key") is not None
    finally:
        ws.close()


def test_private_keys_are_only_in_the_secret_store(made):
    data, _ = made
    ws = _open(data)
    try:
        kid = ws.key_id
        secrets = [ws.secrets.get(f"workspace/private-key/{kid}"), ws.secrets.get("workspace/ca-key")]
    finally:
        ws.close()
    bodies = [line for pem in secrets for line in _body_lines(pem)]
    assert bodies
    secret_dir = data / "secrets"
    server_key = data / "tls" / "server.key"
    checked = 0
    for path in data.rglob("*"):
        if not path.is_file() or path == server_key or secret_dir in path.parents:
            continue
        content = path.read_bytes().decode("latin-1")
        marker = "PRIVATE KEY" in content
        assert not marker, f"{path.name} holds a private key"
        assert not any(line in content for line in bodies), f"{path.name} holds key material"
        checked += 1
    assert checked >= 2  # at least workspace.db and tls/server.pem

    assert _mode(secret_dir) == 0o700
    files = list(secret_dir.iterdir())
    assert len(files) == 2
    assert all(_mode(f) == 0o600 for f in files)


# --- init: the CA and the server certificate --------------------------------------------------


def _sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(ext.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in ext.get_values_for_type(x509.IPAddress)}
    return dns, ips


def _tls_files(data: Path) -> tuple[x509.Certificate, Path, Path]:
    cert_path, key_path = data / "tls" / "server.pem", data / "tls" / "server.key"
    return x509.load_pem_x509_certificate(cert_path.read_bytes()), cert_path, key_path


def _ca(data: Path) -> x509.Certificate:
    r = flowlink(data, "tls", "ca-cert")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("-----BEGIN CERTIFICATE-----\n")
    return x509.load_pem_x509_certificate(r.stdout.encode())


def _host_name_san() -> str | None:
    name = socket.gethostname()
    if re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", name):
        return name.lower()
    return None


def test_the_ca_certificate_signed_the_server_certificate_with_every_name(made):
    data, _ = made
    ca = _ca(data)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert, cert_path, key_path = _tls_files(data)
    cert.verify_directly_issued_by(ca)  # raises unless the CA's key signed it
    assert cert.issuer == ca.subject
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    dns, ips = _sans(cert)
    assert {"localhost", "flowlink.example.org"} <= dns
    assert {"127.0.0.1", "::1", "192.0.2.7"} <= ips
    assert "192.0.2.7" not in dns  # an IP --tls-name is an IP SAN
    host = _host_name_san()
    if host is not None:
        assert host in dns

    assert _mode(key_path) == 0o600
    assert _mode(data / "tls") == 0o700
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert _spki_sha256(key.public_key()) == _spki_sha256(cert.public_key())
    for name in ("localhost", "127.0.0.1", "flowlink.example.org", "192.0.2.7"):
        _handshake(ca, cert_path, key_path, name)


def _handshake(ca: x509.Certificate, cert_path: Path, key_path: Path, name: str) -> None:
    """A TLS handshake in memory, the client trusting only the pasted CA certificate."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    client_context = ssl.create_default_context(
        cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    to_server, to_client, server_in, server_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_context.wrap_bio(to_client, to_server, server_hostname=name)
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for side_name, side in (("client", client), ("server", server)):
            if not done[side_name]:
                try:
                    side.do_handshake()
                    done[side_name] = True
                except ssl.SSLWantReadError:
                    pass
        server_in.write(to_server.read())
        to_client.write(server_out.read())
        if all(done.values()):
            return
    raise AssertionError(f"the TLS handshake for {name} did not finish")


def test_a_bad_tls_name_fails_init_and_leaves_nothing_behind(tmp_path):
    data = tmp_path / "data"
    r = flowlink(data, "init", "--name", "badtls", "--tls-name", "not a host!")
    assert r.returncode == 2
    assert "TLS name" in r.stderr and "Traceback" not in r.stderr
    assert not data.exists()  # refused before anything was made


# --- tls renew --------------------------------------------------------------------------------


def test_tls_renew_issues_a_new_certificate_from_the_same_ca(fresh):
    ca = _ca(fresh)
    old, _, key_path = _tls_files(fresh)
    old_key = key_path.read_bytes()

    # Only an admin renews, and a bad name changes nothing.
    r = flowlink(fresh, "tls", "renew", user="bob")
    assert r.returncode == 2
    assert "only an organization admin can renew" in r.stderr.lower()
    r = flowlink(fresh, "tls", "renew", "--tls-name", "bad name", user="alice")
    assert r.returncode == 2 and "TLS name" in r.stderr
    assert _tls_files(fresh)[0] == old and key_path.read_bytes() == old_key

    r = flowlink(fresh, "tls", "renew", user="alice")
    assert r.returncode == 0, r.stderr
    assert "server.pem" in r.stdout
    new, _, _ = _tls_files(fresh)
    assert new.serial_number != old.serial_number
    new.verify_directly_issued_by(ca)
    assert _sans(new) == _sans(old)
    assert key_path.read_bytes() != old_key
    assert _mode(key_path) == 0o600

    r = flowlink(fresh, "tls", "renew", "--tls-name", "other.example.net", user="alice")
    assert r.returncode == 0, r.stderr
    assert "other.example.net" in _sans(_tls_files(fresh)[0])[0]
    # The names given last are kept by the next renewal.
    assert flowlink(fresh, "tls", "renew", user="alice").returncode == 0
    renewed, cert_path, key_path = _tls_files(fresh)
    assert "other.example.net" in _sans(renewed)[0]
    renewed.verify_directly_issued_by(_ca(fresh))
    _handshake(ca, cert_path, key_path, "other.example.net")


# --- keys rotate ------------------------------------------------------------------------------


def test_keys_rotate_makes_a_new_pair_deletes_the_old_item_and_names_the_links(fresh):
    old_kid = _meta(fresh)["key_id"]
    r = flowlink(fresh, "keys", "rotate", user="bob")
    assert r.returncode == 2
    assert "only an organization admin can rotate" in r.stderr.lower()
    assert _meta(fresh)["key_id"] == old_kid
    r = flowlink(fresh, "keys", "rotate", user="alice")  # no links yet: nothing to name
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 1
    assert _meta(fresh)["key_id"] != old_kid
    old_kid = _meta(fresh)["key_id"]
    remote_a, remote_b, own = (generate_private_key(2048) for _ in range(3))
    ws = _open(fresh)
    try:
        ws.links.add("beta", SyncConfigChange(
            remote_public_key=public_key_to_pem(remote_a.public_key())))
        ws.links.add("delta", SyncConfigChange(
            remote_public_key=public_key_to_pem(remote_b.public_key())))
        ws.links.add("gamma", SyncConfigChange(
            remote_public_key=public_key_to_pem(remote_b.public_key()),
            own_private_key=private_key_to_pem(own)))
    finally:
        ws.close()
    files_before = sorted(p.name for p in (fresh / "secrets").iterdir())

    r = flowlink(fresh, "keys", "rotate", user="alice")
    assert r.returncode == 0, r.stderr
    new_kid = _meta(fresh)["key_id"]
    assert new_kid != old_kid
    lines = r.stdout.splitlines()
    assert lines[0] == f"New key pair made; key id {new_kid}."
    assert lines[1].endswith(": beta, delta.")  # gamma signs with its own key
    assert "paste the new one there" in lines[1]

    r = flowlink(fresh, "keys", "public", "--pem")
    assert _spki_sha256(serialization.load_pem_public_key(r.stdout.encode())) == new_kid
    ws = _open(fresh)
    try:
        assert ws.secrets.get_optional(f"workspace/private-key/{old_kid}") is None
        assert ws.secrets.get_optional(f"workspace/private-key/{new_kid}") is not None
        assert _spki_sha256(ws.private_key().public_key()) == new_kid
        beta = ws.links.get("beta").describe(ws.key_id, ws.secrets.display_name)
        assert beta["own_private_key"].endswith(f"key id {new_kid}")
    finally:
        ws.close()
    files_after = sorted(p.name for p in (fresh / "secrets").iterdir())
    assert len(files_after) == len(files_before)
    assert files_after != files_before
    assert all(_mode(fresh / "secrets" / f) == 0o600 for f in files_after)


# --- users ------------------------------------------------------------------------------------


def test_users_add_list_remove_and_the_last_admin(fresh):
    r = flowlink(fresh, "users", "list")
    assert r.stdout.split() == ["alice", "organization_admin", "bob", "user"]
    r = flowlink(fresh, "users", "add", "carol", "--role", "organization_admin", user="bob")
    assert r.returncode == 2 and "only an organization admin" in r.stderr.lower()
    r = flowlink(fresh, "users", "remove", "alice", user="bob")
    assert r.returncode == 2 and "only an organization admin" in r.stderr.lower()
    r = flowlink(fresh, "users", "remove", "alice", user="alice")
    assert r.returncode == 2 and "last organization admin" in r.stderr
    r = flowlink(fresh, "users", "add", "alice", "--role", "user", user="alice")
    assert r.returncode == 2 and "last organization admin" in r.stderr
    r = flowlink(fresh, "users", "add", "carol", "--role", "wizard", user="alice")
    assert r.returncode == 2 and "invalid choice" in r.stderr

    r = flowlink(fresh, "users", "add", "bob", "--role", "organization_admin", user="alice")
    assert r.returncode == 0, r.stderr
    r = flowlink(fresh, "users", "remove", "alice", user="bob")
    assert r.returncode == 0, r.stderr
    r = flowlink(fresh, "users", "remove", "nobody", user="bob")
    assert r.returncode == 2 and "no user 'nobody'" in r.stderr
    r = flowlink(fresh, "users", "list")
    assert r.stdout.split() == ["bob", "organization_admin"]


# --- secret store choice, and a machine without a keyring -------------------------------------


def _no_keyring_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = cli_env()
    env.pop("FLOWLINK_SECRET_STORE")
    env.pop("PYTHON_KEYRING_BACKEND", None)
    env.update(
        DBUS_SESSION_BUS_ADDRESS=f"unix:path={tmp_path / 'no-such-bus'}",
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_RUNTIME_DIR=str(home),
    )
    return env


def test_init_without_a_keyring_says_how_to_choose_the_file_store(tmp_path):
    env = _no_keyring_env(tmp_path)
    data = tmp_path / "data"
    r = flowlink(data, "init", "--name", "headless", env=env)
    assert r.returncode == 2
    assert r.stdout == ""
    assert CHOOSE_FILE_STORE in r.stderr
    assert r.stderr.startswith("flowlink: ") and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr
    assert not (data / "workspace.db").exists()
    assert not (data / "secrets").exists()

    r = flowlink(data, "init", "--name", "headless", "--secret-store", "file", env=env)
    assert r.returncode == 0, r.stderr
    assert _meta(data)["secret_store"] == "file"
    # The workspace remembers its store: later commands need no option.
    assert flowlink(data, "keys", "public", env=env).returncode == 0


def test_a_file_store_workspace_is_not_opened_with_the_keyring(made):
    data, _ = made
    r = flowlink(data, "link", "list", "--secret-store", "keyring")
    assert r.returncode == 2
    assert "keeps its secrets in the file store, not the keyring store" in r.stderr
    assert "--secret-store" in r.stderr


def test_an_unknown_secret_store_is_refused(tmp_path):
    r = flowlink(tmp_path / "data", "init", "--name", "x",
                 env=cli_env(FLOWLINK_SECRET_STORE="vault"))
    assert r.returncode == 2
    assert "FLOWLINK_SECRET_STORE is 'vault'" in r.stderr
    assert not (tmp_path / "data" / "workspace.db").exists()


# --- the real keyring -------------------------------------------------------------------------


@pytest.fixture
def keyring_data(session_keyring, tmp_path) -> Iterator[Path]:
    yield tmp_path / "kr"


@pytest.mark.keyring
def test_keyring_init_rotate_and_renew_use_real_items(keyring_data, tmp_path):
    env = keyring_env()
    r = _init(keyring_data, "kr-ident", env=env)
    assert "Secret Service (org.freedesktop.secrets)" in r.stdout
    meta = _meta(keyring_data)
    assert meta["secret_store"] == "keyring"
    assert not (keyring_data / "secrets").exists()
    users, labels = keyring_items(meta["id"])
    assert users == ["workspace/ca-key", f"workspace/private-key/{meta['key_id']}"]
    assert labels == ["Flowlink kr-ident: workspace CA private key",
                      "Flowlink kr-ident: workspace private key"]
    # Nothing private in the data folder but the server's TLS key.
    for path in keyring_data.rglob("*"):
        if path.is_file() and path.name != "server.key":
            marker = b"PRIVATE KEY" in path.read_bytes()
            assert not marker, f"{path.name} holds a private key"

    r = flowlink(keyring_data, "keys", "rotate", user="alice", env=env)
    assert r.returncode == 0, r.stderr
    new_kid = _meta(keyring_data)["key_id"]
    assert new_kid != meta["key_id"]
    assert keyring_items(meta["id"])[0] == ["workspace/ca-key", f"workspace/private-key/{new_kid}"]
    r = flowlink(keyring_data, "keys", "public", "--pem", env=env)
    assert _spki_sha256(serialization.load_pem_public_key(r.stdout.encode())) == new_kid

    # Renewal reads the CA key back from the keyring.
    old_serial = _tls_files(keyring_data)[0].serial_number
    r = flowlink(keyring_data, "tls", "renew", user="alice", env=env)
    assert r.returncode == 0, r.stderr
    renewed = _tls_files(keyring_data)[0]
    assert renewed.serial_number != old_serial
    renewed.verify_directly_issued_by(_ca(keyring_data))

    # The keyring gone: a command that needs a secret says how to choose the file store.
    no_bus = _no_keyring_env(tmp_path)
    r = flowlink(keyring_data, "tls", "renew", user="alice", env=no_bus)
    assert r.returncode == 2
    assert CHOOSE_FILE_STORE in r.stderr and "Traceback" not in r.stderr
    assert _tls_files(keyring_data)[0].serial_number == renewed.serial_number
    # Reading public things needs no secret.
    assert flowlink(keyring_data, "keys", "public", env=no_bus).returncode == 0

