"""SecretStore: the one place secrets (private keys) are kept, in the OS keyring or in files.

Two kinds, chosen explicitly by the user and never swapped behind their back:

- ``keyring``: the OS keyring through the ``keyring`` package, limited to backends that are
  real OS stores (Secret Service, KWallet, macOS Keychain, Windows Credential Locker). A
  plaintext or "fail" backend is refused with a sentence naming the file store as the way out.
- ``file``: one file per secret with mode 0600 under ``<data-dir>/secrets/`` (mode 0700), for
  headless servers without a keyring.

Every failure is a SecretStoreError whose message names the store and says what to do next.
No message ever contains a secret; exceptions from the backends are dropped (``from None``)
rather than chained, because their text may carry data the backend was handed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, Protocol

from flowlink.errors import SecretStoreError

KINDS = ("keyring", "file")
DEFAULT_KIND = "keyring"
ENV_VAR = "FLOWLINK_SECRET_STORE"

_CHOOSE_FILE_STORE = (
    "To keep secrets in files readable only by you instead, choose the file store with "
    f"--secret-store file or {ENV_VAR}=file."
)

# The backends Flowlink trusts, by the qualified name of the class (or a base class), so
# that platform-only modules (macOS, Windows) are never imported to find out.
_TRUSTED_BACKENDS = {
    "keyring.backends.SecretService.Keyring": "Secret Service (org.freedesktop.secrets)",
    "keyring.backends.kwallet.DBusKeyring": "KWallet",
    "keyring.backends.macOS.Keyring": "macOS Keychain",
    "keyring.backends.Windows.WinVaultKeyring": "Windows Credential Locker",
}
_SECRET_SERVICE = "keyring.backends.SecretService.Keyring"

# Exceptions that mean "the store is there but locked" / "the store is not reachable".
# Matched by class name so secretstorage (Linux only) need not be importable.
_LOCKED_ERRORS = {
    "keyring.errors.KeyringLocked",
    "secretstorage.exceptions.LockedException",
    "secretstorage.exceptions.PromptDismissedException",
}
_UNAVAILABLE_ERRORS = {
    "keyring.errors.NoKeyringError",
    "keyring.errors.InitError",
    "secretstorage.exceptions.SecretServiceNotAvailableException",
}

_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_KEY_CHARS = 200
_MAX_LABEL_CHARS = 500


def resolve_kind(cli_value: str | None) -> str:
    """The secret store kind: ``--secret-store``, else $FLOWLINK_SECRET_STORE, else keyring."""
    if cli_value is not None:
        source, value = "--secret-store", cli_value
    else:
        env = os.environ.get(ENV_VAR, "").strip()
        source, value = ENV_VAR, env or DEFAULT_KIND
    if value not in KINDS:
        raise SecretStoreError(_bad_kind_message(source, value))
    return value


class SecretStore:
    """Thread-safe facade over one secret store of one workspace.

    ``open`` touches neither the disk nor D-Bus, so it is safe on the GUI thread; every other
    call may block (a keyring may be slow or show an unlock prompt) and belongs on a worker
    thread. Calls are serialised by a lock.
    """

    def __init__(self, backend: _Backend) -> None:
        self._backend = backend
        self._lock = threading.RLock()

    @classmethod
    def open(cls, kind: str, data_dir: Path, namespace: str) -> SecretStore:
        """``namespace`` is the workspace's stable id; two namespaces never share items."""
        if kind not in KINDS:
            raise SecretStoreError(_bad_kind_message("The secret store", kind))
        if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
            raise ValueError("namespace must be 1-64 letters, digits, '.', '_' or '-'")
        if kind == "file":
            return cls(_FileBackend(Path(data_dir) / "secrets", namespace))
        return cls(_KeyringBackend(namespace))

    @property
    def kind(self) -> str:
        return self._backend.kind

    @property
    def display_name(self) -> str:
        """Which store is in use, for people: "Secret Service (org.freedesktop.secrets)".

        For the keyring kind the first call chooses the backend (D-Bus on Linux): ask from a
        worker thread, like every other call.
        """
        with self._lock:
            return self._backend.display_name()

    def set(self, key: str, value: str, label: str) -> None:
        """Store ``value`` under ``key``, replacing any previous value.

        ``label`` is what a keyring manager shows ("Flowlink ws: own private key for link b").
        """
        _check_key(key)
        if not isinstance(value, str):
            raise TypeError("a secret value must be a str")
        if not isinstance(label, str) or _CONTROL.search(label) or len(label) > _MAX_LABEL_CHARS:
            raise ValueError("a label must be one line of at most 500 characters")
        with self._lock:
            self._backend.set(key, value, label)

    def get(self, key: str) -> str:
        value = self.get_optional(key)
        if value is None:
            raise SecretStoreError(
                f"The secret '{key}' is missing from the {self.display_name}: it was deleted or "
                "kept in another secret store. Set it again (a link's key with 'flowlink link "
                "set', the workspace key with 'flowlink keys rotate'), or run Flowlink with the "
                "secret store that holds it."
            )
        return value

    def get_optional(self, key: str) -> str | None:
        _check_key(key)
        with self._lock:
            return self._backend.get(key)

    def delete(self, key: str) -> None:
        """Remove the secret; a secret that is not there is not an error."""
        _check_key(key)
        with self._lock:
            self._backend.delete(key)

    def check(self) -> None:
        """Prove the store is usable now, or raise the SecretStoreError saying why not."""
        with self._lock:
            self._backend.check()

    def __repr__(self) -> str:
        return f"<SecretStore {self._backend.kind} {self._backend.namespace}>"


