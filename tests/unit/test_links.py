"""Synch Configs through the core API: validation, key items in the SecretStore, roles.

One workspace (file store) serves the whole module; an autouse fixture removes every link
after each test and checks that no key item outlives its link. Assertions compare key ids
and file names, never key text, so a failure can never print key material.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from flowlink.errors import (
    NotFoundError,
    PermissionDeniedError,
    SecretStoreError,
    ValidationError,
    ValidationErrors,
)
from flowlink.workspace.identity import (
    cert_to_pem,
    generate_private_key,
    key_id,
    make_ca,
    private_key_to_pem,
    public_key_to_pem,
)
from flowlink.workspace.links import (
    FIELD_LABELS,
    MAX_SYNC_INTERVAL,
    USE_WORKSPACE_KEY,
    SyncConfigChange,
    check_remote_url,
    own_key_item,
    parse_allow_flows,
    parse_sync_interval,
    remote_key_item,
)
from flowlink.workspace.workspace import Workspace

NAME = "alpha"
PEER = "beta"
GOOD_URL = f"https://beta.example.org:8443/api/latest/sync_config/{NAME}/sync"
ADMIN_DENIED = "only an organization admin can change workspace links"


# --- keys and the workspace, made once ------------------------------------------------------


class Keys:
    def __init__(self) -> None:
        self.remote = generate_private_key(2048)  # the peer's key pair
        self.own = generate_private_key(2048)  # a link-specific signing key of ours
        self.other = generate_private_key(2048)
        self.small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        _, ca_cert = make_ca(PEER)
        self.ca_pem = cert_to_pem(ca_cert)

    @staticmethod
    def private(key) -> str:
        return private_key_to_pem(key)

    @staticmethod
    def public(key) -> str:
        return public_key_to_pem(key.public_key())

    @staticmethod
    def kid(key) -> str:
        return key_id(key.public_key())


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path_factory.mktemp("links") / "ws", NAME, admin="alice",
                               secret_store="file")
    workspace.add_user("bob", "user")
    yield workspace
    workspace.close()


@pytest.fixture(autouse=True)
def no_links_left(ws) -> Iterator[None]:
    before = _secret_files(ws)
    yield
    for config in ws.links.list():
        ws.links.remove(config.name)
    assert _secret_files(ws) == before, "a key item outlived its link"


def _secret_files(ws: Workspace) -> list[str]:
    return sorted(p.name for p in (ws.data_dir / "secrets").iterdir())


def _has_item(ws: Workspace, item: str) -> bool:
    return ws.secrets.get_optional(item) is not None


def _change(keys: Keys, **fields) -> SyncConfigChange:
    fields.setdefault("remote_public_key", keys.public(keys.remote))
    return SyncConfigChange(**fields)


def _snapshot(ws: Workspace) -> tuple[list, list[str]]:
    """Everything a failed change must leave alone: SQLite's links and the secret files."""
    rows = [tuple(r) for r in ws.store.conn.execute("SELECT * FROM links ORDER BY name")]
    return rows, _secret_files(ws)


# --- Remote URL -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        GOOD_URL,
        f"https://beta.example.org/api/latest/sync_config/{NAME}/sync",
        f"https://10.0.0.5:9443/api/latest/sync_config/{NAME}/sync",
        f"https://[2001:db8::5]:9443/api/latest/sync_config/{NAME}/sync",
        f"HTTPS://Beta.Example.ORG/api/latest/sync_config/{NAME}/sync",
    ],
)
def test_https_urls_to_this_workspace_are_accepted_without_warning(url):
    assert check_remote_url(url, NAME) == []


