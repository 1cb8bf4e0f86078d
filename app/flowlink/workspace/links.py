"""Synch Configs: one per linked workspace, validated, permission-checked, keys in the SecretStore.

SQLite keeps the fields that are not secret plus the *key ids* of the two key
fields. The keys themselves are SecretStore items named after their key id, so
a change writes the new item first, commits SQLite, then deletes the old item:
a failure at any point leaves the old config whole and nothing half-saved.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flowlink.errors import NotFoundError, ValidationError, ValidationErrors
from flowlink.workspace.store import now

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from flowlink.workspace.workspace import Workspace

MAX_SYNC_INTERVAL = 7 * 24 * 3600
MAX_URL_LENGTH = 2048
MAX_PATTERNS = 200
FIELDS = (
    "enabled",
    "remote_url",
    "ca_cert",
    "verify_ssl",
    "own_private_key",
    "remote_public_key",
    "send_all_executions",
    "sync_interval",
    "allow_flows",
)
FIELD_LABELS = {
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
USE_WORKSPACE_KEY = "workspace"


@dataclass
class SyncConfig:
    """A Synch Config as stored: no key material, only key ids."""

    name: str
    enabled: bool
    remote_url: str | None
    ca_cert: str | None
    verify_ssl: bool
    own_key_id: str | None  # None: signs with the workspace key
    remote_key_id: str
    send_all_executions: bool
    sync_interval: int | None
    allow_flows: list[str]
    created_at: float
    updated_at: float

    @property
    def controls(self) -> bool:
        """This workspace initiates exchanges and may start flows on the other side."""
        return bool(self.remote_url)

    def allows(self, flow: str) -> bool:
        return any(fnmatch.fnmatchcase(flow, pattern) for pattern in self.allow_flows)

    def describe(self, workspace_key_id: str, store_name: str) -> dict[str, Any]:
        """Every field for display; key fields only as 'set' with their key id."""
        own = self.own_key_id or workspace_key_id
        return {
            "name": self.name,
            "enabled": self.enabled,
            "remote_url": self.remote_url or "",
            "ca_cert": "set" if self.ca_cert else "",
            "verify_ssl": self.verify_ssl,
            "own_private_key": (
                f"set (the workspace key), key id {own}" if self.own_key_id is None
                else f"set, stored in {store_name}, key id {own}"
            ),
            "remote_public_key": f"set, stored in {store_name}, key id {self.remote_key_id}",
            "send_all_executions": self.send_all_executions,
            "sync_interval": self.sync_interval,
            "allow_flows": list(self.allow_flows),
        }


@dataclass
class SyncConfigChange:
    """What a form or the CLI hands in. None means "leave as it is" (required on add:
    remote_public_key). Empty strings clear optional fields; own_private_key
    USE_WORKSPACE_KEY (or "") means sign with the workspace key."""

    enabled: bool | None = None
    remote_url: str | None = None
    ca_cert: str | None = None
    verify_ssl: bool | None = None
    own_private_key: str | None = None
    remote_public_key: str | None = None
    send_all_executions: bool | None = None
    sync_interval: int | str | None = None
    allow_flows: list[str] | str | None = None
    warnings: list[str] = field(default_factory=list)


def own_key_item(name: str, kid: str) -> str:
    return f"link/{name}/own-private-key/{kid}"


def remote_key_item(name: str, kid: str) -> str:
    return f"link/{name}/remote-public-key/{kid}"


def check_remote_url(url: str, this_workspace: str) -> list[str]:
    """Refuse anything but the sync endpoint for this workspace; return warnings."""
    what = "Remote URL"
    expected = f"https://HOST[:PORT]/api/latest/sync_config/{this_workspace}/sync"
    if len(url) > MAX_URL_LENGTH or re.search(r"[\x00-\x20\x7f]", url):
        raise ValidationError("remote_url", f"{what} must be one URL like {expected}, without spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError("remote_url", f"{what} is not a valid URL; it should look like {expected}.") from None
    if parts.scheme not in ("https", "http"):
        raise ValidationError("remote_url", f"{what} must start with https:// (it should look like {expected}).")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("remote_url", f"{what} must not contain a user name or password; links authenticate with their keys.")
    host = parts.hostname or ""
    if not host:
        raise ValidationError("remote_url", f"{what} has no host; it should look like {expected}.")
    # An empty "?" or "#" parses as no query/fragment but is still not the endpoint's URL.
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValidationError("remote_url", f"{what} must not have a query or fragment; it should look like {expected}.")
    if port == 0:
        raise ValidationError("remote_url", f"{what} has port 0; use the port the other workspace listens on.")
    expected_path = f"/api/latest/sync_config/{this_workspace}/sync"
    if parts.path != expected_path:
        raise ValidationError(
            "remote_url",
            f"{what} must end in {expected_path} (this workspace's name, as the other side "
            f"knows it); it should look like {expected}.",
        )
    warnings: list[str] = []
    if parts.scheme == "http":
        if not _is_loopback(host):
            raise ValidationError(
                "remote_url",
                f"{what} must use https://; plain http:// is allowed only to this machine "
                "(localhost, 127.0.0.1, ::1).",
            )
        warnings.append(f"{what} uses plain http:// to this machine; traffic is signed but not encrypted.")
    return warnings


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_sync_interval(value: int | str | None) -> int | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if isinstance(value, bool):
        raise ValidationError("sync_interval", "Sync interval must be a whole number of seconds (1 or more), or empty for immediately.")
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[0-9]{1,7}", text):
            raise ValidationError("sync_interval", "Sync interval must be a whole number of seconds (1 or more), or empty for immediately.")
        value = int(text)
    if not isinstance(value, int) or value < 1:
        raise ValidationError("sync_interval", "Sync interval must be a whole number of seconds (1 or more), or empty for immediately.")
    if value > MAX_SYNC_INTERVAL:
        raise ValidationError("sync_interval", f"Sync interval can be at most {MAX_SYNC_INTERVAL} seconds (a week).")
    return value


def parse_allow_flows(value: list[str] | str) -> list[str]:
    items = [p.strip() for p in value.split(",")] if isinstance(value, str) else list(value)
    patterns = [p for p in items if p != ""]
    if len(patterns) > MAX_PATTERNS:
        raise ValidationError("allow_flows", f"Allowed flows takes at most {MAX_PATTERNS} patterns.")
    for pattern in patterns:
        if not isinstance(pattern, str) or len(pattern) > 200 or re.search(r"[\x00-\x1f\x7f]", pattern):
            raise ValidationError("allow_flows", "Allowed flows: each pattern must be printable text of at most 200 characters, like 'collect_*'.")
        if pattern.count("[") != pattern.count("]"):
            raise ValidationError("allow_flows", f"Allowed flows: the pattern {pattern!r} has an unbalanced '[': close it or remove it.")
        try:
            re.compile(fnmatch.translate(pattern))
        except re.error:
            raise ValidationError("allow_flows", f"Allowed flows: the pattern {pattern!r} is not a valid glob.") from None
    return patterns


class Links:
    """The Synch Configs of one workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    # -- reading ---------------------------------------------------------------

    def list(self) -> list[SyncConfig]:
        rows = self.ws.store.conn.execute("SELECT * FROM links ORDER BY name").fetchall()
        return [_from_row(r) for r in rows]

    def find(self, name: str) -> SyncConfig | None:
        row = self.ws.store.conn.execute("SELECT * FROM links WHERE name = ?", (name,)).fetchone()
        return None if row is None else _from_row(row)

    def get(self, name: str) -> SyncConfig:
        config = self.find(name)
        if config is None:
            raise NotFoundError(f"There is no link to a workspace named '{name}'; 'flowlink link list' shows the links.")
        return config

    def own_private_key(self, config: SyncConfig) -> rsa.RSAPrivateKey:
        from flowlink.workspace.identity import load_private_key

        if config.own_key_id is None:
            return self.ws.private_key()
        pem = self.ws.secrets.get(own_key_item(config.name, config.own_key_id))
        return load_private_key(pem, FIELD_LABELS["own_private_key"])

    def remote_public_key(self, config: SyncConfig) -> rsa.RSAPublicKey:
        from flowlink.workspace.identity import load_public_key

        pem = self.ws.secrets.get(remote_key_item(config.name, config.remote_key_id))
        return load_public_key(pem, FIELD_LABELS["remote_public_key"])

    # -- changing --------------------------------------------------------------

    def add(self, name: str, change: SyncConfigChange) -> SyncConfig:
        self.ws.require_admin("change workspace links")
        from flowlink.workspace.workspace import check_workspace_name

        errors: dict[str, str] = {}
        try:
            check_workspace_name(name)
            if name == self.ws.name:
                raise ValidationError("name", "A workspace cannot link to itself; use the other workspace's name.")
            if self.find(name) is not None:
                raise ValidationError("name", f"There is already a link to '{name}'; change it with 'flowlink link set {name}'.")
        except ValidationError as exc:
            errors["name"] = exc.message
        if change.remote_public_key is None:
            errors["remote_public_key"] = "Remote public key is required: paste the other workspace's public key ('flowlink keys public --pem' there)."
        return self._save(name, None, change, errors)

    def update(self, name: str, change: SyncConfigChange) -> SyncConfig:
        self.ws.require_admin("change workspace links")
        return self._save(name, self.get(name), change, {})

    def remove(self, name: str) -> None:
        self.ws.require_admin("change workspace links")
        config = self.get(name)
        with self.ws.store.transaction() as tx:
            tx.execute("DELETE FROM links WHERE name = ?", (name,))
            self.ws.on_link_removed(tx, name)
        if config.own_key_id is not None:
            self.ws.secrets.delete(own_key_item(name, config.own_key_id))
        self.ws.secrets.delete(remote_key_item(name, config.remote_key_id))

    def _save(self, name: str, old: SyncConfig | None, change: SyncConfigChange,
              errors: dict[str, str]) -> SyncConfig:
        from flowlink.workspace import identity

        warnings: list[str] = []
        values: dict[str, Any] = {}
        own_key = remote_key = None

        def attempt(field_name: str, fn: Any) -> None:
            try:
                fn()
            except ValidationError as exc:
                errors.setdefault(field_name, exc.message)

        def url() -> None:
            if change.remote_url is None:
                return
            text = change.remote_url.strip()
            if text:
                warnings.extend(check_remote_url(text, self.ws.name))
            values["remote_url"] = text or None

        def ca() -> None:
            if change.ca_cert is None:
                return
            text = change.ca_cert.strip()
            if text:
                identity.load_ca_certificate(text, FIELD_LABELS["ca_cert"])
                values["ca_cert"] = text + "\n"
            else:
                values["ca_cert"] = None

        def own() -> None:
            nonlocal own_key
            if change.own_private_key is None:
                return
            text = change.own_private_key.strip()
            if text in ("", USE_WORKSPACE_KEY):
                values["own_key_id"] = None
                return
            own_key = identity.load_private_key(text, FIELD_LABELS["own_private_key"])
            values["own_key_id"] = identity.key_id(own_key.public_key())

        def remote() -> None:
            nonlocal remote_key
            if change.remote_public_key is None:
                return
            remote_key = identity.load_public_key(change.remote_public_key.strip(),
                                                 FIELD_LABELS["remote_public_key"])
            values["remote_key_id"] = identity.key_id(remote_key)

        def interval() -> None:
            if change.sync_interval is not None:
                values["sync_interval"] = parse_sync_interval(change.sync_interval)

        def allow() -> None:
            if change.allow_flows is not None:
                values["allow_flows"] = parse_allow_flows(change.allow_flows)

        attempt("remote_url", url)
        attempt("ca_cert", ca)
        attempt("own_private_key", own)
        attempt("remote_public_key", remote)
        attempt("sync_interval", interval)
        attempt("allow_flows", allow)
        for flag in ("enabled", "verify_ssl", "send_all_executions"):
            value = getattr(change, flag)
            if value is not None:
                if not isinstance(value, bool):
                    errors[flag] = f"{FIELD_LABELS[flag]} is either on or off."
                else:
                    values[flag] = value

        # The same key pasted on both sides would let either side pose as the other.
        if "remote_public_key" not in errors and "own_private_key" not in errors:
            final_own_kid = values.get("own_key_id", old.own_key_id if old else None)
            final_remote_kid = values.get("remote_key_id", old.remote_key_id if old else None)
            if final_remote_kid is not None and final_remote_kid == self.ws.key_id:
                errors["remote_public_key"] = (
                    "Remote public key is this workspace's own public key: paste the OTHER "
                    "workspace's key ('flowlink keys public --pem' there)."
                )
            elif final_remote_kid is not None and (final_own_kid or self.ws.key_id) == final_remote_kid:
                errors["own_private_key" if final_own_kid else "remote_public_key"] = (
                    "Own private key and Remote public key are one key pair: the remote public key "
                    "must be the OTHER workspace's key ('flowlink keys public --pem' there)."
                )
        if errors:
            raise ValidationErrors(errors)

        change.warnings = warnings
        new_items: list[str] = []
        try:
            if own_key is not None:
                item = own_key_item(name, values["own_key_id"])
                self.ws.secrets.set(item, identity.private_key_to_pem(own_key),
                                    f"Flowlink {self.ws.name}: own private key for link {name}")
                new_items.append(item)
            if remote_key is not None:
                item = remote_key_item(name, values["remote_key_id"])
                self.ws.secrets.set(item, identity.public_key_to_pem(remote_key),
                                    f"Flowlink {self.ws.name}: remote public key of link {name}")
                new_items.append(item)
            config = self._write(name, old, values)
        except BaseException:
            # Items are named by key id, so one the stored config (ours before, or another
            # writer's that won a race) names is in use and must stay.
            in_use: set[str] = set()
            try:
                current = self.find(name)
            except Exception:  # noqa: BLE001 - best effort; the original error matters
                current = None
            for config in (old, current):
                if config is not None:
                    in_use.add(remote_key_item(name, config.remote_key_id))
                    if config.own_key_id:
                        in_use.add(own_key_item(name, config.own_key_id))
            for item in new_items:
                if item not in in_use:
                    try:
                        self.ws.secrets.delete(item)
                    except Exception:  # noqa: BLE001, S110 - best effort; the original error matters
                        pass
            raise
        if old is not None:
            if old.own_key_id and old.own_key_id != config.own_key_id:
                self.ws.secrets.delete(own_key_item(name, old.own_key_id))
            if old.remote_key_id != config.remote_key_id:
                self.ws.secrets.delete(remote_key_item(name, old.remote_key_id))
        return config

    def _write(self, name: str, old: SyncConfig | None, values: dict[str, Any]) -> SyncConfig:
        t = now()
        merged = {
            "enabled": True, "remote_url": None, "ca_cert": None, "verify_ssl": True,
            "own_key_id": None, "remote_key_id": None, "send_all_executions": False,
            "sync_interval": None, "allow_flows": ["*"],
        }
        if old is not None:
            merged.update({k: getattr(old, k) for k in merged})
        merged.update(values)
        with self.ws.store.transaction() as tx:
            # The checks of add/update ran before the secrets were written; another process
            # (the window, another command) may have changed the link since.
            row = tx.execute("SELECT updated_at FROM links WHERE name = ?", (name,)).fetchone()
            if old is None and row is not None:
                raise ValidationErrors({"name": (
                    f"A link to '{name}' was added meanwhile by another Flowlink process; "
                    f"look at it with 'flowlink link show {name}' and change it with "
                    f"'flowlink link set {name}'.")})
            if old is not None and (row is None or row[0] != old.updated_at):
                raise ValidationErrors({"name": (
                    f"The link to '{name}' was changed or removed meanwhile by another Flowlink "
                    f"process; look at it again ('flowlink link show {name}') and repeat the "
                    "change.")})
            tx.execute(
                "INSERT INTO links (name, enabled, remote_url, ca_cert, verify_ssl, own_key_id, "
                "remote_key_id, send_all_executions, sync_interval, allow_flows, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled, "
                "remote_url = excluded.remote_url, ca_cert = excluded.ca_cert, "
                "verify_ssl = excluded.verify_ssl, own_key_id = excluded.own_key_id, "
                "remote_key_id = excluded.remote_key_id, "
                "send_all_executions = excluded.send_all_executions, "
                "sync_interval = excluded.sync_interval, allow_flows = excluded.allow_flows, "
                "updated_at = excluded.updated_at",
                (
                    name, int(merged["enabled"]), merged["remote_url"], merged["ca_cert"],
                    int(merged["verify_ssl"]), merged["own_key_id"], merged["remote_key_id"],
                    int(merged["send_all_executions"]), merged["sync_interval"],
                    json.dumps(merged["allow_flows"]), old.created_at if old else t, t,
                ),
            )
            self.ws.on_link_saved(tx, name)
        return self.get(name)


def _from_row(row: Any) -> SyncConfig:
    return SyncConfig(
        name=row["name"],
        enabled=bool(row["enabled"]),
        remote_url=row["remote_url"],
        ca_cert=row["ca_cert"],
        verify_ssl=bool(row["verify_ssl"]),
        own_key_id=row["own_key_id"],
        remote_key_id=row["remote_key_id"],
        send_all_executions=bool(row["send_all_executions"]),
        sync_interval=row["sync_interval"],
        allow_flows=json.loads(row["allow_flows"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