class _Backend(Protocol):
    kind: str
    namespace: str

    def display_name(self) -> str: ...
    def set(self, key: str, value: str, label: str) -> None: ...
    def get(self, key: str) -> str | None: ...
    def delete(self, key: str) -> None: ...
    def check(self) -> None: ...


# --- OS keyring ------------------------------------------------------------------------------


class _KeyringBackend:
    kind = "keyring"

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.service = f"flowlink/{namespace}"
        self._keyring: Any = None
        self._name = ""

    def display_name(self) -> str:
        try:
            self._backend()
        except SecretStoreError:
            return "OS keyring (not available)"
        return self._name

    def set(self, key: str, value: str, label: str) -> None:
        backend = self._backend()
        try:
            if self._is_secret_service(backend):
                _secret_service_set(backend, self.service, key, value, label)
            else:
                backend.set_password(self.service, key, value)
        except Exception as exc:  # every backend failure becomes one error
            raise self._failure(exc, "storing", key) from None

    def get(self, key: str) -> str | None:
        backend = self._backend()
        try:
            value = backend.get_password(self.service, key)
        except Exception as exc:
            raise self._failure(exc, "reading", key) from None
        if value is not None and not isinstance(value, str):
            raise SecretStoreError(
                f"The {self._name} returned something other than text for the secret '{key}'; "
                "set that secret again."
            )
        return value

    def delete(self, key: str) -> None:
        backend = self._backend()
        try:
            if self._is_secret_service(backend):
                _secret_service_delete(backend, self.service, key)
                return
            try:
                backend.delete_password(self.service, key)
            except Exception as exc:
                if _qualified_names(type(exc)) & {"keyring.errors.PasswordDeleteError"}:
                    return  # not there: the wanted end state already
                raise
        except Exception as exc:
            raise self._failure(exc, "deleting", key) from None

    def check(self) -> None:
        backend = self._backend()
        try:
            # A read of an item that does not exist: it connects, unlocks, and changes nothing.
            backend.get_password(self.service, "flowlink-check")
        except Exception as exc:
            raise self._failure(exc, "checking", None) from None

    def _backend(self) -> Any:
        """The keyring backend, chosen on first use and kept for the life of this store."""
        if self._keyring is not None:
            return self._keyring
        import keyring  # deferred: the file store and `open` never pay for it

        try:
            chosen = keyring.get_keyring()
        except Exception:  # a broken keyring config is "not available" too
            raise SecretStoreError(_unavailable_message()) from None
        candidates = [chosen]
        # Several viable backends come wrapped in a chainer; look for a trusted one inside.
        if "keyring.backends.chainer.ChainerBackend" in _qualified_names(type(chosen)):
            try:
                candidates = list(chosen.backends)
            except Exception:
                candidates = []
        for candidate in candidates:
            name = _trusted_name(candidate)
            if name is not None:
                self._keyring, self._name = candidate, name
                return candidate
        untrusted = [
            c
            for c in candidates
            if "keyring.backends.fail.Keyring" not in _qualified_names(type(c))
        ]
        if not untrusted:
            raise SecretStoreError(_unavailable_message())
        backend_class = type(untrusted[0])
        raise SecretStoreError(
            "The keyring backend Python's keyring package offers "
            f"({backend_class.__module__}.{backend_class.__qualname__}) is not an OS keyring "
            "Flowlink trusts (Secret Service, KWallet, macOS Keychain or Windows Credential "
            "Locker), so Flowlink does not keep secrets in it. " + _CHOOSE_FILE_STORE
        )

    @staticmethod
    def _is_secret_service(backend: Any) -> bool:
        return _SECRET_SERVICE in _qualified_names(type(backend))

    def _failure(self, exc: BaseException, doing: str, key: str | None) -> SecretStoreError:
        # Only the class of the exception is named: its text may quote what it was given.
        names = _qualified_names(type(exc))
        what = f" the secret '{key}'" if key is not None else ""
        if names & _LOCKED_ERRORS:
            return SecretStoreError(
                f"The {self._name} is locked, so Flowlink could not finish {doing}{what}. "
                "Unlock it (log in to the desktop session or unlock the keyring in your "
                "password manager) and try again. " + _CHOOSE_FILE_STORE
            )
        if names & _UNAVAILABLE_ERRORS:
            return SecretStoreError(
                f"The {self._name} could not be reached while {doing}{what} "
                f"({type(exc).__name__}). Check that the keyring service is running and try "
                "again. " + _CHOOSE_FILE_STORE
            )
        return SecretStoreError(
            f"The {self._name} failed while {doing}{what} ({type(exc).__name__}). Check that "
            "the keyring service is running and unlocked and try again. " + _CHOOSE_FILE_STORE
        )