@pytest.mark.parametrize(
    "url",
    [
        f"http://127.0.0.1:8080/api/latest/sync_config/{NAME}/sync",
        f"http://localhost:8080/api/latest/sync_config/{NAME}/sync",
        f"http://[::1]:8080/api/latest/sync_config/{NAME}/sync",
        f"http://127.8.9.10/api/latest/sync_config/{NAME}/sync",
    ],
)
def test_plain_http_to_this_machine_is_accepted_with_a_warning(url):
    warnings = check_remote_url(url, NAME)
    assert len(warnings) == 1
    assert "Remote URL" in warnings[0] and "http://" in warnings[0]


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        (f"https://beta.example.org/api/latest/sync_config/{PEER}/sync", "must end in"),
        ("https://beta.example.org/api/latest/sync_config/other/sync", "must end in"),
        (f"https://beta.example.org/api/latest/sync_config/{NAME}/sync/", "must end in"),
        (f"https://beta.example.org/api/v1/sync_config/{NAME}/sync", "must end in"),
        ("https://beta.example.org/", "must end in"),
        ("https://beta.example.org", "must end in"),
        (f"https://bob:secret@beta.example.org/api/latest/sync_config/{NAME}/sync",
         "user name or password"),
        (f"https://bob@beta.example.org/api/latest/sync_config/{NAME}/sync",
         "user name or password"),
        (f"https://beta.example.org/api/latest/sync_config/{NAME}/sync?x=1", "query"),
        (f"https://beta.example.org/api/latest/sync_config/{NAME}/sync?", "must"),
        (f"https://beta.example.org/api/latest/sync_config/{NAME}/sync#top", "fragment"),
        ("javascript:alert(1)", "https://"),
        (f"javascript://beta.example.org/api/latest/sync_config/{NAME}/sync", "https://"),
        (f"file:///api/latest/sync_config/{NAME}/sync", "https://"),
        (f"ftp://beta.example.org/api/latest/sync_config/{NAME}/sync", "https://"),
        (f"beta.example.org/api/latest/sync_config/{NAME}/sync", "https://"),
        (f"http://beta.example.org/api/latest/sync_config/{NAME}/sync", "only to this machine"),
        (f"http://10.0.0.5/api/latest/sync_config/{NAME}/sync", "only to this machine"),
        (f"http://0.0.0.0/api/latest/sync_config/{NAME}/sync", "only to this machine"),
        (f"http://127.0.0.1.nip.io/api/latest/sync_config/{NAME}/sync", "only to this machine"),
        (f"https:///api/latest/sync_config/{NAME}/sync", "no host"),
        (f"https://beta.example.org:0/api/latest/sync_config/{NAME}/sync", "port 0"),
        (f"https://beta.example.org:99999/api/latest/sync_config/{NAME}/sync", "not a valid URL"),
        (f"https://beta.example.org/api/latest/sync_config/{NAME}/sync extra", "spaces"),
        (f"https://beta.example.org/api/latest/sync_config/{NAME}/\nsync", "control"),
        ("https://beta.example.org/" + "a" * 3000, "one URL"),
    ],
)
def test_bad_remote_urls_are_refused_with_a_sentence_naming_the_field(url, phrase):
    with pytest.raises(ValidationError) as excinfo:
        check_remote_url(url, NAME)
    assert excinfo.value.field == "remote_url"
    sentence = excinfo.value.message
    assert sentence.startswith("Remote URL ")
    assert sentence.endswith(".")
    assert phrase in sentence


# --- Sync interval and allowed flows --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("   ", None), (1, 1), ("1", 1), (" 60 ", 60), (3600, 3600),
     (MAX_SYNC_INTERVAL, MAX_SYNC_INTERVAL)],
)
def test_sync_interval_whole_seconds_or_empty(value, expected):
    assert parse_sync_interval(value) == expected


@pytest.mark.parametrize(
    "value",
    [0, -1, "0", "-1", "1.5", 1.5, "abc", "1e3", "0x10", True, False, "１", "+5",
     MAX_SYNC_INTERVAL + 1, str(MAX_SYNC_INTERVAL + 1), "99999999"],
)
def test_bad_sync_intervals_are_refused(value):
    with pytest.raises(ValidationError) as excinfo:
        parse_sync_interval(value)
    assert excinfo.value.field == "sync_interval"
    assert excinfo.value.message.startswith("Sync interval ")


def test_allow_list_accepts_globs_and_drops_blanks():
    assert parse_allow_flows("collect_*, report, [a-c]?x ,") == ["collect_*", "report", "[a-c]?x"]
    assert parse_allow_flows(["*"]) == ["*"]
    assert parse_allow_flows("") == []


