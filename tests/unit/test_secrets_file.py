"""The file secret store: permissions, atomic writes, safe names, and sentences without secrets."""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowlink.errors import SecretStoreError
from flowlink.workspace import secrets as secrets_module
from flowlink.workspace.secrets import SecretStore, resolve_kind

NAMESPACE = "3f1c2a9e-6b1d-4c55-9a43-0d6f2f1e8b10"
SECRET = "-----BEGIN PRIVATE KEY-----\nTEST-ONLY-NOT-A-REAL-KEY-7c1e\n-----END PRIVATE KEY-----\n"
LABEL = "Flowlink alpha: own private key for link beta"


def _same(a: str | None, b: str | None) -> bool:
    # Compared through a bool so a failing assert never prints secret values.
    return a == b


@pytest.fixture
def store(tmp_path: Path) -> SecretStore:
    return SecretStore.open("file", tmp_path, NAMESPACE)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    # The loosest umask there is: permissions must come from the code, not from the umask.
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_set_get_round_trip_with_private_permissions(tmp_path, store, umask_zero):
    store.set("link/beta/own_private_key", SECRET, LABEL)
    assert _same(store.get("link/beta/own_private_key"), SECRET)
    directory = tmp_path / "secrets"
    files = _all_files(tmp_path)
    assert len(files) == 1 and files[0].parent == directory
    assert _mode(directory) == 0o700
    assert _mode(files[0]) == 0o600
    assert _same(files[0].read_text(), SECRET)


def test_a_loose_existing_folder_is_tightened(tmp_path, store):
    (tmp_path / "secrets").mkdir(mode=0o755)
    os.chmod(tmp_path / "secrets", 0o755)
    store.set("k", "v", "label")
    assert _mode(tmp_path / "secrets") == 0o700


def test_overwrite_replaces_the_file_atomically(tmp_path, store):
    store.set("workspace/private_key", "first value", LABEL)
    path = _all_files(tmp_path)[0]
    first_inode = path.stat().st_ino
    store.set("workspace/private_key", "second value", LABEL)
    # os.replace installs a new file: the old one is never truncated and rewritten in place.
    assert path.stat().st_ino != first_inode
    assert _all_files(tmp_path) == [path]
    assert _same(store.get("workspace/private_key"), "second value")


def test_data_and_folder_are_fsynced_before_the_rename_counts(store, monkeypatch):
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    store.set("k", "value", "label")
    assert events == ["fsync-file", "replace", "fsync-dir"]


def test_a_failed_write_keeps_the_old_value_and_leaves_no_temporary_file(
    tmp_path, store, monkeypatch
):
    store.set("k", "old value", "label")
    before = _all_files(tmp_path)

    def failing_replace(src, dst) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(SecretStoreError) as excinfo:
        store.set("k", SECRET, "label")
    message = str(excinfo.value)
    assert "could not store the secret 'k'" in message
    assert "No space left on device" in message
    assert "TEST-ONLY" not in message and "PRIVATE KEY" not in message
    assert excinfo.value.__cause__ is None and excinfo.value.__suppress_context__
    monkeypatch.undo()
    assert _all_files(tmp_path) == before
    assert _same(store.get("k"), "old value")


@pytest.mark.parametrize(
    "key",
    ["../../escape", "/etc/passwd", "..", ".", "a/b/../../c", "..\\..\\win", ".hidden", "ключ-ü"],
)
def test_keys_cannot_reach_outside_the_folder(tmp_path, key):
    data_dir = tmp_path / "data"
    store = SecretStore.open("file", data_dir, NAMESPACE)
    store.set(key, "value for " + key, "label")
    files = _all_files(tmp_path)
    assert len(files) == 1
    assert files[0].parent == data_dir / "secrets"
    assert not files[0].name.startswith(".")
    assert _same(store.get(key), "value for " + key)


_keys = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x7f"),
    min_size=1,
    max_size=60,
).filter(lambda k: not any(ord(c) < 0x20 for c in k))


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(_keys, min_size=1, max_size=5, unique=True))
def test_any_keys_map_to_distinct_files_inside_the_folder(keys):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = SecretStore.open("file", root, NAMESPACE)
        for index, key in enumerate(keys):
            store.set(key, f"value {index}", "label")
        files = _all_files(root)
        assert len(files) == len(keys)
        assert all(f.parent == root / "secrets" and not f.name.startswith(".") for f in files)
        for index, key in enumerate(keys):
            assert store.get(key) == f"value {index}"


@pytest.mark.parametrize("key", ["", "line\nbreak", "nul\x00", "x" * 201])
def test_unusable_keys_are_a_programming_error(store, key):
    with pytest.raises(ValueError):
        store.set(key, "v", "label")


def test_a_missing_secret_says_which_and_what_to_do(tmp_path, store):
    assert store.get_optional("link/beta/own_private_key") is None
    with pytest.raises(SecretStoreError) as excinfo:
        store.get("link/beta/own_private_key")
    message = str(excinfo.value)
    assert message.startswith(
        "The secret 'link/beta/own_private_key' is missing from the file store in "
        f"{tmp_path / 'secrets'}:"
    )
    assert "flowlink link set" in message and "flowlink keys rotate" in message