def _secret_service_set(backend: Any, service: str, key: str, value: str, label: str) -> None:
    """Store an item the way keyring's own set_password does, with Flowlink's label.

    keyring's API has no label (its maintainers point to SecretStorage for that, keyring
    issue #347), so this uses the backend's own collection choice and attribute scheme:
    keyring.get_password and `secret-tool lookup service ... username ...` find the item.
    """
    query = _secret_service_query(backend, service, key)
    collection = backend.get_preferred_collection()
    with contextlib.closing(collection.connection):
        item = collection.create_item(
            label, {**query, "application": "Flowlink"}, value.encode("utf-8"), replace=True
        )
        # An older item with the same service and user but other attributes (written by
        # another tool) would shadow ours on lookup: keep exactly one.
        for other in collection.search_items(query):
            if other.item_path != item.item_path:
                other.delete()


def _secret_service_delete(backend: Any, service: str, key: str) -> None:
    collection = backend.get_preferred_collection()
    with contextlib.closing(collection.connection):
        for item in collection.search_items(_secret_service_query(backend, service, key)):
            item.delete()


def _secret_service_query(backend: Any, service: str, key: str) -> dict[str, str]:
    scheme = backend.schemes[backend.scheme]
    return {scheme["username"]: key, scheme["service"]: service}


def _trusted_name(backend: Any) -> str | None:
    for name in _qualified_names(type(backend)):
        if name in _TRUSTED_BACKENDS:
            if name == "keyring.backends.kwallet.DBusKeyring":
                return f"KWallet ({getattr(backend, 'bus_name', 'org.kde.kwalletd5')})"
            return _TRUSTED_BACKENDS[name]
    return None


def _qualified_names(cls: type) -> set[str]:
    return {f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__}


def _unavailable_message() -> str:
    return (
        "The OS keyring is not available: no Secret Service, KWallet, macOS Keychain or "
        "Windows Credential Locker was found (on a Linux desktop, gnome-keyring or KWallet "
        "must be running in your session). " + _CHOOSE_FILE_STORE
    )


# --- Files -----------------------------------------------------------------------------------