@pytest.mark.parametrize(
    "value", ["collect_[", "[", "a[b", "ok,[abc", ["good", "bad["], ["tab\there"], ["x" * 201]]
)
def test_bad_allow_list_patterns_are_refused(value):
    with pytest.raises(ValidationError) as excinfo:
        parse_allow_flows(value)
    assert excinfo.value.field == "allow_flows"
    assert "pattern" in excinfo.value.message


# --- adding ---------------------------------------------------------------------------------


def test_add_with_every_field_stores_ids_in_sqlite_and_keys_in_the_secret_store(ws, keys):
    before = _secret_files(ws)
    change = _change(
        keys,
        enabled=False,
        remote_url=GOOD_URL,
        ca_cert=keys.ca_pem,
        verify_ssl=False,
        own_private_key=keys.private(keys.own),
        send_all_executions=True,
        sync_interval="30",
        allow_flows="collect_*, report",
    )
    config = ws.links.add(PEER, change)
    assert change.warnings == []
    assert (config.name, config.enabled, config.remote_url, config.verify_ssl) == (
        PEER, False, GOOD_URL, False)
    assert config.ca_cert is not None and config.ca_cert.strip() == keys.ca_pem.strip()
    assert config.own_key_id == keys.kid(keys.own)
    assert config.remote_key_id == keys.kid(keys.remote)
    assert (config.send_all_executions, config.sync_interval) == (True, 30)
    assert config.allow_flows == ["collect_*", "report"]
    assert config.controls
    assert config.allows("collect_daily") and config.allows("report")
    assert not config.allows("reports") and not config.allows("delete_all")

    assert _has_item(ws, own_key_item(PEER, keys.kid(keys.own)))
    assert _has_item(ws, remote_key_item(PEER, keys.kid(keys.remote)))
    assert len(_secret_files(ws)) == len(before) + 2
    assert key_id(ws.links.own_private_key(config).public_key()) == keys.kid(keys.own)
    assert key_id(ws.links.remote_public_key(config)) == keys.kid(keys.remote)

    # SQLite holds the key ids only.
    with closing(sqlite3.connect(ws.data_dir / "workspace.db")) as conn:
        row = conn.execute("SELECT * FROM links WHERE name = ?", (PEER,)).fetchone()
    text = " ".join(str(v) for v in row)
    holds_pem = "PRIVATE KEY" in text or "PUBLIC KEY" in text
    assert not holds_pem, "the links row holds a key"
    assert keys.kid(keys.own) in text and keys.kid(keys.remote) in text


def test_add_with_defaults_signs_with_the_workspace_key(ws, keys):
    before = _secret_files(ws)
    config = ws.links.add(PEER, _change(keys))
    assert config.own_key_id is None
    assert config.enabled and config.verify_ssl
    assert config.remote_url is None and not config.controls
    assert config.ca_cert is None and config.sync_interval is None
    assert not config.send_all_executions
    assert config.allow_flows == ["*"]
    assert len(_secret_files(ws)) == len(before) + 1  # the remote public key only
    assert key_id(ws.links.own_private_key(config).public_key()) == ws.key_id


def test_describe_shows_every_field_and_keys_only_as_set_with_their_key_id(ws, keys):
    config = ws.links.add(PEER, _change(keys, own_private_key=keys.private(keys.own),
                                        ca_cert=keys.ca_pem, remote_url=GOOD_URL))
    shown = config.describe(ws.key_id, ws.secrets.display_name)
    assert set(shown) == set(FIELD_LABELS)
    assert shown["own_private_key"].startswith("set")
    assert shown["own_private_key"].endswith(f"key id {keys.kid(keys.own)}")
    assert shown["remote_public_key"].startswith("set")
    assert shown["remote_public_key"].endswith(f"key id {keys.kid(keys.remote)}")
    assert shown["ca_cert"].startswith("set")
    text = repr(shown)
    holds_pem = "BEGIN" in text or "KEY-----" in text
    assert not holds_pem, "the description holds a key"

    ws.links.update(PEER, SyncConfigChange(own_private_key=USE_WORKSPACE_KEY))
    shown = ws.links.get(PEER).describe(ws.key_id, ws.secrets.display_name)
    assert shown["own_private_key"] == f"set (the workspace key), key id {ws.key_id}"