def test_delete_removes_and_tolerates_missing(tmp_path, store):
    store.set("k", "v", "label")
    store.delete("k")
    assert store.get_optional("k") is None
    assert _all_files(tmp_path) == []
    store.delete("k")
    store.delete("never-set")


def test_namespaces_in_one_folder_do_not_share_items(tmp_path):
    alpha = SecretStore.open("file", tmp_path, "alpha-ns")
    beta = SecretStore.open("file", tmp_path, "beta-ns")
    alpha.set("workspace/private_key", "alpha value", "label")
    assert beta.get_optional("workspace/private_key") is None
    beta.set("workspace/private_key", "beta value", "label")
    assert _same(alpha.get("workspace/private_key"), "alpha value")
    alpha.delete("workspace/private_key")
    assert _same(beta.get("workspace/private_key"), "beta value")


def test_a_file_readable_by_others_is_refused_without_showing_it(tmp_path, store):
    store.set("k", SECRET, "label")
    path = _all_files(tmp_path)[0]
    os.chmod(path, 0o644)
    with pytest.raises(SecretStoreError) as excinfo:
        store.get("k")
    message = str(excinfo.value)
    assert "can be read by other users" in message and f"chmod 600 {path}" in message
    assert "TEST-ONLY" not in message


def test_a_symlink_planted_in_place_of_a_secret_is_not_followed(tmp_path, store):
    store.set("k", "v", "label")
    path = _all_files(tmp_path)[0]
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("not the secret")
    os.chmod(outside, 0o600)
    path.unlink()
    path.symlink_to(outside)
    with pytest.raises(SecretStoreError, match="could not read the secret 'k'"):
        store.get("k")


def test_a_symlinked_folder_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secrets").symlink_to(real)
    store = SecretStore.open("file", tmp_path / "data", NAMESPACE)
    with pytest.raises(SecretStoreError, match="is not a plain folder"):
        store.set("k", "v", "label")
    assert list(real.iterdir()) == []


def test_bytes_that_are_not_utf8_are_reported_without_content(tmp_path, store):
    store.set("k", "v", "label")
    path = _all_files(tmp_path)[0]
    path.write_bytes(b"\xff\xfesecret-bytes")
    with pytest.raises(SecretStoreError) as excinfo:
        store.get("k")
    assert "is not UTF-8 text" in str(excinfo.value)
    assert "secret-bytes" not in str(excinfo.value)


def test_check_prepares_the_folder_and_reports_an_unusable_one(tmp_path):
    good = SecretStore.open("file", tmp_path / "good", NAMESPACE)
    good.check()
    assert _mode(tmp_path / "good" / "secrets") == 0o700
    (tmp_path / "blocked").write_text("a file where the data folder should be")
    bad = SecretStore.open("file", tmp_path / "blocked", NAMESPACE)
    with pytest.raises(SecretStoreError) as excinfo:
        bad.check()
    assert str(excinfo.value).startswith(
        f"The file store in {tmp_path / 'blocked' / 'secrets'} could not be prepared:"
    )


def test_display_name_and_kind(tmp_path, store):
    assert store.display_name == f"file store in {tmp_path / 'secrets'}"
    assert store.kind == "file"
    assert NAMESPACE in repr(store)


def test_concurrent_writers_from_threads_leave_one_whole_value(tmp_path, store):
    values = [f"value-{i}-" + "x" * 5000 for i in range(8)]
    start = threading.Barrier(len(values))

    def write(value: str) -> None:
        start.wait()
        for _ in range(20):
            store.set("k", value, "label")

    with ThreadPoolExecutor(max_workers=len(values)) as pool:
        list(pool.map(write, values))
    assert store.get("k") in values
    assert len(_all_files(tmp_path)) == 1


def test_open_refuses_unknown_kinds(tmp_path):
    with pytest.raises(SecretStoreError) as excinfo:
        SecretStore.open("plaintext", tmp_path, NAMESPACE)
    assert str(excinfo.value) == (
        "The secret store is 'plaintext', but the allowed values are 'keyring' (the OS "
        "keyring, the default) and 'file' (one file per secret under <data-dir>/secrets)."
    )


@pytest.mark.parametrize("namespace", ["", "../x", "a/b", "x" * 65])
def test_open_refuses_unsafe_namespaces(tmp_path, namespace):
    with pytest.raises(ValueError):
        SecretStore.open("file", tmp_path, namespace)


def test_resolve_kind_prefers_the_option_then_the_environment(monkeypatch):
    monkeypatch.delenv(secrets_module.ENV_VAR, raising=False)
    assert resolve_kind(None) == "keyring"
    monkeypatch.setenv("FLOWLINK_SECRET_STORE", "file")
    assert resolve_kind(None) == "file"
    assert resolve_kind("keyring") == "keyring"
    monkeypatch.setenv("FLOWLINK_SECRET_STORE", "")
    assert resolve_kind(None) == "keyring"


def test_resolve_kind_names_the_source_of_a_bad_value(monkeypatch):
    monkeypatch.setenv("FLOWLINK_SECRET_STORE", "vault")
    with pytest.raises(SecretStoreError, match=r"^FLOWLINK_SECRET_STORE is 'vault', but the allo"):
        resolve_kind(None)
    with pytest.raises(SecretStoreError, match=r"^--secret-store is 'File', but the allowed"):
        resolve_kind("File")