class _FileBackend:
    kind = "file"

    def __init__(self, directory: Path, namespace: str) -> None:
        self.namespace = namespace
        self.directory = directory

    def display_name(self) -> str:
        return f"file store in {self.directory}"

    def path_for(self, key: str) -> Path:
        # A readable stem (strict charset, so no '/', '..' or leading dot can survive) plus a
        # hash of the exact key and namespace that keeps different keys apart.
        stem = re.sub(r"[^A-Za-z0-9_-]", "_", key)[:48]
        digest = hashlib.sha256(f"{self.namespace}\0{key}".encode()).hexdigest()[:24]
        return self.directory / f"{stem}-{digest}.secret"

    def set(self, key: str, value: str, label: str) -> None:
        self._ensure_directory()
        target = self.path_for(key)
        fd, temporary = -1, ""
        try:
            # mkstemp opens with O_CREAT|O_EXCL and mode 0600 from the start: the secret is
            # never readable by others, not even for a moment before a chmod.
            fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=self.directory)
            if os.name != "nt":
                os.fchmod(fd, 0o600)
            data = value.encode("utf-8")
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(temporary, target)
            temporary = ""
            self._fsync_directory()
        except OSError as exc:
            raise SecretStoreError(
                f"The {self.display_name()} could not store the secret '{key}': "
                f"{_os_reason(exc)}. Check that the folder is writable and the disk not full."
            ) from None
        finally:
            if fd >= 0:
                os.close(fd)
            if temporary:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)

    def get(self, key: str) -> str | None:
        path = self.path_for(key)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SecretStoreError(
                f"The {self.display_name()} could not read the secret '{key}' from {path}: "
                f"{_os_reason(exc)}."
            ) from None
        try:
            if os.name != "nt" and os.fstat(fd).st_mode & 0o077:
                raise SecretStoreError(
                    f"The secret file {path} can be read by other users, so Flowlink will not "
                    f"use it: run 'chmod 600 {path}' and consider the secret exposed (replace "
                    "the key)."
                )
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        except OSError as exc:
            raise SecretStoreError(
                f"The {self.display_name()} could not read the secret '{key}' from {path}: "
                f"{_os_reason(exc)}."
            ) from None
        finally:
            os.close(fd)
        try:
            return b"".join(chunks).decode("utf-8")
        except UnicodeDecodeError:
            raise SecretStoreError(
                f"The secret file {path} is not UTF-8 text; it was changed outside Flowlink. "
                "Set that secret again."
            ) from None

    def delete(self, key: str) -> None:
        try:
            os.unlink(self.path_for(key))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SecretStoreError(
                f"The {self.display_name()} could not delete the secret '{key}': {_os_reason(exc)}."
            ) from None
        with contextlib.suppress(OSError):
            self._fsync_directory()

    def check(self) -> None:
        self._ensure_directory()
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise SecretStoreError(
                f"The {self.display_name()} is not writable; fix the folder's owner or "
                "permissions, or choose another --data-dir."
            )

    def _ensure_directory(self) -> None:
        try:
            self.directory.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                self.directory.mkdir(mode=0o700)
            if self.directory.is_symlink() or not self.directory.is_dir():
                raise SecretStoreError(
                    f"{self.directory} is not a plain folder, so the file store will not use "
                    "it; move it away and try again."
                )
            if os.name != "nt" and self.directory.stat().st_mode & 0o777 != 0o700:
                # The folder may have been made by hand or restored from a backup.
                os.chmod(self.directory, 0o700)
        except OSError as exc:
            raise SecretStoreError(
                f"The {self.display_name()} could not be prepared: {_os_reason(exc)}. Check "
                "that the data folder is writable."
            ) from None

    def _fsync_directory(self) -> None:
        # Makes the rename itself durable; Windows cannot open a directory for this.
        if os.name == "nt":
            return
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _os_reason(exc: OSError) -> str:
    # strerror only ("Permission denied"): never str(exc), which may quote paths or data.
    return exc.strerror or type(exc).__name__


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY_CHARS or _CONTROL.search(key):
        raise ValueError("a secret key must be 1-200 characters without control characters")


def _bad_kind_message(source: str, value: str) -> str:
    shown = value if len(value) <= 40 and not _CONTROL.search(value) else "that value"
    return (
        f"{source} is '{shown}', but the allowed values are 'keyring' (the OS keyring, the "
        "default) and 'file' (one file per secret under <data-dir>/secrets)."
    )