def test_http_to_loopback_saves_with_a_warning(ws, keys):
    change = _change(keys, remote_url=f"http://127.0.0.1:8080/api/latest/sync_config/{NAME}/sync")
    config = ws.links.add(PEER, change)
    assert config.remote_url.startswith("http://127.0.0.1:8080/")
    assert len(change.warnings) == 1 and "http://" in change.warnings[0]


# --- every validation error saves nothing ---------------------------------------------------


def _bad_changes(keys: Keys, ws: Workspace) -> dict[str, tuple[dict, str, str]]:
    """id -> (change fields, failing field, phrase of its sentence)."""
    cert = keys.ca_pem
    return {
        "url-wrong-path": ({"remote_url": "https://b.example/api/latest/sync_config/x/sync"},
                           "remote_url", "must end in"),
        "url-credentials": (
            {"remote_url": f"https://u:p@b.example/api/latest/sync_config/{NAME}/sync"},
            "remote_url", "user name or password"),
        "url-http-remote": (
            {"remote_url": f"http://b.example/api/latest/sync_config/{NAME}/sync"},
            "remote_url", "https://"),
        "url-javascript": ({"remote_url": "javascript:alert(1)"}, "remote_url", "https://"),
        "remote-missing": ({"remote_public_key": None}, "remote_public_key", "required"),
        "remote-empty": ({"remote_public_key": ""}, "remote_public_key", "empty"),
        "remote-garbage": ({"remote_public_key": "hello"}, "remote_public_key", "not a PEM"),
        "remote-is-private": ({"remote_public_key": keys.private(keys.remote)},
                              "remote_public_key", "is a private key"),
        "remote-is-certificate": ({"remote_public_key": cert}, "remote_public_key",
                                  "is a certificate"),
        "remote-too-small": ({"remote_public_key": keys.public(keys.small)},
                             "remote_public_key", "at least 2048 bits"),
        "remote-not-rsa": ({"remote_public_key": keys.public(keys.ec)}, "remote_public_key",
                           "an EC key"),
        "remote-is-this-workspace": ({"remote_public_key": ws.public_key_pem},
                                     "remote_public_key", "this workspace's own public key"),
        "own-garbage": ({"own_private_key": "not a key"}, "own_private_key", "not a PEM"),
        "own-is-public": ({"own_private_key": keys.public(keys.own)}, "own_private_key",
                          "is a public key"),
        "own-is-certificate": ({"own_private_key": cert}, "own_private_key",
                               "is a certificate"),
        "own-too-small": ({"own_private_key": keys.private(keys.small)}, "own_private_key",
                          "at least 2048 bits"),
        "own-not-rsa": ({"own_private_key": keys.private(keys.ec)}, "own_private_key",
                        "an EC key"),
        "own-pairs-with-remote": ({"own_private_key": keys.private(keys.remote)},
                                  "own_private_key", "one key pair"),
        "ca-garbage": ({"ca_cert": "not a certificate"}, "ca_cert", "not a PEM"),
        "ca-is-public-key": ({"ca_cert": keys.public(keys.remote)}, "ca_cert", "public key"),
        "ca-is-private-key": ({"ca_cert": keys.private(keys.own)}, "ca_cert", "private key"),
        "ca-damaged": ({"ca_cert": cert.replace(cert.splitlines()[3], "A" * 64)}, "ca_cert",
                       "could not be read"),
        "interval-zero": ({"sync_interval": "0"}, "sync_interval", "whole number"),
        "interval-negative": ({"sync_interval": "-1"}, "sync_interval", "whole number"),
        "interval-fraction": ({"sync_interval": "1.5"}, "sync_interval", "whole number"),
        "interval-text": ({"sync_interval": "abc"}, "sync_interval", "whole number"),
        "allow-unbalanced": ({"allow_flows": "report,collect_["}, "allow_flows", "unbalanced"),
        "enabled-not-bool": ({"enabled": "yes"}, "enabled", "on or off"),
    }


