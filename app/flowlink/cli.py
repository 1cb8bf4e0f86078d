"""Command line: the desktop window by default, headless subcommands otherwise.

Exit codes: 0 done; 1 a run ended other than in success; 2 the command could not
do what was asked (the reason is one sentence on stderr).
Keep imports lazy: `flowlink --version` must not pay for Qt, httpx or crypto.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from flowlink import __version__

EXIT_OK, EXIT_FAILED_RUN, EXIT_ERROR = 0, 1, 2


class CliError(Exception):
    pass


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _inputs(args: argparse.Namespace) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    if args.inputs_json:
        try:
            parsed = json.loads(args.inputs_json)
        except ValueError as exc:
            raise CliError(f"--inputs-json is not valid JSON ({exc}); pass an object like '{{\"a\": 1}}'.") from None
        if not isinstance(parsed, dict):
            raise CliError("--inputs-json must be a JSON object like '{\"a\": 1}'.")
        inputs.update(parsed)
    for item in args.input or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--input {item!r} must look like KEY=VALUE.")
        inputs[key] = _parse_value(value)
    return inputs


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS,
                        help="workspace folder (default: the platform's user data folder)")
    common.add_argument("--as", dest="acting_user", default=argparse.SUPPRESS,
                        help="act as this workspace user (default: the OS user)")
    common.add_argument("--secret-store", choices=["keyring", "file"], default=argparse.SUPPRESS,
                        help="where private keys live: the OS keyring (default) or files "
                        "readable only by you (also FLOWLINK_SECRET_STORE)")

    parser = argparse.ArgumentParser(
        prog="flowlink",
        description="Flowlink: flow scripts, executions and linked workspaces. "
        "With no command, opens the desktop window.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"flowlink {__version__}")
    parser.add_argument("--minimized", action="store_true",
                        help="desktop window: start hidden in the system tray (the window shows "
                        "anyway where there is no tray)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("init", parents=[common], help="create the workspace")
    p.add_argument("--name", required=True, help="workspace name: lowercase letters, digits, '-'")
    p.add_argument("--tls-name", action="append", default=[], metavar="NAME",
                   help="another host name or IP address for the HTTPS certificate")

    keys = sub.add_parser("keys", parents=[common], help="the workspace's RSA key pair")
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    p = ksub.add_parser("public", parents=[common], help="print the public key and its key id")
    p.add_argument("--pem", action="store_true", help="print only the PEM (to paste elsewhere)")
    ksub.add_parser("rotate", parents=[common], help="make a new key pair")

    tls = sub.add_parser("tls", parents=[common], help="the workspace CA and HTTPS certificate")
    tsub = tls.add_subparsers(dest="tls_command", metavar="ACTION", required=True)
    tsub.add_parser("ca-cert", parents=[common], help="print the CA certificate a peer pastes")
    p = tsub.add_parser("renew", parents=[common], help="issue a new server certificate")
    p.add_argument("--tls-name", action="append", default=None, metavar="NAME")

    link = sub.add_parser("link", parents=[common], help="Synch Configs of linked workspaces")
    lsub = link.add_subparsers(dest="link_command", metavar="ACTION", required=True)
    for action in ("add", "set"):
        p = lsub.add_parser(action, parents=[common],
                            help="add a link" if action == "add" else "change what is given")
        p.add_argument("remote_name", metavar="REMOTE_NAME")
        p.add_argument("--remote-url", metavar="URL",
                       help="https://HOST:PORT/api/latest/sync_config/<this workspace>/sync; "
                       "empty: the other side controls this one and this one never connects out")
        p.add_argument("--remote-public-key", type=Path, metavar="FILE", required=action == "add")
        p.add_argument("--own-private-key", type=Path, metavar="FILE",
                       help="sign with this key instead of the workspace key")
        if action == "set":
            p.add_argument("--use-workspace-key", action="store_true",
                           help="sign with the workspace key again")
        p.add_argument("--ca-cert", type=Path, metavar="FILE")
        p.add_argument("--no-verify-ssl", dest="verify_ssl", action="store_false", default=None)
        if action == "set":
            # default=None on every flag of a shared dest: argparse applies the first
            # action's default, and store_true/false would otherwise change unnamed fields.
            p.add_argument("--verify-ssl", dest="verify_ssl", action="store_true", default=None)
            p.add_argument("--no-send-all-executions", dest="send_all", action="store_false",
                           default=None)
            p.add_argument("--enabled", dest="enabled", action="store_true", default=None)
        p.add_argument("--send-all-executions", dest="send_all", action="store_true", default=None)
        p.add_argument("--sync-interval", metavar="SECONDS",
                       help="seconds between exchanges; empty: as soon as something changes")
        p.add_argument("--allow-flows", metavar="GLOB,...",
                       help="flows the other workspace may run here (default: all)")
        p.add_argument("--disabled", dest="enabled", action="store_false",
                       default=None if action == "add" else argparse.SUPPRESS)
    p = lsub.add_parser("show", parents=[common])
    p.add_argument("remote_name", metavar="REMOTE_NAME")
    p = lsub.add_parser("status", parents=[common], help="how each link is doing")
    p.add_argument("remote_name", metavar="REMOTE_NAME", nargs="?")
    p.add_argument("--json", action="store_true")
    lsub.add_parser("list", parents=[common])

    p = sub.add_parser("serve", parents=[common],
                       help="run the workspace headless: engine, link syncers and HTTPS endpoint")
    p.add_argument("--listen", default="127.0.0.1:8443", metavar="HOST:PORT",
                   help="address of the HTTPS sync endpoint (default 127.0.0.1:8443; port 0 picks one; "
                   "0.0.0.0:PORT listens on every interface)")
    p.add_argument("--tls-cert", type=Path, metavar="FILE", help="your own certificate (PEM)")
    p.add_argument("--tls-key", type=Path, metavar="FILE", help="its private key (PEM)")
    p = lsub.add_parser("remove", parents=[common])
    p.add_argument("remote_name", metavar="REMOTE_NAME")

    flow = sub.add_parser("flow", parents=[common], help="manage flow scripts")
    fsub = flow.add_subparsers(dest="flow_command", metavar="ACTION", required=True)
    p = fsub.add_parser("add", parents=[common], help="add or replace a flow script")
    p.add_argument("name")
    p.add_argument("file", type=Path)
    fsub.add_parser("list", parents=[common], help="list flow scripts")
    p = fsub.add_parser("show", parents=[common], help="print a flow script")
    p.add_argument("name")
    p = fsub.add_parser("remove", parents=[common], help="remove a flow script")
    p.add_argument("name")

    setting = sub.add_parser("setting", parents=[common], help="workspace settings (JSON values)")
    ssub = setting.add_subparsers(dest="setting_command", metavar="ACTION", required=True)
    p = ssub.add_parser("set", parents=[common])
    p.add_argument("name")
    p.add_argument("json")
    p = ssub.add_parser("get", parents=[common])
    p.add_argument("name")
    ssub.add_parser("list", parents=[common])
    p = ssub.add_parser("remove", parents=[common])
    p.add_argument("name")

    files = sub.add_parser("file", parents=[common], help="workspace files")
    fisub = files.add_subparsers(dest="file_command", metavar="ACTION", required=True)
    p = fisub.add_parser("put", parents=[common])
    p.add_argument("name")
    p.add_argument("path", type=Path)
    p = fisub.add_parser("get", parents=[common])
    p.add_argument("name")
    p.add_argument("--output", type=Path)
    fisub.add_parser("list", parents=[common])
    p = fisub.add_parser("remove", parents=[common])
    p.add_argument("name")

    p = sub.add_parser("run", parents=[common], help="run a flow")
    p.add_argument("name")
    p.add_argument("--input", action="append", metavar="KEY=VALUE",
                   help="an input (VALUE is parsed as JSON where it parses)")
    p.add_argument("--inputs-json", metavar="JSON", help="inputs as one JSON object")
    p.add_argument("--no-wait", action="store_true", help="print the execution id and return")
    p.add_argument("--max-runtime", type=float, metavar="SECONDS")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop waiting after this long (the execution goes on)")

    p = sub.add_parser("executions", parents=[common], help="list executions, newest first")
    p.add_argument("--status")
    p.add_argument("--flow")
    p.add_argument("--workspace")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")

    execution = sub.add_parser("execution", parents=[common], help="one execution")
    esub = execution.add_subparsers(dest="execution_command", metavar="ACTION", required=True)
    p = esub.add_parser("show", parents=[common])
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p = esub.add_parser("cancel", parents=[common])
    p.add_argument("id", type=int)

    users = sub.add_parser("users", parents=[common], help="workspace users and roles")
    usub = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    p = usub.add_parser("add", parents=[common])
    p.add_argument("name")
    p.add_argument("--role", default="user", choices=["organization_admin", "user"])
    usub.add_parser("list", parents=[common])
    p = usub.add_parser("remove", parents=[common])
    p.add_argument("name")

    p = sub.add_parser("engine", parents=[common],
                       help="run the engine in the background until idle (used by run --no-wait)")
    p.add_argument("--idle-exit", type=float, default=5.0, metavar="SECONDS")
    return parser


def _data_dir(args: argparse.Namespace) -> Path:
    from flowlink.workspace.workspace import default_data_dir

    value = getattr(args, "data_dir", None)
    return Path(value).expanduser() if value else default_data_dir()


def _open(args: argparse.Namespace):  # noqa: ANN202 - Workspace, imported lazily
    from flowlink.workspace.workspace import Workspace

    return Workspace.open(_data_dir(args), acting_user=getattr(args, "acting_user", None),
                          secret_store=getattr(args, "secret_store", None))


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return _gui(args)
    from flowlink.errors import FlowlinkError

    try:
        return COMMANDS[args.command](args)
    except (FlowlinkError, CliError) as exc:
        print(f"flowlink: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("flowlink: interrupted.", file=sys.stderr)
        return 130


def _gui(args: argparse.Namespace) -> int:
    try:
        from flowlink.gui.app import run_app
    except ImportError as exc:
        print(f"flowlink: the desktop window is not available ({exc}); install the GUI extra "
              "with 'pip install flowlink[gui]' or use a subcommand (see 'flowlink --help').",
              file=sys.stderr)
        return EXIT_ERROR
    return run_app(_data_dir(args), getattr(args, "acting_user", None),
                   start_minimized=getattr(args, "minimized", False))


# -- commands -----------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from flowlink.workspace.workspace import Workspace

    ws = Workspace.init(_data_dir(args), args.name, admin=getattr(args, "acting_user", None),
                        secret_store=getattr(args, "secret_store", None), tls_names=args.tls_name)
    print(f"Created workspace '{ws.name}' in {ws.data_dir}; {ws.acting_user} is its organization admin.")
    print(f"Key id {ws.key_id}; private keys are kept in {ws.secrets.display_name}.")
    return EXIT_OK


def cmd_keys(args: argparse.Namespace) -> int:
    ws = _open(args)
    if args.keys_command == "public":
        if args.pem:
            sys.stdout.write(ws.public_key_pem)
        else:
            print(f"key id: {ws.key_id}")
            sys.stdout.write(ws.public_key_pem)
        return EXIT_OK
    kid, links = ws.rotate_keys()
    print(f"New key pair made; key id {kid}.")
    if links:
        print("These linked workspaces still name the old public key in their Synch Config for "
              f"'{ws.name}'; paste the new one there ('flowlink keys public --pem'): {', '.join(links)}.")
    return EXIT_OK


def cmd_tls(args: argparse.Namespace) -> int:
    ws = _open(args)
    if args.tls_command == "ca-cert":
        sys.stdout.write(ws.ca_cert_pem)
        return EXIT_OK
    ws.require_admin("renew the HTTPS certificate")
    path = ws.renew_server_certificate(args.tls_name)
    print(f"Issued a new server certificate: {path}.")
    return EXIT_OK


def _read_text(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read the {what} file {path}: {exc.strerror}.") from None
    if len(data) > 1024 * 1024:
        raise CliError(f"the {what} file {path} is larger than 1 MiB; it cannot be a key or certificate.")
    # utf-8-sig: editors on Windows may save a PEM file with a byte order mark in front.
    return data.decode("utf-8-sig", "replace")


def _link_change(args: argparse.Namespace):  # noqa: ANN202 - SyncConfigChange, imported lazily
    from flowlink.workspace.links import USE_WORKSPACE_KEY, SyncConfigChange

    own = _read_text(args.own_private_key, "own private key")
    if getattr(args, "use_workspace_key", False):
        own = USE_WORKSPACE_KEY
    return SyncConfigChange(
        enabled=getattr(args, "enabled", None),
        remote_url=args.remote_url,
        ca_cert=_read_text(args.ca_cert, "CA certificate"),
        verify_ssl=args.verify_ssl,
        own_private_key=own,
        remote_public_key=_read_text(args.remote_public_key, "remote public key"),
        send_all_executions=args.send_all,
        sync_interval=args.sync_interval,
        allow_flows=args.allow_flows,
    )


def cmd_link(args: argparse.Namespace) -> int:
    from flowlink.errors import ValidationErrors
    from flowlink.workspace.links import FIELD_LABELS

    ws = _open(args)
    action = args.link_command
    if action in ("add", "set"):
        change = _link_change(args)
        try:
            if action == "add":
                config = ws.links.add(args.remote_name, change)
            else:
                config = ws.links.update(args.remote_name, change)
        except ValidationErrors as exc:
            for field, sentence in exc.errors.items():
                print(f"flowlink: {FIELD_LABELS.get(field, field)}: {sentence}", file=sys.stderr)
            print("flowlink: nothing was saved.", file=sys.stderr)
            return EXIT_ERROR
        for warning in change.warnings:
            print(f"flowlink: warning: {warning}", file=sys.stderr)
        print(f"Saved the link to '{config.name}'.")
    elif action == "show":
        config = ws.links.get(args.remote_name)
        for key, value in config.describe(ws.key_id, ws.secrets.display_name).items():
            label = FIELD_LABELS.get(key, key)
            if isinstance(value, list):
                value = ", ".join(value) or "(none)"
            elif value is None or value == "":
                value = "(empty)"
            print(f"{label + ':':<26} {value}")
    elif action == "status":
        return _link_status(ws, args)
    elif action == "list":
        for config in ws.links.list():
            state = "enabled" if config.enabled else "disabled"
            direction = "controls it" if config.controls else "controlled by it"
            print(f"{config.name:<24} {state:<9} {direction:<17} {config.remote_url or ''}")
    else:
        ws.links.remove(args.remote_name)
        print(f"Removed the link to '{args.remote_name}' and its keys.")
    return EXIT_OK


def cmd_flow(args: argparse.Namespace) -> int:
    ws = _open(args)
    action = args.flow_command
    if action == "add":
        try:
            source = args.file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read {args.file}: {exc}.") from None
        ws.add_flow(args.name, source, filename=str(args.file))
        print(f"Saved flow '{args.name}'.")
    elif action == "list":
        for name in ws.list_flows():
            print(name)
    elif action == "show":
        sys.stdout.write(ws.get_flow(args.name))
    elif action == "remove":
        ws.remove_flow(args.name)
        print(f"Removed flow '{args.name}'.")
    return EXIT_OK


def cmd_setting(args: argparse.Namespace) -> int:
    ws = _open(args)
    action = args.setting_command
    if action == "set":
        try:
            value = json.loads(args.json)
        except ValueError as exc:
            raise CliError(f"the value is not valid JSON ({exc}); quote strings like '\"text\"'.") from None
        ws.set_setting(args.name, value)
        print(f"Saved setting '{args.name}'.")
    elif action == "get":
        _print_json(ws.get_setting(args.name))
    elif action == "list":
        for name in ws.list_settings():
            print(name)
    elif action == "remove":
        ws.remove_setting(args.name)
        print(f"Removed setting '{args.name}'.")
    return EXIT_OK


def cmd_file(args: argparse.Namespace) -> int:
    ws = _open(args)
    action = args.file_command
    if action == "put":
        try:
            content = args.path.read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read {args.path}: {exc.strerror}.") from None
        ws.put_file(args.name, content)
        print(f"Saved file '{args.name}' ({len(content)} bytes).")
    elif action == "get":
        content = ws.get_file(args.name)
        if args.output:
            try:
                args.output.write_bytes(content)
            except OSError as exc:
                raise CliError(f"cannot write {args.output}: {exc.strerror}.") from None
        else:
            sys.stdout.buffer.write(content)
            sys.stdout.flush()
    elif action == "list":
        for name in ws.list_files():
            print(name)
    elif action == "remove":
        ws.remove_file(args.name)
        print(f"Removed file '{args.name}'.")
    return EXIT_OK


def _handoff_note(owner: dict[str, Any]) -> str:
    return (f"flowlink: the workspace is open in another Flowlink process ({owner['kind']}, "
            f"pid {owner['pid']}); it runs this execution.")


def _spawn_background_engine(args: argparse.Namespace) -> None:
    cmd = [sys.executable, "-m", "flowlink", "engine", "--data-dir", str(_data_dir(args))]
    if getattr(sys, "frozen", False):
        cmd = [sys.executable, "engine", "--data-dir", str(_data_dir(args))]
    extra: dict[str, Any] = {}
    if sys.platform == "win32":  # no console window flashing up for the background engine
        extra["creationflags"] = subprocess.CREATE_NO_WINDOW  # type: ignore[attr-defined]
    else:
        extra["start_new_session"] = True
    subprocess.Popen(  # noqa: S603 - our own executable
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        close_fds=True, **extra,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from flowlink.runtime import Host

    ws = _open(args)
    inputs = _inputs(args)
    if args.max_runtime is not None and args.max_runtime <= 0:
        raise CliError("--max-runtime must be a positive number of seconds.")
    execution_id = ws.create_execution(args.name, inputs, max_runtime=args.max_runtime)
    if args.no_wait:
        host = Host(ws, kind="cli")
        if host.owner() is None:
            _spawn_background_engine(args)
        print(execution_id)
        return EXIT_OK
    host = Host(ws, kind="cli")
    ended = host.run_until_ended([execution_id], timeout=args.timeout, on_handoff=lambda o: print(
        _handoff_note(o), file=sys.stderr))
    ex = ws.get_execution(execution_id)
    _print_json(ex.to_json(ws.name))
    if not ended:
        print(f"flowlink: stopped waiting after {args.timeout:g} s; execution {execution_id} "
              "goes on ('flowlink execution show ID' follows it).", file=sys.stderr)
        return EXIT_FAILED_RUN
    return EXIT_OK if ex.status == "ENDED_SUCCESS" else EXIT_FAILED_RUN


def _fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _first_line(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[-1] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def cmd_executions(args: argparse.Namespace) -> int:
    ws = _open(args)
    if args.limit < 1:
        raise CliError("--limit must be at least 1.")
    status = args.status.upper() if args.status else None
    rows = ws.list_executions(status=status, flow=args.flow, workspace=args.workspace, limit=args.limit)
    if args.json:
        _print_json([r.to_json(ws.name) for r in rows])
        return EXIT_OK
    print(f"{'ID':>8}  {'STATUS':<15} {'FLOW':<20} {'WORKSPACE':<12} {'STARTED':<19}  {'DURATION':>9}  MESSAGE")
    for r in rows:
        duration = "-" if r.duration is None else f"{r.duration:.3f}s"
        print(f"{r.id:>8}  {r.status:<15} {r.flow[:20]:<20} {(r.workspace or ws.name)[:12]:<12} "
              f"{_fmt_time(r.started_at):<19}  {duration:>9}  {_first_line(r.message)}")
    return EXIT_OK


def cmd_execution(args: argparse.Namespace) -> int:
    ws = _open(args)
    if args.execution_command == "show":
        ex = ws.get_execution(args.id)
        data = ex.to_json(ws.name)
        data["log"] = [{"time": _iso(line.ts), "stream": line.stream, "text": line.text}
                       for line in ws.logs(ex.id)]
        data["children"] = [c.to_json(ws.name) for c in ws.children(ex.id)]
        if args.json:
            _print_json(data)
        else:
            _print_execution(data)
        return EXIT_OK
    from flowlink.runtime import Host

    Host(ws, kind="cli").cancel(args.id)
    ex = ws.get_execution(args.id)
    print(f"Execution {ex.id} is {ex.status}.")
    return EXIT_OK


def _iso(ts: float) -> str:
    from flowlink.workspace.records import iso

    return iso(ts) or ""


def _print_execution(data: dict[str, Any]) -> None:
    for key in ("id", "flow", "name", "status", "workspace", "parent_id", "created_at",
                "started_at", "ended_at"):
        print(f"{key + ':':<12} {data[key] if data[key] is not None else '-'}")
    print(f"{'inputs:':<12} {json.dumps(data['inputs'], ensure_ascii=False)}")
    print(f"{'outputs:':<12} {json.dumps(data['outputs'], ensure_ascii=False)}")
    if data["message"]:
        print("message:")
        for line in str(data["message"]).splitlines():
            print(f"  {line}")
    if data["log"]:
        print("log:")
        for line in data["log"]:
            print(f"  {line['time']} [{line['stream']}] {line['text']}")
    if data["children"]:
        print("children:")
        for child in data["children"]:
            print(f"  {child['id']:>8}  {child['status']:<15} {child['flow']} ({child['workspace']})")


def _link_status(ws, args: argparse.Namespace) -> int:  # noqa: ANN001
    from flowlink.link.syncer import read_statuses

    statuses = read_statuses(ws)
    if args.remote_name:
        ws.links.get(args.remote_name)
        statuses = {args.remote_name: statuses[args.remote_name]}
    if args.json:
        _print_json({name: {
            "state": st.state, "sentence": st.sentence, "last_success": _iso_or_none(st.last_success),
            "last_inbound": _iso_or_none(st.last_inbound), "last_error": st.last_error,
            "queued_out": st.queued_out, "received": st.received, "direct_ok": st.direct_ok,
        } for name, st in statuses.items()})
        return EXIT_OK
    for name, st in statuses.items():
        print(f"{name}: {st.state}")
        if st.sentence:
            print(f"  {st.sentence}")
        print(f"  last successful exchange: {_fmt_time(st.last_success)}")
        print(f"  last reached by {name}:    {_fmt_time(st.last_inbound)}")
        print(f"  queued to send: {st.queued_out}; received so far: {st.received}")
        if st.last_error:
            print(f"  last error: {st.last_error}")
        direct = {True: "works", False: "fails", None: "not used"}[st.direct_ok]
        other = "works" if st.last_inbound else "not seen yet"
        print(f"  direct path (this side connects): {direct}; other side's path: {other}")
    return EXIT_OK


def _iso_or_none(ts: float | None) -> str | None:
    return None if ts is None else _iso(ts)


def _parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise CliError(f"--listen {text!r} must look like HOST:PORT, e.g. 127.0.0.1:8443 (port 0 picks one).")
    return host, int(port)


def cmd_serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from flowlink.runtime import Runtime
    from flowlink.workspace.ownership import OwnerLock, current_owner

    ws = _open(args)
    host, port = _parse_listen(args.listen)
    if (args.tls_cert is None) != (args.tls_key is None):
        raise CliError("--tls-cert and --tls-key go together: give both, or neither to use the workspace's own certificate.")
    tls = None
    if args.tls_cert is not None:
        for path in (args.tls_cert, args.tls_key):
            if not path.is_file():
                raise CliError(f"cannot read {path}: no such file.")
        tls = (args.tls_cert, args.tls_key)
    lock = OwnerLock.try_acquire(ws.data_dir, "serve")
    if lock is None:
        owner = current_owner(ws.data_dir) or {}
        raise CliError(f"this workspace is already run by another Flowlink process ({owner.get('kind')}, "
                       f"pid {owner.get('pid')}); stop it first, or use another --data-dir.")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    runtime = Runtime(ws, listen=(host, port), tls_files=tls)
    endpoint_file = ws.data_dir / "endpoint.json"
    try:
        try:
            runtime.start()
        except OSError as exc:
            raise CliError(f"cannot listen on {args.listen}: {exc.strerror or exc}.") from None
        url = runtime.endpoint.url
        endpoint_file.write_text(json.dumps({"url": url}))
        print(f"listening on {url}", flush=True)
        print(f"workspace '{ws.name}' in {ws.data_dir}; sync endpoint for a peer named P: "
              f"{url}/api/latest/sync_config/P/sync", flush=True)
        while not stop.wait(0.5):
            if runtime.endpoint.error is not None:
                raise CliError(f"the HTTPS endpoint stopped: {runtime.endpoint.error}")
    finally:
        runtime.stop()
        endpoint_file.unlink(missing_ok=True)
        lock.release()
    print("stopped.", flush=True)
    return EXIT_OK


def cmd_users(args: argparse.Namespace) -> int:
    ws = _open(args)
    if args.users_command == "add":
        ws.add_user(args.name, args.role)
        print(f"User '{args.name}' has the role {args.role}.")
    elif args.users_command == "list":
        for name, role in ws.list_users():
            print(f"{name:<24} {role}")
    else:
        ws.remove_user(args.name)
        print(f"Removed user '{args.name}'.")
    return EXIT_OK


def cmd_engine(args: argparse.Namespace) -> int:
    from flowlink.runtime import Host

    ws = _open(args)
    Host(ws, kind="background").run_until_idle(args.idle_exit)
    return EXIT_OK


COMMANDS = {
    "init": cmd_init,
    "flow": cmd_flow,
    "setting": cmd_setting,
    "file": cmd_file,
    "run": cmd_run,
    "executions": cmd_executions,
    "execution": cmd_execution,
    "users": cmd_users,
    "keys": cmd_keys,
    "tls": cmd_tls,
    "link": cmd_link,
    "serve": cmd_serve,
    "engine": cmd_engine,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
