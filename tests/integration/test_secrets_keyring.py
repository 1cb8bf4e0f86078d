"""The keyring secret store against a real gnome-keyring, and against keyrings that fail.

Tests marked ``keyring`` use the private Secret Service the ``session_keyring`` fixture starts.
The others inject faults into keyring's backend selection and need no daemon.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import keyring
import keyring.core
import pytest
from keyring.backends import SecretService, fail, null
from keyring.errors import KeyringLocked

from flowlink.errors import SecretStoreError
from flowlink.workspace.secrets import SecretStore

SECRET = "-----BEGIN PRIVATE KEY-----\nTEST-ONLY-NOT-A-REAL-KEY-93ab\n-----END PRIVATE KEY-----\n"
OTHER_SECRET = "TEST-ONLY-second-value-51d0"
LABEL = "Flowlink alpha: own private key for link beta"
SECRET_SERVICE = "Secret Service (org.freedesktop.secrets)"


def _same(a: str | None, b: str | None) -> bool:
    # Compared through a bool so a failing assert never prints secret values.
    return a == b


def _service(namespace: str) -> str:
    return f"flowlink/{namespace}"


@pytest.fixture
def namespace() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def real_store(session_keyring, tmp_path, namespace) -> SecretStore:
    return SecretStore.open("keyring", tmp_path, namespace)


def _labels_seen_by_secret_tool(namespace: str, key: str) -> list[str]:
    """Labels of the matching items as `secret-tool search --all` lists them (libsecret)."""
    secret_tool = shutil.which("secret-tool")
    if secret_tool is None:
        pytest.skip("secret-tool (libsecret-tools) is not installed")
    result = subprocess.run(
        [secret_tool, "search", "--all", "service", _service(namespace), "username", key],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, "secret-tool search failed"
    # Only label lines are kept: the output also holds each secret, which must not be shown.
    return [
        line.split(" = ", 1)[1]
        for line in result.stdout.splitlines()
        if line.startswith("label = ")
    ]


def _secret_tool_lookup(namespace: str, key: str) -> str:
    secret_tool = shutil.which("secret-tool")
    if secret_tool is None:
        pytest.skip("secret-tool (libsecret-tools) is not installed")
    result = subprocess.run(
        [secret_tool, "lookup", "service", _service(namespace), "username", key],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout


# --- the real Secret Service -----------------------------------------------------------------


@pytest.mark.keyring
def test_store_is_the_secret_service_and_usable(real_store):
    real_store.check()
    assert real_store.display_name == SECRET_SERVICE
    assert real_store.kind == "keyring"


@pytest.mark.keyring
def test_set_get_overwrite_delete(real_store):
    key = "link/beta/own_private_key"
    assert real_store.get_optional(key) is None
    real_store.set(key, SECRET, LABEL)
    assert _same(real_store.get(key), SECRET)
    real_store.set(key, OTHER_SECRET, LABEL)
    assert _same(real_store.get(key), OTHER_SECRET)
    real_store.delete(key)
    assert real_store.get_optional(key) is None
    real_store.delete(key)  # deleting what is not there is fine
    with pytest.raises(SecretStoreError) as excinfo:
        real_store.get(key)
    assert str(excinfo.value).startswith(
        f"The secret '{key}' is missing from the {SECRET_SERVICE}:"
    )


@pytest.mark.keyring
def test_items_carry_the_label_and_are_visible_to_other_tools(real_store, namespace):
    key = "workspace/private_key"
    real_store.set(key, SECRET, LABEL)
    assert _labels_seen_by_secret_tool(namespace, key) == [LABEL]
    # keyring's own API and libsecret's lookup find the same item.
    assert _same(keyring.get_password(_service(namespace), key), SECRET)
    assert _same(_secret_tool_lookup(namespace, key), SECRET)

    relabelled = "Flowlink alpha: workspace private key (rotated)"
    real_store.set(key, OTHER_SECRET, relabelled)
    assert _labels_seen_by_secret_tool(namespace, key) == [relabelled]


@pytest.mark.keyring
def test_an_item_written_by_keyring_itself_is_replaced_not_shadowing(real_store, namespace):
    key = "tls/ca_private_key"
    # keyring.set_password writes other attributes ("application") and a generic label.
    keyring.set_password(_service(namespace), key, "older value")
    real_store.set(key, SECRET, LABEL)
    assert _labels_seen_by_secret_tool(namespace, key) == [LABEL]
    assert _same(real_store.get(key), SECRET)

    import secretstorage

    with closing(secretstorage.dbus_init()) as connection:
        collection = secretstorage.get_default_collection(connection)
        items = list(collection.search_items({"service": _service(namespace), "username": key}))
        assert [item.get_label() for item in items] == [LABEL]


@pytest.mark.keyring
def test_two_namespaces_never_share_items(session_keyring, tmp_path):
    alpha = SecretStore.open("keyring", tmp_path, str(uuid.uuid4()))
    beta = SecretStore.open("keyring", tmp_path, str(uuid.uuid4()))
    key = "workspace/private_key"
    alpha.set(key, SECRET, "Flowlink alpha: workspace private key")
    assert beta.get_optional(key) is None
    beta.set(key, OTHER_SECRET, "Flowlink beta: workspace private key")
    assert _same(alpha.get(key), SECRET)
    assert _same(beta.get(key), OTHER_SECRET)
    alpha.delete(key)
    assert alpha.get_optional(key) is None
    assert _same(beta.get(key), OTHER_SECRET)
    beta.delete(key)


@pytest.mark.keyring
def test_calls_from_worker_threads(real_store):
    keys = [f"link/peer-{i}/own_private_key" for i in range(6)]

    def round_trip(key: str) -> bool:
        real_store.set(key, f"{SECRET}{key}", f"Flowlink alpha: own private key for link {key}")
        return _same(real_store.get(key), f"{SECRET}{key}")

    with ThreadPoolExecutor(max_workers=3) as pool:
        assert all(pool.map(round_trip, keys))
    for key in keys:
        real_store.delete(key)
        assert real_store.get_optional(key) is None


# --- keyrings that fail (no daemon needed) ---------------------------------------------------


def _raising(exc: BaseException):
    def method(*args, **kwargs):
        raise exc

    return method


def _install(monkeypatch, backend) -> None:
    # keyring.get_keyring() returns this backend for the rest of the test, then the old one.
    monkeypatch.setattr(keyring.core, "_keyring_backend", backend)


def _assert_clean(error: SecretStoreError) -> None:
    message = str(error)
    assert "TEST-ONLY" not in message and "BEGIN PRIVATE KEY" not in message
    # The backend's exception is not chained: its text may quote what it was handed.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def _faulty_secret_service(monkeypatch, exc: BaseException):
    """Deliberate fault injection: a real SecretService backend whose every call raises.

    Methods are patched on an instance, not in a subclass: keyring registers every subclass
    of KeyringBackend as a candidate backend for the rest of the process.
    """
    backend = SecretService.Keyring()
    for name in ("get_preferred_collection", "get_password", "set_password", "delete_password"):
        monkeypatch.setattr(backend, name, _raising(exc))
    _install(monkeypatch, backend)
    return backend


def test_a_locked_keyring_gives_one_clear_error(tmp_path, monkeypatch):
    _faulty_secret_service(monkeypatch, KeyringLocked(f"Failed to unlock: {SECRET}"))
    store = SecretStore.open("keyring", tmp_path, str(uuid.uuid4()))
    calls = {
        "storing": lambda: store.set("workspace/private_key", SECRET, LABEL),
        "reading": lambda: store.get("workspace/private_key"),
        "deleting": lambda: store.delete("workspace/private_key"),
        "checking": store.check,
    }
    for doing, call in calls.items():
        with pytest.raises(SecretStoreError) as excinfo:
            call()
        message = str(excinfo.value)
        assert message.startswith(
            f"The {SECRET_SERVICE} is locked, so Flowlink could not finish {doing}"
        )
        assert "Unlock it" in message
        assert "--secret-store file or FLOWLINK_SECRET_STORE=file" in message
        _assert_clean(excinfo.value)


def test_a_dbus_error_gives_one_clear_error_without_the_secret(tmp_path, monkeypatch):
    from jeepney import DBusAddress, new_error, new_method_call
    from jeepney.wrappers import DBusErrorResponse

    call = new_method_call(DBusAddress("/x", bus_name="org.freedesktop.secrets"), "CreateItem")
    # The error's text quotes the secret, as a misbehaving service could.
    reply = new_error(call, "org.freedesktop.DBus.Error.NoReply", "s", (SECRET,))
    _faulty_secret_service(monkeypatch, DBusErrorResponse(reply))
    store = SecretStore.open("keyring", tmp_path, str(uuid.uuid4()))
    with pytest.raises(SecretStoreError) as excinfo:
        store.set("link/beta/own_private_key", SECRET, LABEL)
    assert str(excinfo.value).startswith(
        f"The {SECRET_SERVICE} failed while storing the secret 'link/beta/own_private_key' "
        "(DBusErrorResponse)."
    )
    assert "FLOWLINK_SECRET_STORE=file" in str(excinfo.value)
    _assert_clean(excinfo.value)


def test_an_unreachable_secret_service_says_so(tmp_path, monkeypatch):
    import secretstorage.exceptions

    _faulty_secret_service(
        monkeypatch, secretstorage.exceptions.SecretServiceNotAvailableException(SECRET)
    )
    store = SecretStore.open("keyring", tmp_path, str(uuid.uuid4()))
    with pytest.raises(SecretStoreError) as excinfo:
        store.get("workspace/private_key")
    assert str(excinfo.value).startswith(
        f"The {SECRET_SERVICE} could not be reached while reading the secret"
    )
    _assert_clean(excinfo.value)


def test_no_keyring_at_all_says_how_to_choose_the_file_store(tmp_path, monkeypatch):
    _install(monkeypatch, fail.Keyring())
    store = SecretStore.open("keyring", tmp_path, str(uuid.uuid4()))
    assert store.display_name == "OS keyring (not available)"
    for call in (
        lambda: store.set("workspace/private_key", SECRET, LABEL),
        lambda: store.get("workspace/private_key"),
        lambda: store.get_optional("workspace/private_key"),
        lambda: store.delete("workspace/private_key"),
        store.check,
    ):
        with pytest.raises(SecretStoreError) as excinfo:
            call()
        message = str(excinfo.value)
        assert message.startswith("The OS keyring is not available:")
        assert message.endswith(
            "choose the file store with --secret-store file or FLOWLINK_SECRET_STORE=file."
        )
        _assert_clean(excinfo.value)


def test_an_untrusted_backend_is_never_used(tmp_path, monkeypatch):
    backend = null.Keyring()
    written: list[str] = []
    monkeypatch.setattr(backend, "set_password", lambda s, u, p: written.append(p))
    _install(monkeypatch, backend)
    store = SecretStore.open("keyring", tmp_path, str(uuid.uuid4()))
    with pytest.raises(SecretStoreError) as excinfo:
        store.set("workspace/private_key", SECRET, LABEL)
    assert "(keyring.backends.null.Keyring) is not an OS keyring Flowlink trusts" in str(
        excinfo.value
    )
    assert "--secret-store file" in str(excinfo.value)
    assert written == []


def test_the_backend_is_chosen_once_and_kept(tmp_path, monkeypatch):
    backend = SecretService.Keyring()
    monkeypatch.setattr(backend, "get_password", lambda service, username: "stored value")
    _install(monkeypatch, backend)
    store = SecretStore.open("keyring", tmp_path, str(uuid.uuid4()))
    assert store.get("k") == "stored value"
    # keyring's global choice changes (a later init_backend), the store keeps its own.
    _install(monkeypatch, fail.Keyring())
    assert store.get("k") == "stored value"
    assert store.display_name == SECRET_SERVICE