BAD_IDS = [
    "url-wrong-path", "url-credentials", "url-http-remote", "url-javascript",
    "remote-missing", "remote-empty", "remote-garbage", "remote-is-private",
    "remote-is-certificate", "remote-too-small", "remote-not-rsa", "remote-is-this-workspace",
    "own-garbage", "own-is-public", "own-is-certificate", "own-too-small", "own-not-rsa",
    "own-pairs-with-remote", "ca-garbage", "ca-is-public-key", "ca-is-private-key",
    "ca-damaged", "interval-zero", "interval-negative", "interval-fraction", "interval-text",
    "allow-unbalanced", "enabled-not-bool",
]


def _body_lines(text: object) -> list[str]:
    """The base64 lines of any PEM text among the given values."""
    return [
        line for line in str(text).splitlines()
        if len(line) >= 16 and not line.startswith("-----")
    ]


def _assert_sentence(errors: dict[str, str], field: str, phrase: str, given: dict) -> None:
    assert field in errors, f"no error for {field}; errors for {sorted(errors)}"
    sentence = errors[field]
    label = FIELD_LABELS[field]
    assert label in sentence, f"the sentence for {field} does not name '{label}'"
    assert phrase in sentence, f"the sentence for {field} does not say '{phrase}'"
    for value in given.values():
        assert not any(line in sentence for line in _body_lines(value)), (
            f"the sentence for {field} quotes the text it was given")


def test_the_bad_change_table_covers_every_case(ws, keys):
    assert sorted(_bad_changes(keys, ws)) == sorted(BAD_IDS)


@pytest.mark.parametrize("case", BAD_IDS)
def test_a_failed_add_saves_nothing(ws, keys, case):
    fields, field, phrase = _bad_changes(keys, ws)[case]
    # A valid own key beside a bad field must not reach the secret store either.
    if "own_private_key" not in fields and field != "remote_public_key":
        fields = {"own_private_key": keys.private(keys.own), **fields}
    before = _snapshot(ws)
    with pytest.raises(ValidationErrors) as excinfo:
        ws.links.add(PEER, _change(keys, **fields))
    _assert_sentence(excinfo.value.errors, field, phrase, fields)
    assert _snapshot(ws) == before
    assert ws.links.list() == []


@pytest.mark.parametrize("case", [c for c in BAD_IDS if c != "remote-missing"])
def test_a_failed_update_changes_nothing(ws, keys, case):
    ws.links.add(PEER, _change(keys, own_private_key=keys.private(keys.other),
                               remote_url=GOOD_URL, sync_interval=60))
    fields, field, phrase = _bad_changes(keys, ws)[case]
    if case == "own-pairs-with-remote":
        fields = {"own_private_key": keys.private(keys.remote)}
    # A valid new remote key beside the bad field must not replace the stored one.
    if field != "remote_public_key" and case != "own-pairs-with-remote":
        fields = {"remote_public_key": keys.public(keys.own), **fields}
    before = _snapshot(ws)
    with pytest.raises(ValidationErrors) as excinfo:
        ws.links.update(PEER, SyncConfigChange(**fields))
    _assert_sentence(excinfo.value.errors, field, phrase, fields)
    assert _snapshot(ws) == before


def test_a_new_own_key_that_pairs_with_the_stored_remote_key_is_refused(ws, keys):
    ws.links.add(PEER, _change(keys))
    before = _snapshot(ws)
    with pytest.raises(ValidationErrors) as excinfo:
        ws.links.update(PEER, SyncConfigChange(own_private_key=keys.private(keys.remote)))
    _assert_sentence(excinfo.value.errors, "own_private_key", "one key pair", {})
    assert _snapshot(ws) == before


