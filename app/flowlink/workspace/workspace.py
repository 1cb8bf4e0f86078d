"""The local workspace: flows, settings, files, users and executions in one data dir."""

from __future__ import annotations

import ast
import getpass
import json
import re
import uuid
from pathlib import Path
from typing import Any

import platformdirs

from flowlink.errors import (
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
    WorkspaceError,
)
from flowlink.workspace.records import (
    ENDED_CANCELLED,
    PENDING,
    STATUSES,
    TERMINAL,
    Execution,
    LogLine,
)
from flowlink.workspace.store import Store, now

APP_NAME = "Flowlink"
DB_NAME = "workspace.db"
WORKSPACE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
WORKSPACE_NAME_RULE = (
    "a workspace name is 1 to 63 characters of lowercase letters, digits and '-', "
    "starting with a letter or digit"
)
ROLES = ("organization_admin", "user")
ADMIN = "organization_admin"
MAX_NAME_LENGTH = 200
MAX_SOURCE_BYTES = 1024 * 1024
MAX_FILE_BYTES = 64 * 1024 * 1024


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "user"


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a file atomically, created with ``mode`` from the first byte on."""
    import os

    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def check_workspace_name(name: str) -> str:
    if not isinstance(name, str) or not WORKSPACE_NAME_RE.fullmatch(name):
        raise ValidationError("name", f"{name!r} is not a valid workspace name: {WORKSPACE_NAME_RULE}.")
    return name


def check_resource_name(kind: str, name: str) -> str:
    """Names of flows, settings and files: printable, no control characters, no padding."""
    if (
        not isinstance(name, str)
        or not name
        or len(name) > MAX_NAME_LENGTH
        or name != name.strip()
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    ):
        raise ValidationError(
            "name",
            f"{name!r} is not a valid {kind} name: use 1 to {MAX_NAME_LENGTH} printable "
            "characters without leading or trailing spaces.",
        )
    return name


def check_flow_source(source: str, filename: str = "<flow>") -> None:
    """Refuse a flow script that does not compile or does not define handler()."""
    if len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        raise ValidationError("source", "The flow script is larger than 1 MiB; split it up.")
    try:
        tree = ast.parse(source, filename=filename)
        compile(tree, filename, "exec")
    except SyntaxError as exc:
        raise ValidationError(
            "source", f"{filename}, line {exc.lineno}: {exc.msg}. Nothing was saved."
        ) from None
    except ValueError as exc:  # e.g. null bytes
        raise ValidationError("source", f"{filename}: {exc}. Nothing was saved.") from None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "handler":
            if isinstance(node, ast.AsyncFunctionDef):
                raise ValidationError(
                    "source",
                    f"{filename}, line {node.lineno}: handler must be a plain function, "
                    "not async. Nothing was saved.",
                )
            return
    raise ValidationError(
        "source",
        f"{filename} does not define 'def handler(system, this):' at the top level. "
        "Nothing was saved.",
    )


class Workspace:
    """One data dir: its database, identity and acting user."""

    def __init__(self, data_dir: Path, store: Store, acting_user: str | None = None,
                 secret_store: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.store = store
        name = store.get_meta("name")
        ws_id = store.get_meta("id")
        if name is None or ws_id is None:
            raise WorkspaceError(
                f"The data folder {self.data_dir} holds no complete workspace; "
                "create one with 'flowlink init --name NAME'."
            )
        self.name: str = name
        self.id: str = ws_id
        self.acting_user = acting_user or default_user()
        self.secret_store_kind = store.get_meta("secret_store") or "keyring"
        if secret_store is not None and secret_store != self.secret_store_kind:
            store.close()
            raise WorkspaceError(
                f"This workspace keeps its secrets in the {self.secret_store_kind} store, "
                f"not the {secret_store} store; drop --secret-store or set it to "
                f"{self.secret_store_kind}."
            )
        self._secrets: Any = None
        self._queued_links: set[str] = set()
        self.outbox_listeners: list[Any] = []
        self._private_key: Any = None
        from flowlink.workspace.links import Links

        self.links = Links(self)

    # -- lifecycle ---------------------------------------------------------

    @staticmethod
    def db_path(data_dir: Path) -> Path:
        return Path(data_dir) / DB_NAME

    @classmethod
    def exists(cls, data_dir: Path) -> bool:
        return cls.db_path(data_dir).exists()

    @classmethod
    def init(
        cls,
        data_dir: Path,
        name: str,
        admin: str | None = None,
        *,
        secret_store: str | None = None,
        tls_names: list[str] | None = None,
    ) -> Workspace:
        """Create the workspace with its RSA identity, CA and server certificate.

        The secret store is checked first, and anything made before a failure is
        removed again, so a failed init can simply be retried (e.g. with the file store).
        """
        from flowlink.workspace.secrets import SecretStore, resolve_kind

        check_workspace_name(name)
        from flowlink.workspace.identity import server_names

        server_names(tls_names or [])  # a bad --tls-name fails before any key is made
        data_dir = Path(data_dir)
        if cls.exists(data_dir):
            raise WorkspaceError(
                f"A workspace already exists in {data_dir}; open it, or choose another "
                "folder with --data-dir."
            )
        kind = resolve_kind(secret_store)
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        ws_id = str(uuid.uuid4())
        secrets = SecretStore.open(kind, data_dir, ws_id)
        secrets.check()
        store = Store(cls.db_path(data_dir), create=True)
        admin = admin or default_user()
        with store.transaction() as tx:
            for key, value in (("name", name), ("id", ws_id), ("secret_store", kind)):
                tx.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
            tx.execute(
                "INSERT INTO users (name, role, created_at) VALUES (?, ?, ?)",
                (admin, ADMIN, now()),
            )
        ws = cls(data_dir, store, acting_user=admin, secret_store=kind)
        try:
            ws._create_identity(tls_names or [])
        except BaseException:
            ws._discard_new()
            raise
        return ws

    @classmethod
    def open(
        cls, data_dir: Path, acting_user: str | None = None, *, secret_store: str | None = None
    ) -> Workspace:
        data_dir = Path(data_dir)
        return cls(data_dir, Store(cls.db_path(data_dir)), acting_user=acting_user,
                   secret_store=secret_store)

    def close(self) -> None:
        self.store.close()

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    # -- identity and secrets ---------------------------------------------

    @property
    def secrets(self) -> Any:
        """The SecretStore of this workspace (opened on first use; opening does no I/O)."""
        if self._secrets is None:
            from flowlink.workspace.secrets import SecretStore

            self._secrets = SecretStore.open(self.secret_store_kind, self.data_dir, self.id)
        return self._secrets

    @property
    def key_id(self) -> str:
        value = self.store.get_meta("key_id")
        if value is None:
            raise WorkspaceError(f"The workspace in {self.data_dir} has no key pair; it was not fully created. Create it again with 'flowlink init'.")
        return value

    @property
    def public_key_pem(self) -> str:
        return self.store.get_meta("public_key") or ""

    @property
    def ca_cert_pem(self) -> str:
        return self.store.get_meta("ca_cert") or ""

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    def private_key(self) -> Any:
        """The workspace's RSA private key, read from the SecretStore once per key id.

        The key id is looked up each time: `flowlink keys rotate` in another process deletes
        the old item, and a running `serve` must sign with the new key, not a cached old one.
        """
        from flowlink.workspace.identity import key_id, load_private_key

        kid = self.key_id
        if self._private_key is None or key_id(self._private_key.public_key()) != kid:
            pem = self.secrets.get(f"workspace/private-key/{kid}")
            self._private_key = load_private_key(pem, "Workspace private key")
        return self._private_key

    def _create_identity(self, tls_names: list[str]) -> None:
        from flowlink.workspace import identity

        key = identity.generate_private_key()
        kid = identity.key_id(key.public_key())
        self.secrets.set(f"workspace/private-key/{kid}", identity.private_key_to_pem(key),
                         f"Flowlink {self.name}: workspace private key")
        ca_key, ca_cert = identity.make_ca(self.name)
        self.secrets.set("workspace/ca-key", identity.private_key_to_pem(ca_key),
                         f"Flowlink {self.name}: workspace CA private key")
        with self.store.transaction() as tx:
            for k, v in (("key_id", kid), ("public_key", identity.public_key_to_pem(key.public_key())),
                         ("ca_cert", identity.cert_to_pem(ca_cert))):
                tx.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", (k, v))
        self._private_key = key
        self.renew_server_certificate(tls_names, ca_key=ca_key, ca_cert=ca_cert)

    def _discard_new(self) -> None:
        """Undo a failed init: the secrets written so far and the database."""
        for item in ("workspace/ca-key",):
            try:
                self.secrets.delete(item)
            except Exception:  # noqa: BLE001, S110 - best effort; the original error matters
                pass
        kid = self.store.get_meta("key_id")
        if kid:
            try:
                self.secrets.delete(f"workspace/private-key/{kid}")
            except Exception:  # noqa: BLE001, S110
                pass
        self.store.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.db_path(self.data_dir)) + suffix).unlink(missing_ok=True)

    def server_tls_files(self) -> tuple[Path, Path]:
        return self.tls_dir / "server.pem", self.tls_dir / "server.key"

    def renew_server_certificate(self, tls_names: list[str] | None = None, *,
                                 ca_key: Any = None, ca_cert: Any = None) -> Path:
        """(Re)issue the HTTPS server certificate from the workspace CA."""
        from cryptography import x509

        from flowlink.workspace import identity

        if tls_names is None:
            tls_names = json.loads(self.store.get_meta("tls_names") or "[]")
        if ca_cert is None:
            ca_cert = x509.load_pem_x509_certificate(self.ca_cert_pem.encode())
        if ca_key is None:
            ca_key = identity.load_tls_private_key(self.secrets.get("workspace/ca-key"), "CA key")
        key, cert = identity.make_server_certificate(ca_key, ca_cert, self.name, tls_names)
        self.tls_dir.mkdir(mode=0o700, exist_ok=True)
        cert_path, key_path = self.server_tls_files()
        _write_private(key_path, identity.private_key_to_pem(key).encode())
        _write_private(cert_path, identity.cert_to_pem(cert).encode(), mode=0o644)
        self.store.set_meta("tls_names", json.dumps(list(tls_names)))
        return cert_path

    def server_certificate_needs_renewal(self) -> bool:
        from cryptography import x509

        from flowlink.workspace import identity

        cert_path, key_path = self.server_tls_files()
        if not cert_path.exists() or not key_path.exists():
            return True
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        return identity.certificate_needs_renewal(cert)

    def rotate_keys(self) -> tuple[str, list[str]]:
        """A new workspace key pair. Returns the new key id and the links whose other side
        still names the old public key (those that sign with the workspace key)."""
        from flowlink.workspace import identity

        self.require_admin("rotate the workspace keys")
        old_kid = self.key_id
        key = identity.generate_private_key()
        kid = identity.key_id(key.public_key())
        self.secrets.set(f"workspace/private-key/{kid}", identity.private_key_to_pem(key),
                         f"Flowlink {self.name}: workspace private key")
        with self.store.transaction() as tx:
            tx.execute("UPDATE meta SET value = ? WHERE key = 'key_id'", (kid,))
            tx.execute("UPDATE meta SET value = ? WHERE key = 'public_key'",
                       (identity.public_key_to_pem(key.public_key()),))
        self._private_key = key
        self.secrets.delete(f"workspace/private-key/{old_kid}")
        return kid, [c.name for c in self.links.list() if c.own_key_id is None]

    def on_link_saved(self, tx: Any, name: str) -> None:
        tx.execute("INSERT INTO link_state (name) VALUES (?) ON CONFLICT (name) DO NOTHING", (name,))

    def on_link_removed(self, tx: Any, name: str) -> None:
        for table, column in (("link_state", "name"), ("outbox", "link"),
                              ("remote_requests", "link"), ("seen_envelopes", "peer")):
            tx.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))  # noqa: S608 - fixed names

    # -- change hook -------------------------------------------------------

    def changed(self, tx: Any, ids: list[int]) -> None:
        """Call inside the transaction of every execution state change.

        Queues link updates in that same transaction (PROTOCOL.md section 6) and
        tells in-process listeners (the link layer wakes its senders) which links
        have something new, once the transaction has committed.
        """
        from flowlink.workspace.outbox import queue_updates

        links = queue_updates(tx, ids)
        if links:
            self._queued_links.update(links)

    def take_queued_links(self) -> set[str]:
        links, self._queued_links = self._queued_links, set()
        return links

    # -- users and roles ---------------------------------------------------

    def role_of(self, user: str) -> str | None:
        row = self.store.conn.execute("SELECT role FROM users WHERE name = ?", (user,)).fetchone()
        return None if row is None else row[0]

    @property
    def is_admin(self) -> bool:
        return self.role_of(self.acting_user) == ADMIN

    def require_admin(self, what: str) -> None:
        if not self.is_admin:
            raise PermissionDeniedError(
                f"Only an organization admin can {what}; '{self.acting_user}' is not one. "
                "Ask an admin, or act as one with --as NAME."
            )

    def list_users(self) -> list[tuple[str, str]]:
        rows = self.store.conn.execute("SELECT name, role FROM users ORDER BY name").fetchall()
        return [(r[0], r[1]) for r in rows]

    def add_user(self, name: str, role: str) -> None:
        self.require_admin("manage users")
        if role not in ROLES:
            raise ValidationError("role", f"{role!r} is not a role; use one of {', '.join(ROLES)}.")
        check_resource_name("user", name)
        with self.store.transaction() as tx:
            tx.execute(
                "INSERT INTO users (name, role, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET role = excluded.role",
                (name, role, now()),
            )
            self._keep_an_admin(tx)

    def remove_user(self, name: str) -> None:
        self.require_admin("manage users")
        with self.store.transaction() as tx:
            if tx.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise NotFoundError(f"There is no user '{name}'; 'flowlink users list' shows them.")
            self._keep_an_admin(tx)

    @staticmethod
    def _keep_an_admin(tx: Any) -> None:
        if tx.execute("SELECT count(*) FROM users WHERE role = ?", (ADMIN,)).fetchone()[0] == 0:
            raise PermissionDeniedError(
                "The last organization admin cannot be removed or demoted; make another user "
                "an admin first."
            )

    # -- flows -------------------------------------------------------------

    def add_flow(self, name: str, source: str, filename: str | None = None) -> None:
        check_resource_name("flow", name)
        check_flow_source(source, filename or name)
        with self.store.transaction() as tx:
            tx.execute(
                "INSERT INTO flows (name, source, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET source = excluded.source, "
                "updated_at = excluded.updated_at",
                (name, source, now()),
            )

    def get_flow(self, name: str) -> str:
        row = self.store.conn.execute("SELECT source FROM flows WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"There is no flow '{name}'; 'flowlink flow list' shows the flows.")
        return row[0]

    def flow_exists(self, name: str) -> bool:
        return self.store.conn.execute("SELECT 1 FROM flows WHERE name = ?", (name,)).fetchone() is not None

    def list_flows(self) -> list[str]:
        return [r[0] for r in self.store.conn.execute("SELECT name FROM flows ORDER BY name")]

    def remove_flow(self, name: str) -> None:
        with self.store.transaction() as tx:
            if tx.execute("DELETE FROM flows WHERE name = ?", (name,)).rowcount == 0:
                raise NotFoundError(f"There is no flow '{name}'; 'flowlink flow list' shows the flows.")

    # -- settings ----------------------------------------------------------

    def set_setting(self, name: str, value: Any) -> None:
        check_resource_name("setting", name)
        text = json.dumps(value)
        with self.store.transaction() as tx:
            tx.execute(
                "INSERT INTO settings (name, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                (name, text, now()),
            )

    def get_setting(self, name: str) -> Any:
        row = self.store.conn.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"There is no setting '{name}'; create it with 'flowlink setting set'.")
        return json.loads(row[0])

    def setting_exists(self, name: str) -> bool:
        return self.store.conn.execute("SELECT 1 FROM settings WHERE name = ?", (name,)).fetchone() is not None

    def list_settings(self) -> list[str]:
        return [r[0] for r in self.store.conn.execute("SELECT name FROM settings ORDER BY name")]

    def remove_setting(self, name: str) -> None:
        with self.store.transaction() as tx:
            if tx.execute("DELETE FROM settings WHERE name = ?", (name,)).rowcount == 0:
                raise NotFoundError(f"There is no setting '{name}'.")

    # -- files -------------------------------------------------------------

    def put_file(self, name: str, content: bytes) -> None:
        check_resource_name("file", name)
        if len(content) > MAX_FILE_BYTES:
            raise ValidationError("content", "Files in a workspace are limited to 64 MiB.")
        with self.store.transaction() as tx:
            tx.execute(
                "INSERT INTO files (name, content, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET content = excluded.content, "
                "updated_at = excluded.updated_at",
                (name, content, now()),
            )

    def get_file(self, name: str) -> bytes:
        row = self.store.conn.execute("SELECT content FROM files WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"There is no file '{name}'; add it with 'flowlink file put'.")
        return bytes(row[0])

    def file_exists(self, name: str) -> bool:
        return self.store.conn.execute("SELECT 1 FROM files WHERE name = ?", (name,)).fetchone() is not None

    def list_files(self) -> list[str]:
        return [r[0] for r in self.store.conn.execute("SELECT name FROM files ORDER BY name")]

    def remove_file(self, name: str) -> None:
        with self.store.transaction() as tx:
            if tx.execute("DELETE FROM files WHERE name = ?", (name,)).rowcount == 0:
                raise NotFoundError(f"There is no file '{name}'.")

    # -- executions --------------------------------------------------------

    def create_execution(
        self,
        flow: str,
        inputs: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        parent_id: int | None = None,
        workspace: str | None = None,
        request_id: str | None = None,
        max_runtime: float | None = None,
        listed: bool = True,
        started_by: str | None = None,
    ) -> int:
        """Record a PENDING execution. A local one needs its flow to exist here."""
        inputs = dict(inputs or {})
        if workspace is None and not self.flow_exists(flow):
            raise NotFoundError(f"There is no flow '{flow}'; 'flowlink flow list' shows the flows.")
        if max_runtime is not None and not max_runtime > 0:
            raise ValidationError("max_runtime", "max_runtime must be a positive number of seconds.")
        with self.store.transaction() as tx:
            origin_link = origin_request = None
            if parent_id is not None:
                parent = tx.execute(
                    "SELECT origin_link, origin_request FROM executions WHERE id = ?", (parent_id,)
                ).fetchone()
                if parent is not None:
                    origin_link, origin_request = parent[0], parent[1]
            cur = tx.execute(
                "INSERT INTO executions (flow, name, status, inputs, parent_id, workspace, "
                "request_id, max_runtime, listed, started_by, created_at, origin_link, origin_request) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    flow,
                    name or flow,
                    PENDING,
                    json.dumps(inputs),
                    parent_id,
                    workspace,
                    request_id,
                    max_runtime,
                    int(listed),
                    started_by or self.acting_user,
                    now(),
                    origin_link,
                    origin_request,
                ),
            )
            execution_id = int(cur.lastrowid)
            self.changed(tx, [execution_id])
        self.notify_outbox()
        return execution_id

    def notify_outbox(self) -> None:
        """After a commit: tell listeners which links got new outbox messages."""
        links = self.take_queued_links()
        if links:
            for listener in list(self.outbox_listeners):
                listener(links)

    def get_execution(self, execution_id: int) -> Execution:
        row = self.store.conn.execute(
            "SELECT * FROM executions WHERE id = ?", (execution_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(
                f"There is no execution {execution_id}; 'flowlink executions' lists them."
            )
        return Execution.from_row(row)

    def find_execution(self, execution_id: int) -> Execution | None:
        row = self.store.conn.execute(
            "SELECT * FROM executions WHERE id = ?", (execution_id,)
        ).fetchone()
        return None if row is None else Execution.from_row(row)

    def list_executions(
        self,
        *,
        status: str | None = None,
        flow: str | None = None,
        workspace: str | None = None,
        text: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
        include_unlisted: bool = False,
    ) -> list[Execution]:
        """Newest first; page with ``before_id`` (keyset paging stays fast at any depth)."""
        if status is not None and status not in STATUSES:
            raise ValidationError("status", f"{status!r} is not a status; use one of {', '.join(STATUSES)}.")
        where, args = self._execution_filter(status, flow, workspace, text, include_unlisted)
        if before_id is not None:
            where.append("id < ?")
            args.append(before_id)
        sql = "SELECT * FROM executions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(int(limit))
        return [Execution.from_row(r) for r in self.store.conn.execute(sql, args)]

    def _execution_filter(
        self,
        status: str | None,
        flow: str | None,
        workspace: str | None,
        text: str | None,
        include_unlisted: bool,
    ) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        args: list[Any] = []
        if not include_unlisted:
            where.append("listed = 1")
        if status:
            where.append("status = ?")
            args.append(status)
        if flow:
            where.append("flow = ?")
            args.append(flow)
        if workspace:
            if workspace == self.name:
                where.append("workspace IS NULL")
            else:
                where.append("workspace = ?")
                args.append(workspace)
        if text:
            where.append("(name LIKE ? ESCAPE '\\' OR flow LIKE ? ESCAPE '\\' OR message LIKE ? ESCAPE '\\')")
            pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            args.extend([pattern, pattern, pattern])
        return where, args

    def children(self, execution_id: int) -> list[Execution]:
        rows = self.store.conn.execute(
            "SELECT * FROM executions WHERE parent_id = ? ORDER BY id", (execution_id,)
        )
        return [Execution.from_row(r) for r in rows]

    def descendants(self, execution_id: int) -> list[int]:
        rows = self.store.conn.execute(
            "WITH RECURSIVE tree(id) AS (SELECT id FROM executions WHERE parent_id = ? "
            "UNION ALL SELECT e.id FROM executions e JOIN tree t ON e.parent_id = t.id) "
            "SELECT id FROM tree",
            (execution_id,),
        )
        return [r[0] for r in rows]

    def logs(self, execution_id: int, after_id: int = 0) -> list[LogLine]:
        rows = self.store.conn.execute(
            "SELECT ts, stream, text FROM execution_logs WHERE execution_id = ? AND id > ? ORDER BY id",
            (execution_id, after_id),
        )
        return [LogLine(r[0], r[1], r[2]) for r in rows]

    def request_cancel(self, execution_id: int) -> None:
        """Ask the owning process to cancel an execution tree (it polls for this)."""
        with self.store.transaction() as tx:
            ex = tx.execute("SELECT status FROM executions WHERE id = ?", (execution_id,)).fetchone()
            if ex is None:
                raise NotFoundError(f"There is no execution {execution_id}; 'flowlink executions' lists them.")
            tx.execute(
                "UPDATE executions SET cancel_requested = 1, version = version + 1 "
                "WHERE id = ? AND status NOT IN (?, ?, ?)",
                (execution_id, *TERMINAL),
            )

    def cancel_unowned(self, execution_id: int, message: str = "cancelled") -> list[int]:
        """Cancel a tree directly in the store; only for the owner or when no engine runs."""
        ids = [execution_id, *self.descendants(execution_id)]
        ended: list[int] = []
        with self.store.transaction() as tx:
            for ex_id in ids:
                cur = tx.execute(
                    "UPDATE executions SET status = ?, message = ?, ended_at = ?, "
                    "version = version + 1, cancel_requested = 0 "
                    "WHERE id = ? AND status NOT IN (?, ?, ?)",
                    (ENDED_CANCELLED, message, now(), ex_id, *TERMINAL),
                )
                if cur.rowcount:
                    ended.append(ex_id)
            self.changed(tx, ended)
        self.notify_outbox()
        return ended

    def count_executions(self) -> int:
        return self.store.conn.execute("SELECT count(*) FROM executions").fetchone()[0]
