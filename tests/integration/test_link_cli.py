"""`flowlink link add/set/show/list/remove`: the real command, each call a new process.

One file-store workspace serves the module; an autouse fixture removes every link after each
test. The keyring tests at the end run the same commands against the private gnome-keyring of
the session_keyring fixture. Assertions compare key ids, counts and labels, never key text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from flowlink.workspace.identity import (
    cert_to_pem,
    generate_private_key,
    key_id,
    make_ca,
    private_key_to_pem,
    public_key_to_pem,
)
from flowlink.workspace.workspace import Workspace
from keyring_fixture import keyring_env, keyring_items
from workspace_fixtures import flowlink

NAME = "alpha"
PEER = "beta"
GOOD_URL = f"https://beta.example.org:8443/api/latest/sync_config/{NAME}/sync"
ADMIN_DENIED = "only an organization admin can change workspace links"
LABELS = {
    "name": "Name",
    "enabled": "Enabled",
    "remote_url": "Remote URL",
    "ca_cert": "CA certificate",
    "verify_ssl": "Verify SSL certificates",
    "own_private_key": "Own private key",
    "remote_public_key": "Remote public key",
    "send_all_executions": "Send all executions",
    "sync_interval": "Sync interval",
    "allow_flows": "Allowed flows",
}


class KeyFiles:
    """PEM files a user would hand to `link add`, plus the key ids they must show as."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        self.folder = folder
        remote = generate_private_key(2048)
        own = generate_private_key(2048)
        other = generate_private_key(2048)
        small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        ec_key = ec.generate_private_key(ec.SECP256R1())
        _, ca_cert = make_ca(PEER)
        self.privates = [private_key_to_pem(k) for k in (remote, own, other, small, ec_key)]
        self.remote_pub = self._write("remote.pub", public_key_to_pem(remote.public_key()))
        self.remote_key = self._write("remote.key", private_key_to_pem(remote))
        self.own_key = self._write("own.key", private_key_to_pem(own))
        self.own_pub = self._write("own.pub", public_key_to_pem(own.public_key()))
        self.other_key = self._write("other.key", private_key_to_pem(other))
        self.other_pub = self._write("other.pub", public_key_to_pem(other.public_key()))
        self.small_pub = self._write("small.pub", public_key_to_pem(small.public_key()))
        self.small_key = self._write("small.key", private_key_to_pem(small))
        self.ec_pub = self._write("ec.pub", public_key_to_pem(ec_key.public_key()))
        self.ca = self._write("ca.pem", cert_to_pem(ca_cert))
        self.garbage = self._write("garbage.txt", "this is not a key\n")
        self.empty = self._write("empty.txt", "")
        self.remote_kid = key_id(remote.public_key())
        self.own_kid = key_id(own.public_key())
        self.other_kid = key_id(other.public_key())

    def _write(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(text)
        return path

    def body_lines(self) -> list[str]:
        """The base64 lines of every private key these files hold."""
        return [
            line for pem in self.privates for line in pem.splitlines()
            if line and not line.startswith("-----")
        ]


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> KeyFiles:
    return KeyFiles(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def alpha(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("alpha") / "data"
    r = flowlink(data, "init", "--name", NAME, user="alice")
    assert r.returncode == 0, r.stderr
    r = flowlink(data, "users", "add", "bob", "--role", "user", user="alice")
    assert r.returncode == 0, r.stderr
    return data


@pytest.fixture(scope="module")
def alpha_pub(alpha, tmp_path_factory) -> tuple[Path, str]:
    r = flowlink(alpha, "keys", "public", "--pem")
    assert r.returncode == 0, r.stderr
    path = tmp_path_factory.mktemp("alpha-pub") / "alpha.pub"
    path.write_text(r.stdout)
    return path, _identity(alpha)[1]


@pytest.fixture(autouse=True)
def no_links_left(request) -> Iterator[None]:
    yield
    if "alpha" not in request.fixturenames:
        return
    data = request.getfixturevalue("alpha")
    ws = Workspace.open(data, acting_user="alice")
    try:
        for config in ws.links.list():
            ws.links.remove(config.name)
    finally:
        ws.close()
    assert _secret_files(data) == _workspace_items(data), "a key item outlived its link"


def _identity(data: Path) -> tuple[str, str]:
    """(workspace id, key id) of the workspace in ``data``."""
    ws = Workspace.open(data)
    try:
        return ws.id, ws.key_id
    finally:
        ws.close()


def _secret_files(data: Path) -> list[str]:
    return sorted(p.name for p in (data / "secrets").iterdir())


def _workspace_items(data: Path) -> list[str]:
    """The secret files of the workspace key and CA key only."""
    return sorted(n for n in _secret_files(data) if n.startswith("workspace_"))


def described(data: Path, name: str = PEER) -> dict:
    """What `link show` prints, read in this process (cheaper than another command)."""
    ws = Workspace.open(data)
    try:
        return ws.links.get(name).describe(ws.key_id, ws.secrets.display_name)
    finally:
        ws.close()


def add_directly(data: Path, name: str = PEER, **fields) -> None:
    """Set up a link through the core API: the command under test is another one."""
    from flowlink.workspace.links import SyncConfigChange

    ws = Workspace.open(data, acting_user="alice")
    try:
        ws.links.add(name, SyncConfigChange(**fields))
    finally:
        ws.close()


def link(data: Path, *args: str, user: str = "alice", env: dict | None = None):
    return flowlink(data, "link", *args, user=user, env=env)


def show(data: Path, name: str = PEER, env: dict | None = None) -> dict[str, str]:
    r = link(data, "show", name, env=env)
    assert r.returncode == 0, r.stderr
    return _parse_show(r.stdout)


def _parse_show(stdout: str) -> dict[str, str]:
    shown = {}
    for line in stdout.splitlines():
        label, _, value = line.partition(":")
        shown[label.strip()] = value.strip()
    return shown


def _assert_no_key_text(text: str, keys: KeyFiles) -> None:
    holds_pem = "BEGIN" in text or "PRIVATE KEY" in text
    assert not holds_pem, "output holds a PEM block"
    assert not any(line in text for line in keys.body_lines()), "output holds key material"


# --- add, show, list -------------------------------------------------------------------------


def test_add_with_every_field_then_show_and_list(alpha, keys):
    before = _secret_files(alpha)
    r = link(alpha, "add", PEER, "--remote-url", GOOD_URL, "--remote-public-key",
             str(keys.remote_pub), "--own-private-key", str(keys.own_key), "--ca-cert",
             str(keys.ca), "--no-verify-ssl", "--send-all-executions", "--sync-interval", "30",
             "--allow-flows", "collect_*,report", "--disabled")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"Saved the link to '{PEER}'."
    assert r.stderr == ""
    assert len(_secret_files(alpha)) == len(before) + 2

    r = link(alpha, "show", PEER)
    assert r.returncode == 0, r.stderr
    _assert_no_key_text(r.stdout, keys)
    shown = _parse_show(r.stdout)
    assert list(shown) == list(LABELS.values())
    store = f"file store in {alpha / 'secrets'}"
    assert shown == {
        "Name": PEER,
        "Enabled": "False",
        "Remote URL": GOOD_URL,
        "CA certificate": "set",
        "Verify SSL certificates": "False",
        "Own private key": f"set, stored in {store}, key id {keys.own_kid}",
        "Remote public key": f"set, stored in {store}, key id {keys.remote_kid}",
        "Send all executions": "True",
        "Sync interval": "30",
        "Allowed flows": "collect_*, report",
    }

    r = link(alpha, "list")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [PEER, "disabled", "controls", "it", GOOD_URL]


def test_add_with_only_the_remote_key_signs_with_the_workspace_key(alpha, keys):
    before = _secret_files(alpha)
    r = link(alpha, "add", PEER, "--remote-public-key", str(keys.remote_pub))
    assert r.returncode == 0, r.stderr
    assert len(_secret_files(alpha)) == len(before) + 1
    shown = show(alpha)
    assert shown["Own private key"] == (
        f"set (the workspace key), key id {_identity(alpha)[1]}")
    assert (shown["Enabled"], shown["Remote URL"], shown["CA certificate"]) == (
        "True", "(empty)", "(empty)")
    assert (shown["Verify SSL certificates"], shown["Send all executions"]) == ("True", "False")
    assert (shown["Sync interval"], shown["Allowed flows"]) == ("(empty)", "*")
    r = link(alpha, "list")
    assert r.stdout.split() == [PEER, "enabled", "controlled", "by", "it"]


def test_key_files_saved_by_windows_editors_are_accepted(alpha, keys, tmp_path):
    """A byte order mark in front and CRLF line ends, as Notepad may save a PEM file."""
    files = {}
    for name, source in (("pub", keys.remote_pub), ("key", keys.own_key), ("ca", keys.ca)):
        text = source.read_text().replace("\n", "\r\n")
        files[name] = tmp_path / f"windows.{name}"
        files[name].write_bytes(b"\xef\xbb\xbf" + text.encode())
    r = link(alpha, "add", PEER, "--remote-public-key", str(files["pub"]), "--own-private-key",
             str(files["key"]), "--ca-cert", str(files["ca"]))
    assert r.returncode == 0, r.stderr
    shown = described(alpha)
    assert shown["own_private_key"].endswith(f"key id {keys.own_kid}")
    assert shown["remote_public_key"].endswith(f"key id {keys.remote_kid}")
    assert shown["ca_cert"] == "set"


def test_list_is_sorted_and_empty_when_there_are_no_links(alpha, keys):
    r = link(alpha, "list")
    assert (r.returncode, r.stdout) == (0, "")
    for name, pub in (("gamma", keys.other_pub), (PEER, keys.remote_pub)):
        add_directly(alpha, name, remote_public_key=pub.read_text())
    r = link(alpha, "list")
    assert [line.split()[0] for line in r.stdout.splitlines()] == [PEER, "gamma"]


def test_plain_http_to_loopback_is_saved_with_a_warning(alpha, keys):
    url = f"http://127.0.0.1:8080/api/latest/sync_config/{NAME}/sync"
    r = link(alpha, "add", PEER, "--remote-public-key", str(keys.remote_pub), "--remote-url", url)
    assert r.returncode == 0, r.stderr
    assert "warning" in r.stderr and "http://" in r.stderr
    assert show(alpha)["Remote URL"] == url


# --- set ---------------------------------------------------------------------------------------


def test_set_changes_each_field_and_leaves_the_others(alpha, keys):
    add_directly(alpha, remote_public_key=keys.remote_pub.read_text())
    store = f"file store in {alpha / 'secrets'}"
    ws_kid = _identity(alpha)[1]
    expected = show(alpha)
    count = len(_secret_files(alpha))
    # Each step leaves some fields unnamed, and those must keep their values: argparse
    # defaults of store_true/store_false flags once turned "not given" into a change.
    steps: list[tuple[list[str], dict[str, str], int]] = [
        (["--sync-interval", "5"], {"Sync interval": "5"}, 0),
        (["--send-all-executions", "--no-verify-ssl", "--disabled", "--remote-url", GOOD_URL,
          "--ca-cert", str(keys.ca), "--allow-flows", "a*,b", "--own-private-key",
          str(keys.own_key)],
         {"Send all executions": "True", "Verify SSL certificates": "False", "Enabled": "False",
          "Remote URL": GOOD_URL, "CA certificate": "set", "Allowed flows": "a*, b",
          "Own private key": f"set, stored in {store}, key id {keys.own_kid}"}, +1),
        (["--no-send-all-executions"], {"Send all executions": "False"}, 0),
        (["--verify-ssl", "--enabled", "--sync-interval", "", "--remote-public-key",
          str(keys.other_pub)],
         {"Verify SSL certificates": "True", "Enabled": "True", "Sync interval": "(empty)",
          "Remote public key": f"set, stored in {store}, key id {keys.other_kid}"}, 0),
        (["--remote-url", "", "--ca-cert", str(keys.empty), "--allow-flows", "",
          "--use-workspace-key"],
         {"Remote URL": "(empty)", "CA certificate": "(empty)", "Allowed flows": "(none)",
          "Own private key": f"set (the workspace key), key id {ws_kid}"}, -1),
    ]
    for args, changed, delta in steps:
        r = link(alpha, "set", PEER, *args)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f"Saved the link to '{PEER}'."
        expected.update(changed)
        assert _as_shown(described(alpha)) == expected, f"after 'link set {' '.join(args)}'"
        count += delta
        assert len(_secret_files(alpha)) == count, f"after 'link set {' '.join(args)}'"
    assert show(alpha) == expected


def _as_shown(description: dict) -> dict[str, str]:
    """A description formatted the way `link show` prints it."""
    shown = {}
    for key, value in description.items():
        if isinstance(value, list):
            value = ", ".join(value) or "(none)"
        elif value is None or value == "":
            value = "(empty)"
        shown[LABELS[key]] = str(value)
    return shown


def test_set_with_no_options_changes_nothing(alpha, keys):
    add_directly(alpha, remote_public_key=keys.remote_pub.read_text(), enabled=False,
                 send_all_executions=True, verify_ssl=False, sync_interval=7)
    expected = _state(alpha)
    assert link(alpha, "set", PEER).returncode == 0
    rows, files = _state(alpha)
    assert files == expected[1]
    assert [r[:-1] for r in rows] == [r[:-1] for r in expected[0]]  # all but updated_at


def test_set_and_show_and_remove_of_a_missing_link_say_so(alpha):
    for action in (["set", "nobody", "--sync-interval", "5"], ["show", "nobody"],
                   ["remove", "nobody"]):
        r = link(alpha, *action)
        assert r.returncode == 2
        assert "no link to a workspace named 'nobody'" in r.stderr
        assert "flowlink link list" in r.stderr


# --- validation: every error is a sentence naming the field, and nothing is saved -------------


def _url(path_name: str = NAME, scheme: str = "https", host: str = "beta.example.org") -> str:
    return f"{scheme}://{host}/api/latest/sync_config/{path_name}/sync"


BAD_ADDS: dict[str, tuple[list[str], str, str]] = {
    # id: (options replacing the defaults, label in the sentence, phrase of the sentence)
    "url-wrong-path": (["--remote-url", "https://beta.example.org/api/latest/sync"],
                       "Remote URL", "must end in /api/latest/sync_config/alpha/sync"),
    "url-other-workspace-name": (["--remote-url", _url(PEER)], "Remote URL",
                                 "must end in /api/latest/sync_config/alpha/sync"),
    "url-credentials": (["--remote-url", _url(host="bob:pw@beta.example.org")], "Remote URL",
                        "user name or password"),
    "url-query": (["--remote-url", _url() + "?token=1"], "Remote URL", "query"),
    "url-javascript": (["--remote-url", "javascript:alert(1)"], "Remote URL", "https://"),
    "url-file": (["--remote-url", f"file:///api/latest/sync_config/{NAME}/sync"], "Remote URL",
                 "https://"),
    "url-http-remote-host": (["--remote-url", _url(scheme="http")], "Remote URL",
                             "only to this machine"),
    "remote-is-private": (["--remote-public-key", "{remote_key}"], "Remote public key",
                          "is a private key, but a public key is expected"),
    "remote-is-certificate": (["--remote-public-key", "{ca}"], "Remote public key",
                              "is a certificate, not a public key"),
    "remote-too-small": (["--remote-public-key", "{small_pub}"], "Remote public key",
                         "at least 2048 bits"),
    "remote-not-rsa": (["--remote-public-key", "{ec_pub}"], "Remote public key",
                       "an EC key"),
    "remote-garbage": (["--remote-public-key", "{garbage}"], "Remote public key",
                       "not a PEM public key"),
    "remote-is-this-workspace": (["--remote-public-key", "{alpha_pub}"], "Remote public key",
                                 "this workspace's own public key"),
    "own-is-public": (["--own-private-key", "{own_pub}"], "Own private key",
                      "is a public key, but a private key is expected"),
    "own-is-certificate": (["--own-private-key", "{ca}"], "Own private key",
                           "is a certificate, not a private key"),
    "own-too-small": (["--own-private-key", "{small_key}"], "Own private key",
                      "at least 2048 bits"),
    "own-pairs-with-remote": (["--own-private-key", "{remote_key}"], "Own private key",
                              "one key pair"),
    "ca-is-public-key": (["--ca-cert", "{own_pub}"], "CA certificate",
                         "is a public key, not a certificate"),
    "ca-garbage": (["--ca-cert", "{garbage}"], "CA certificate", "not a PEM certificate"),
    "interval-zero": (["--sync-interval", "0"], "Sync interval", "whole number"),
    "interval-negative": (["--sync-interval=-1"], "Sync interval", "whole number"),
    "interval-fraction": (["--sync-interval", "1.5"], "Sync interval", "whole number"),
    "interval-text": (["--sync-interval", "abc"], "Sync interval", "whole number"),
    "allow-unbalanced": (["--allow-flows", "report,collect_["], "Allowed flows", "unbalanced"),
}


def _fill(args: list[str], keys: KeyFiles, alpha_pub: Path) -> list[str]:
    files = {
        "remote_key": keys.remote_key, "ca": keys.ca, "small_pub": keys.small_pub,
        "small_key": keys.small_key, "ec_pub": keys.ec_pub, "garbage": keys.garbage,
        "alpha_pub": alpha_pub, "own_pub": keys.own_pub,
    }
    return [str(files[a[1:-1]]) if a.startswith("{") else a for a in args]


def _with_defaults(args: list[str], keys: KeyFiles) -> list[str]:
    """A valid remote key and own key beside the bad option, unless it replaces them."""
    full = list(args)
    if "--remote-public-key" not in args:
        full += ["--remote-public-key", str(keys.remote_pub)]
    if "--own-private-key" not in args and "{remote_key}" not in str(args):
        full += ["--own-private-key", str(keys.other_key)]
    return full


def _rows(data: Path) -> list:
    with closing(sqlite3.connect(data / "workspace.db")) as conn:
        return conn.execute("SELECT * FROM links ORDER BY name").fetchall()


def _state(data: Path) -> tuple[list, list[str]]:
    return _rows(data), _secret_files(data)


def _assert_refusal(r, label: str, phrase: str, keys: KeyFiles) -> None:
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert any(line.startswith(f"flowlink: {label}: ") and phrase in line for line in lines), (
        f"no sentence naming {label!r} that says {phrase!r}")
    assert lines[-1] == "flowlink: nothing was saved."
    assert not any(line in r.stderr for line in keys.body_lines()), "stderr holds key material"


@pytest.mark.parametrize("case", list(BAD_ADDS))
def test_a_refused_add_names_the_field_and_saves_nothing(alpha, keys, alpha_pub, case):
    options, label, phrase = BAD_ADDS[case]
    before = _state(alpha)
    r = link(alpha, "add", PEER, *_with_defaults(_fill(options, keys, alpha_pub[0]), keys))
    _assert_refusal(r, label, phrase, keys)
    assert _state(alpha) == before
    assert before[0] == []


@pytest.mark.parametrize(
    "case", ["url-credentials", "remote-is-private", "remote-is-this-workspace",
             "own-pairs-with-remote", "ca-garbage", "interval-fraction", "allow-unbalanced"])
def test_a_refused_set_names_the_field_and_changes_nothing(alpha, keys, alpha_pub, case):
    add_directly(alpha, remote_public_key=keys.remote_pub.read_text(), remote_url=GOOD_URL,
                 sync_interval=60, own_private_key=keys.own_key.read_text())
    before, shown = _state(alpha), described(alpha)
    options, label, phrase = BAD_ADDS[case]
    args = _fill(options, keys, alpha_pub[0])
    if "--own-private-key" not in args and "{remote_key}" not in str(options):
        args += ["--own-private-key", str(keys.other_key)]  # valid, yet must not be stored
    r = link(alpha, "set", PEER, *args)
    _assert_refusal(r, label, phrase, keys)
    assert _state(alpha) == before
    assert described(alpha) == shown


@pytest.mark.parametrize(
    ("name", "phrase"),
    [("Bad_Name", "not a valid workspace name"), (NAME, "cannot link to itself")],
)
def test_a_bad_link_name_is_refused(alpha, keys, name, phrase):
    before = _state(alpha)
    r = link(alpha, "add", name, "--remote-public-key", str(keys.remote_pub))
    _assert_refusal(r, "Name", phrase, keys)
    assert _state(alpha) == before


def test_a_second_add_of_one_name_is_refused(alpha, keys):
    add_directly(alpha, remote_public_key=keys.remote_pub.read_text())
    before = _state(alpha)
    r = link(alpha, "add", PEER, "--remote-public-key", str(keys.other_pub),
             "--own-private-key", str(keys.own_key))
    _assert_refusal(r, "Name", "already a link", keys)
    assert _state(alpha) == before


def test_an_unreadable_key_file_is_refused(alpha, keys, tmp_path):
    before = _state(alpha)
    r = link(alpha, "add", PEER, "--remote-public-key", str(tmp_path / "missing.pub"))
    assert r.returncode == 2
    assert "cannot read the remote public key file" in r.stderr
    assert _state(alpha) == before


def test_remote_public_key_is_required_on_add(alpha):
    r = link(alpha, "add", PEER)
    assert r.returncode == 2
    assert "--remote-public-key" in r.stderr


# --- remove ------------------------------------------------------------------------------------


def test_remove_deletes_the_link_and_its_key_items(alpha, keys):
    baseline = _secret_files(alpha)
    add_directly(alpha, remote_public_key=keys.remote_pub.read_text(),
                 own_private_key=keys.own_key.read_text())
    add_directly(alpha, "gamma", remote_public_key=keys.other_pub.read_text())
    assert len(_secret_files(alpha)) == len(baseline) + 3
    r = link(alpha, "remove", PEER)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"Removed the link to '{PEER}' and its keys."
    assert len(_secret_files(alpha)) == len(baseline) + 1  # gamma's remote key
    assert [r[0] for r in _state(alpha)[0]] == ["gamma"]
    assert link(alpha, "remove", "gamma").returncode == 0
    assert _secret_files(alpha) == baseline
    assert _state(alpha)[0] == []


# --- roles -------------------------------------------------------------------------------------


def test_a_plain_user_cannot_add_set_or_remove_links(alpha, keys):
    add_directly(alpha, remote_public_key=keys.remote_pub.read_text(), sync_interval=60)
    before = _state(alpha)
    attempts = [
        ["add", "gamma", "--remote-public-key", str(keys.other_pub), "--own-private-key",
         str(keys.own_key)],
        ["set", PEER, "--sync-interval", "5", "--remote-public-key", str(keys.other_pub)],
        ["remove", PEER],
    ]
    for user in ("bob", "mallory"):  # a user with role `user`, and no user at all
        for attempt in attempts:
            r = link(alpha, *attempt, user=user)
            assert r.returncode == 2, f"{user}: link {attempt[0]}"
            assert ADMIN_DENIED in r.stderr.lower(), f"{user}: link {attempt[0]}"
            assert _state(alpha) == before
    # Reading is for everyone.
    r = link(alpha, "list", user="bob")
    assert r.returncode == 0 and r.stdout.split()[0] == PEER


# --- the real keyring --------------------------------------------------------------------------


@pytest.fixture
def keyring_ws(session_keyring, tmp_path) -> tuple[Path, str]:
    data = tmp_path / "kr"
    r = flowlink(data, "init", "--name", "kr-alpha", user="alice", env=keyring_env())
    assert r.returncode == 0, r.stderr
    assert "Secret Service" in r.stdout
    assert not (data / "secrets").exists()
    return data, _identity(data)[0]


@pytest.mark.keyring
def test_keyring_link_add_set_remove_store_and_delete_real_items(keyring_ws, keys):
    data, wid = keyring_ws
    env = keyring_env()
    users, labels = keyring_items(wid)
    assert labels == ["Flowlink kr-alpha: workspace CA private key",
                      "Flowlink kr-alpha: workspace private key"]
    baseline = users

    r = link(data, "add", PEER, "--remote-public-key", str(keys.remote_pub),
             "--own-private-key", str(keys.own_key), env=env)
    assert r.returncode == 0, r.stderr
    users, labels = keyring_items(wid)
    assert users == sorted([*baseline, f"link/{PEER}/own-private-key/{keys.own_kid}",
                            f"link/{PEER}/remote-public-key/{keys.remote_kid}"])
    assert f"Flowlink kr-alpha: own private key for link {PEER}" in labels
    assert f"Flowlink kr-alpha: remote public key of link {PEER}" in labels
    shown = show(data, env=env)
    assert shown["Own private key"] == (
        f"set, stored in Secret Service (org.freedesktop.secrets), key id {keys.own_kid}")

    # A refused change leaves the keyring as it was, even beside a valid new key.
    r = link(data, "set", PEER, "--own-private-key", str(keys.other_key), "--sync-interval",
             "1.5", env=env)
    assert r.returncode == 2 and "Sync interval" in r.stderr
    r = link(data, "add", "gamma", "--remote-public-key", str(keys.own_pub),
             "--own-private-key", str(keys.own_key), env=env)
    assert r.returncode == 2 and "one key pair" in r.stderr
    assert keyring_items(wid)[0] == users

    # Replacing a key replaces its item.
    r = link(data, "set", PEER, "--remote-public-key", str(keys.other_pub), env=env)
    assert r.returncode == 0, r.stderr
    assert keyring_items(wid)[0] == sorted([
        *baseline, f"link/{PEER}/own-private-key/{keys.own_kid}",
        f"link/{PEER}/remote-public-key/{keys.other_kid}"])

    r = link(data, "remove", PEER, env=env)
    assert r.returncode == 0, r.stderr
    assert keyring_items(wid)[0] == baseline

    # The keyring unreachable: the add fails with the way out, and SQLite gets nothing.
    no_bus = {**env, "DBUS_SESSION_BUS_ADDRESS": f"unix:path={data / 'no-such-bus'}"}
    r = link(data, "add", PEER, "--remote-public-key", str(keys.remote_pub), env=no_bus)
    assert r.returncode == 2
    assert "--secret-store file or FLOWLINK_SECRET_STORE=file" in r.stderr
    assert _rows(data) == []
    assert keyring_items(wid)[0] == baseline