def test_the_workspace_public_key_is_refused_as_remote_key_even_with_an_own_key(ws, keys):
    before = _snapshot(ws)
    with pytest.raises(ValidationErrors) as excinfo:
        ws.links.add(PEER, _change(keys, own_private_key=keys.private(keys.own),
                                   remote_public_key=ws.public_key_pem))
    _assert_sentence(excinfo.value.errors, "remote_public_key", "this workspace", {})
    assert _snapshot(ws) == before


def test_switching_to_the_workspace_key_that_pairs_with_the_remote_key_is_refused(ws, keys):
    ws.links.add(PEER, _change(keys, own_private_key=keys.private(keys.own)))
    before = _snapshot(ws)
    with pytest.raises(ValidationErrors):
        ws.links.update(PEER, SyncConfigChange(own_private_key=USE_WORKSPACE_KEY,
                                               remote_public_key=ws.public_key_pem))
    assert _snapshot(ws) == before


def test_several_bad_fields_are_all_reported_at_once(ws, keys):
    before = _snapshot(ws)
    with pytest.raises(ValidationErrors) as excinfo:
        ws.links.add("Bad_Name", _change(
            keys, remote_url="ftp://x/y", sync_interval="soon", allow_flows="[",
            ca_cert="nope", own_private_key="nope", remote_public_key="nope"))
    assert set(excinfo.value.errors) == {
        "name", "remote_url", "sync_interval", "allow_flows", "ca_cert", "own_private_key",
        "remote_public_key"}
    assert _snapshot(ws) == before


@pytest.mark.parametrize(
    ("name", "phrase"),
    [("Bad_Name", "not a valid workspace name"), (NAME, "cannot link to itself"),
     ("-x", "not a valid workspace name"), ("", "not a valid workspace name")],
)
def test_bad_link_names_are_refused(ws, keys, name, phrase):
    before = _snapshot(ws)
    with pytest.raises(ValidationErrors) as excinfo:
        ws.links.add(name, _change(keys))
    assert phrase in excinfo.value.errors["name"]
    assert _snapshot(ws) == before


def test_a_second_add_of_the_same_name_is_refused_and_keeps_the_first(ws, keys):
    ws.links.add(PEER, _change(keys, sync_interval=5))
    before = _snapshot(ws)
    with pytest.raises(ValidationErrors) as excinfo:
        ws.links.add(PEER, _change(keys, remote_public_key=keys.public(keys.other),
                                   own_private_key=keys.private(keys.own)))
    assert "already a link" in excinfo.value.errors["name"]
    assert _snapshot(ws) == before


def test_a_failed_secret_write_leaves_sqlite_and_the_store_as_they_were(ws, keys, monkeypatch):
    ws.links.add(PEER, _change(keys))
    before = _snapshot(ws)
    real_set = ws.secrets.set
    calls = []

    def failing_second_set(key, value, label):
        calls.append(key)
        if len(calls) == 2:
            raise SecretStoreError("The test store failed on purpose.")
        real_set(key, value, label)

    monkeypatch.setattr(ws.secrets, "set", failing_second_set)
    with pytest.raises(SecretStoreError):
        ws.links.update(PEER, SyncConfigChange(own_private_key=keys.private(keys.own),
                                               remote_public_key=keys.public(keys.other)))
    assert len(calls) == 2
    assert _snapshot(ws) == before


def _race(ws: Workspace, monkeypatch, other_writer) -> None:
    """Run ``other_writer`` (another process's change) right after the first secret write."""
    real_set = ws.secrets.set
    raced = []

    def set_then_race(key, value, label):
        real_set(key, value, label)
        if not raced:
            raced.append(key)
            other_writer()

    monkeypatch.setattr(ws.secrets, "set", set_then_race)


def test_an_add_that_loses_a_race_keeps_the_winner_and_its_key_items(ws, keys, monkeypatch):
    other = Workspace.open(ws.data_dir, acting_user="alice")
    try:
        _race(ws, monkeypatch, lambda: other.links.add(PEER, _change(keys, sync_interval=7)))
        with pytest.raises(ValidationErrors) as excinfo:
            ws.links.add(PEER, _change(keys, own_private_key=keys.private(keys.own)))
        assert "meanwhile" in excinfo.value.errors["name"]
        config = ws.links.get(PEER)
        assert (config.sync_interval, config.own_key_id) == (7, None)
        # The winner stored the same remote key under the same item: it must survive.
        assert _has_item(ws, remote_key_item(PEER, keys.kid(keys.remote)))
        assert not _has_item(ws, own_key_item(PEER, keys.kid(keys.own)))
    finally:
        other.close()


def test_an_update_of_a_link_removed_meanwhile_does_not_bring_it_back(ws, keys, monkeypatch):
    ws.links.add(PEER, _change(keys))
    other = Workspace.open(ws.data_dir, acting_user="alice")
    try:
        before = _secret_files(ws)
        _race(ws, monkeypatch, lambda: other.links.remove(PEER))
        with pytest.raises(ValidationErrors) as excinfo:
            ws.links.update(PEER, SyncConfigChange(own_private_key=keys.private(keys.own),
                                                   sync_interval=5))
        assert "meanwhile" in excinfo.value.errors["name"]
        assert ws.links.list() == []
        assert len(_secret_files(ws)) == len(before) - 1  # the remover took the remote key
    finally:
        other.close()


# --- changing and removing ------------------------------------------------------------------


def test_update_changes_only_the_fields_given(ws, keys):
    ws.links.add(PEER, _change(keys, remote_url=GOOD_URL, ca_cert=keys.ca_pem,
                               verify_ssl=False, send_all_executions=True, sync_interval=30,
                               allow_flows="a*", enabled=False,
                               own_private_key=keys.private(keys.own)))
    original = ws.links.get(PEER)
    steps = [
        (SyncConfigChange(enabled=True), "enabled", True),
        (SyncConfigChange(verify_ssl=True), "verify_ssl", True),
        (SyncConfigChange(send_all_executions=False), "send_all_executions", False),
        (SyncConfigChange(sync_interval="90"), "sync_interval", 90),
        (SyncConfigChange(sync_interval=""), "sync_interval", None),
        (SyncConfigChange(allow_flows=["b*", "c"]), "allow_flows", ["b*", "c"]),
        (SyncConfigChange(remote_url=""), "remote_url", None),
        (SyncConfigChange(ca_cert=""), "ca_cert", None),
    ]
    expected = {k: getattr(original, k) for k in (
        "enabled", "remote_url", "ca_cert", "verify_ssl", "own_key_id", "remote_key_id",
        "send_all_executions", "sync_interval", "allow_flows")}
    for change, name, value in steps:
        ws.links.update(PEER, change)
        expected[name] = value
        now = ws.links.get(PEER)
        assert {k: getattr(now, k) for k in expected} == expected, f"after changing {name}"
    assert ws.links.get(PEER).created_at == original.created_at


def test_replacing_keys_writes_the_new_items_and_deletes_the_old(ws, keys):
    ws.links.add(PEER, _change(keys, own_private_key=keys.private(keys.own)))
    count = len(_secret_files(ws))
    ws.links.update(PEER, SyncConfigChange(own_private_key=keys.private(keys.other),
                                           remote_public_key=keys.public(keys.own)))
    config = ws.links.get(PEER)
    assert (config.own_key_id, config.remote_key_id) == (keys.kid(keys.other), keys.kid(keys.own))
    assert _has_item(ws, own_key_item(PEER, keys.kid(keys.other)))
    assert _has_item(ws, remote_key_item(PEER, keys.kid(keys.own)))
    assert not _has_item(ws, own_key_item(PEER, keys.kid(keys.own)))
    assert not _has_item(ws, remote_key_item(PEER, keys.kid(keys.remote)))
    assert len(_secret_files(ws)) == count

    # The same key pasted again keeps its item.
    ws.links.update(PEER, SyncConfigChange(own_private_key=keys.private(keys.other)))
    assert _has_item(ws, own_key_item(PEER, keys.kid(keys.other)))
    assert len(_secret_files(ws)) == count

    ws.links.update(PEER, SyncConfigChange(own_private_key=USE_WORKSPACE_KEY))
    assert ws.links.get(PEER).own_key_id is None
    assert not _has_item(ws, own_key_item(PEER, keys.kid(keys.other)))
    assert len(_secret_files(ws)) == count - 1


def test_remove_deletes_the_config_and_both_key_items(ws, keys):
    ws.links.add(PEER, _change(keys, own_private_key=keys.private(keys.own)))
    ws.links.add("gamma", _change(keys, remote_public_key=keys.public(keys.other)))
    ws.links.remove(PEER)
    assert [c.name for c in ws.links.list()] == ["gamma"]
    assert not _has_item(ws, own_key_item(PEER, keys.kid(keys.own)))
    assert not _has_item(ws, remote_key_item(PEER, keys.kid(keys.remote)))
    assert _has_item(ws, remote_key_item("gamma", keys.kid(keys.other)))
    with pytest.raises(NotFoundError):
        ws.links.get(PEER)
    with pytest.raises(NotFoundError):
        ws.links.remove(PEER)
    with pytest.raises(NotFoundError):
        ws.links.update(PEER, SyncConfigChange(sync_interval=5))


# --- roles ----------------------------------------------------------------------------------


@pytest.fixture
def as_bob(ws) -> Iterator[Workspace]:
    bob = Workspace.open(ws.data_dir, acting_user="bob")
    yield bob
    bob.close()


def test_a_user_without_the_admin_role_cannot_change_links(ws, keys, as_bob):
    ws.links.add(PEER, _change(keys, sync_interval=60))
    before = _snapshot(ws)
    attempts = [
        lambda: as_bob.links.add("gamma", _change(keys, own_private_key=keys.private(keys.own))),
        lambda: as_bob.links.update(PEER, SyncConfigChange(
            sync_interval=5, remote_public_key=keys.public(keys.other))),
        lambda: as_bob.links.remove(PEER),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDeniedError) as excinfo:
            attempt()
        assert ADMIN_DENIED in str(excinfo.value).lower()
        assert "bob" in str(excinfo.value)
        assert _snapshot(ws) == before
    # Reading is allowed.
    assert [c.name for c in as_bob.links.list()] == [PEER]


def test_an_unknown_acting_user_cannot_change_links(ws, keys):
    stranger = Workspace.open(ws.data_dir, acting_user="mallory")
    try:
        before = _snapshot(ws)
        with pytest.raises(PermissionDeniedError):
            stranger.links.add(PEER, _change(keys))
        assert _snapshot(ws) == before
    finally:
        stranger.close()


def test_a_user_without_the_admin_role_cannot_rotate_or_manage_users(ws, as_bob):
    kid = ws.key_id
    with pytest.raises(PermissionDeniedError):
        as_bob.rotate_keys()
    with pytest.raises(PermissionDeniedError):
        as_bob.add_user("eve", "organization_admin")
    with pytest.raises(PermissionDeniedError):
        as_bob.remove_user("alice")
    assert ws.key_id == kid
    assert ws.list_users() == [("alice", "organization_admin"), ("bob", "user")]


def test_the_last_admin_cannot_be_removed_or_demoted(ws):
    with pytest.raises(PermissionDeniedError):
        ws.remove_user("alice")
    with pytest.raises(PermissionDeniedError):
        ws.add_user("alice", "user")
    assert ws.role_of("alice") == "organization_admin"


def test_links_sign_with_the_new_workspace_key_after_a_rotation_elsewhere(tmp_path, keys):
    ws = Workspace.init(tmp_path / "rot", "rot", admin="alice", secret_store="file")
    serving = Workspace.open(ws.data_dir, acting_user="alice")  # a long-running process
    try:
        ws.links.add(PEER, _change(keys))
        config = serving.links.get(PEER)
        old_kid = ws.key_id
        assert key_id(serving.links.own_private_key(config).public_key()) == old_kid
        new_kid, names = ws.rotate_keys()
        assert new_kid != old_kid and names == [PEER]
        assert ws.secrets.get_optional(f"workspace/private-key/{old_kid}") is None
        assert key_id(serving.links.own_private_key(config).public_key()) == new_kid
        assert key_id(serving.private_key().public_key()) == new_kid
    finally:
        serving.close()
        ws.close()
