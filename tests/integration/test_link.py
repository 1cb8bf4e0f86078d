"""Workspace linking between two real `flowlink serve` processes over HTTPS on 127.0.0.1."""

from __future__ import annotations

import json
import sqlite3

import pytest

from pair_fixtures import Peer, link, wait_until

# Tests on the shared module pair run in one xdist worker; the others spread.
shared_pair = pytest.mark.xdist_group("link-pair")

CALL = """\
import flow_api
def handler(system, this, inputs):
    try:
        child = this.flow(inputs['flow'], remote_workspace_name=inputs.get('remote', 'b'),
                          **inputs.get('args', {}))
    except flow_api.DependencyFailedError as exc:
        return this.error('dependency failed: ' + str(exc))
    this.save(output_value={'status': child.get('status'), 'output': child.get('output_value'),
                            'message': child.get('message'), 'workspace': child.get('workspace')})
"""
FAN_OUT = """\
def handler(system, this, inputs):
    children = [this.flow('collect_logs', remote_workspace_name='b', wait=False, since=str(i))
                for i in range(inputs['n'])]
    this.wait_for(*children)
    this.save(output_value={'summaries': [c.get('output_value')['summary'] for c in children]})
"""
COLLECT = """\
def handler(system, this, inputs):
    this.save(output_value={'summary': 'logs since ' + inputs['since']})
"""
FAIL = """\
def handler(system, this):
    raise RuntimeError('disk on fire')
"""
TREE = """\
def handler(system, this):
    leaf = this.flow('leaf')
    this.save(output_value={'leaf': leaf.get('output_value')})
"""
LEAF = """\
def handler(system, this):
    this.save(output_value={'ok': True})
"""
SPIN = """\
import os
def handler(system, this):
    system.setting('spin_pid').save(value=os.getpid())
    while True:
        this.sleep(0.05)
"""


def make_pair(tmp: object, *, a_url: bool = True, b_url: bool = True, b_extra: tuple = (),
              a_extra: tuple = (), a_dead_url: bool = False) -> tuple[Peer, Peer]:
    a = Peer("a", tmp / "a")  # type: ignore[operator]
    b = Peer("b", tmp / "b")  # type: ignore[operator]
    for peer in (a, b):
        peer.init()
        peer.serve()
    if a_dead_url:  # a's URL for b points at a closed port: only b's path works
        a_extra = (*a_extra, "--remote-url", "https://127.0.0.1:9/api/latest/sync_config/a/sync")
        a_url = False
    link(a, b, *a_extra, url=a_url)
    link(b, a, *b_extra, url=b_url)
    for name, source in (("collect_logs", COLLECT), ("fail", FAIL), ("tree", TREE), ("leaf", LEAF),
                         ("spin", SPIN), ("call", CALL)):
        b.add_flow(name, source)
    a.add_flow("call", CALL)
    a.add_flow("fan_out", FAN_OUT)
    a.add_flow("collect_logs", COLLECT)
    return a, b


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    a, b = make_pair(tmp_path_factory.mktemp("pair"))
    yield a, b
    for peer in (a, b):
        assert peer.stop() == 0, f"{peer.name} did not stop cleanly on SIGTERM"


@pytest.fixture
def fresh(tmp_path):
    peers: list[Peer] = []

    def build(**kwargs):
        pair = make_pair(tmp_path, **kwargs)
        peers.extend(pair)
        return pair

    yield build
    for peer in peers:
        peer.stop()


def call(a: Peer, flow: str, remote: str = "b", **args) -> tuple[int, dict]:
    return a.run("call", "--inputs-json", json.dumps({"flow": flow, "remote": remote, "args": args}))


@shared_pair
def test_remote_flow_runs_in_b_and_returns_its_result(pair):
    a, b = pair
    code, ex = call(a, "collect_logs", since="1h")
    assert code == 0, ex["message"]
    assert ex["outputs"]["output"] == {"summary": "logs since 1h"}
    assert ex["outputs"]["status"] == "ENDED_SUCCESS"
    assert ex["outputs"]["workspace"] == "b"
    [ran] = [e for e in b.executions() if e["flow"] == "collect_logs" and e["inputs"] == {"since": "1h"}]
    assert ran["status"] == "ENDED_SUCCESS"


@shared_pair
def test_failure_in_b_raises_dependency_failed_in_a_with_b_message(pair):
    a, _b = pair
    code, ex = call(a, "fail")
    assert code == 1
    assert ex["status"] == "ENDED_ERROR"
    assert ex["message"].startswith("dependency failed:")
    assert "disk on fire" in ex["message"]


@shared_pair
def test_wait_false_and_wait_for_across_the_link(pair):
    a, _b = pair
    code, ex = a.run("fan_out", "--input", "n=5")
    assert code == 0, ex["message"]
    assert ex["outputs"]["summaries"] == [f"logs since {i}" for i in range(5)]


@shared_pair
def test_unknown_remote_flow_and_unknown_link(pair):
    a, _b = pair
    code, ex = call(a, "no_such_flow")
    assert code == 1 and "There is no flow 'no_such_flow' in workspace 'b'" in ex["message"]
    code, ex = call(a, "collect_logs", remote="nowhere")
    assert code == 1 and "there is no link to a workspace named 'nowhere'" in ex["message"]


@shared_pair
def test_send_all_executions_lists_b_tree_in_a(pair):
    a, b = pair
    b.cli("link", "set", "a", "--send-all-executions")
    try:
        code, ex = call(a, "tree")
        assert code == 0, ex["message"]
        listed = [e for e in a.executions("--workspace", "b")]
        flows = sorted(e["flow"] for e in listed if e["status"] == "ENDED_SUCCESS")
        assert "tree" in flows and "leaf" in flows
        leaf = next(e for e in listed if e["flow"] == "leaf")
        tree = next(e for e in listed if e["flow"] == "tree")
        assert leaf["workspace"] == "b" and leaf["parent_id"] == tree["id"]
        assert tree["parent_id"] == ex["id"]  # the remote root hangs under its caller
    finally:
        b.cli("link", "set", "a", "--no-send-all-executions")
    before = {e["id"] for e in a.executions()}
    code, ex = call(a, "tree")
    assert code == 0
    new = [e for e in a.executions() if e["id"] not in before]
    assert [e["flow"] for e in new] == ["call"]  # only its own; the caller still got the result
    assert ex["outputs"]["output"] == {"leaf": {"ok": True}}


@shared_pair
def test_link_status_reports_both_paths(pair):
    a, b = pair
    call(a, "collect_logs", since="x")
    status = json.loads(a.cli("link", "status", "b", "--json").stdout)["b"]
    assert status["state"] in ("synced", "syncing")
    assert status["direct_ok"] is True and status["last_success"]
    assert status["last_error"] is None
    status = json.loads(b.cli("link", "status", "a", "--json").stdout)["a"]
    assert status["last_inbound"]  # a reached b
    text = a.cli("link", "status").stdout
    assert "direct path (this side connects): works" in text


@shared_pair
def test_cancel_of_the_caller_cancels_the_remote_tree(pair):
    a, b = pair
    execution_id = int(a.cli("run", "call", "--no-wait", "--inputs-json",
                             json.dumps({"flow": "spin"})).stdout)
    bws = b.workspace()
    try:
        wait_until(lambda: bws.setting_exists("spin_pid"), what="the remote flow to start")
        a.cli("execution", "cancel", str(execution_id))

        def remote_cancelled():
            rows = [e for e in b.executions("--flow", "spin")]
            return rows and rows[0]["status"] == "ENDED_CANCELLED"

        wait_until(remote_cancelled, what="b to cancel the remote execution")
    finally:
        bws.store.conn.execute("DELETE FROM settings WHERE name = 'spin_pid'")
        bws.close()


def test_interval_sync(fresh):
    a, b = fresh(a_extra=("--sync-interval", "1"), b_url=False)
    code, ex = call(a, "collect_logs", since="interval")
    assert code == 0, ex["message"]
    assert ex["outputs"]["output"] == {"summary": "logs since interval"}


def test_direction_without_remote_url(fresh):
    a, b = fresh(b_url=False)
    code, ex = call(a, "collect_logs", since="one-way")
    assert code == 0, ex["message"]
    # b has no Remote URL for a: it cannot start flows there, and says so at once.
    code, ex = call(b, "collect_logs", remote="a", since="back")
    assert code == 1
    assert "does not control 'a'" in ex["message"]


def test_two_way_control(fresh):
    a, b = fresh()
    assert call(a, "collect_logs", since="ab")[1]["outputs"]["output"] == {"summary": "logs since ab"}
    assert call(b, "collect_logs", remote="a", since="ba")[1]["outputs"]["output"] == {"summary": "logs since ba"}


def test_messages_travel_over_the_other_side_when_one_url_is_unreachable(fresh):
    a, b = fresh(a_dead_url=True)
    code, ex = call(a, "collect_logs", since="detour")
    assert code == 0, ex["message"]
    assert ex["outputs"]["output"] == {"summary": "logs since detour"}
    status = json.loads(a.cli("link", "status", "b", "--json").stdout)["b"]
    assert status["direct_ok"] is False and "Cannot connect" in status["last_error"]
    assert status["last_inbound"]  # b's path works


def test_allow_list_refuses_other_flows(fresh):
    a, b = fresh(b_extra=("--allow-flows", "collect_*"))
    assert call(a, "collect_logs", since="ok")[0] == 0
    code, ex = call(a, "fail")
    assert code == 1
    assert "may not run flow 'fail'" in ex["message"]


def test_disabled_link_fails_fast_and_does_not_exchange(fresh):
    a, b = fresh()
    a.cli("link", "set", "b", "--disabled")
    code, ex = call(a, "collect_logs", since="x")
    assert code == 1 and "the link to b is disabled" in ex["message"]
    # b disabling its side: a's exchanges are refused with link_disabled.
    a.cli("link", "set", "b", "--enabled")
    b.cli("link", "set", "a", "--disabled")
    a.cli("run", "call", "--no-wait", "--inputs-json", json.dumps({"flow": "collect_logs",
                                                                   "args": {"since": "y"}}))
    wait_until(lambda: (json.loads(a.cli("link", "status", "b", "--json").stdout)["b"]["last_error"]
                        or "").startswith("'b' has disabled its link"), what="a to see b's refusal")
    assert not [e for e in b.executions() if e["inputs"] == {"since": "y"}]


def test_no_ca_certificate_is_a_tls_error_and_verify_off_still_checks_signatures(fresh):
    a, b = fresh(b_url=False)
    a.cli("link", "remove", "b")
    a.cli("link", "add", "b", "--remote-public-key", str(b.files["pub"]),
          "--remote-url", b.sync_url("a"))
    a.cli("run", "call", "--no-wait", "--inputs-json", json.dumps({"flow": "collect_logs",
                                                                   "args": {"since": "tls"}}))
    wait_until(lambda: "TLS failure" in (json.loads(a.cli("link", "status", "b", "--json").stdout)
                                         ["b"]["last_error"] or ""), what="the TLS error")
    a.cli("link", "set", "b", "--no-verify-ssl")
    wait_until(lambda: any(e["inputs"] == {"since": "tls"} and e["status"] == "ENDED_SUCCESS"
                           for e in b.executions()), what="the call to go through without TLS checks")
    status = a.cli("link", "status", "b").stdout
    assert "not verified" in status


def test_kill_executing_side_mid_run_caller_ends_with_workspace_restarted(fresh):
    a, b = fresh()
    execution_id = int(a.cli("run", "call", "--no-wait", "--inputs-json",
                             json.dumps({"flow": "spin"})).stdout)
    bws = b.workspace()
    try:
        wait_until(lambda: bws.setting_exists("spin_pid"), what="the remote flow to run")
    finally:
        bws.close()
    b.kill()
    b.serve()
    aws = a.workspace()
    try:
        wait_until(lambda: aws.get_execution(execution_id).terminal, what="the caller to end")
        caller = aws.get_execution(execution_id)
        assert caller.status == "ENDED_ERROR"
        assert "workspace restarted" in caller.message
    finally:
        aws.close()


@pytest.mark.parametrize("victim", ["a", "b"])
def test_kill_either_side_in_a_burst_of_200_calls_every_call_ends_once(fresh, victim):
    a, b = fresh()
    burst = """\
def handler(system, this):
    children = [this.flow('collect_logs', remote_workspace_name='b', wait=False, since=str(i))
                for i in range(200)]
    this.wait_for(*children)
"""
    a.add_flow("burst", burst)
    execution_id = int(a.cli("run", "burst", "--no-wait").stdout)
    db_b = b.data_dir / "workspace.db"

    def count(peer: Peer, where: str) -> int:
        conn = sqlite3.connect(f"file:{peer.data_dir / 'workspace.db'}?mode=ro", uri=True)
        try:
            return conn.execute(f"SELECT count(*) FROM executions WHERE {where}").fetchone()[0]  # noqa: S608
        finally:
            conn.close()

    # Kill while calls are in flight: all 200 made in a, some but not all done in b.
    wait_until(lambda: count(a, "workspace = 'b'") == 200, what="a to make the 200 calls")
    wait_until(lambda: count(b, "flow = 'collect_logs'") >= 20, what="the burst to reach b")
    peer = a if victim == "a" else b
    peer.kill()
    peer.serve()
    aws = a.workspace()
    try:
        if victim == "a":
            # The caller itself was running in a: it ends "workspace restarted"; its remote
            # children still run to their end in b and report back exactly once.
            wait_until(lambda: aws.get_execution(execution_id).terminal, what="the caller to end")
        else:
            # Calls that were running in b when it died end "workspace restarted"; the
            # rest run after the restart. Either way each ends once.
            wait_until(lambda: aws.get_execution(execution_id).terminal, timeout=90,
                       what="the burst to finish")
        proxies = aws.children(execution_id)
        assert len(proxies) == 200
        wait_until(lambda: all(p.terminal for p in aws.children(execution_id)), timeout=90,
                   what="every remote child to end")
    finally:
        aws.close()
    conn = sqlite3.connect(f"file:{db_b}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT request_id, count(*) FROM executions WHERE flow='collect_logs' "
                            "GROUP BY request_id").fetchall()
    finally:
        conn.close()
    assert len(rows) == 200, "every call reached b"
    assert {count for _rid, count in rows} == {1}, "no call ran twice"


def test_a_peer_that_was_away_gets_everything_queued_in_order_once(fresh):
    a, b = fresh(b_url=False)  # only a connects: the backlog must travel on a's retries
    b.stop()
    execution_id = int(a.cli("run", "fan_out", "--no-wait", "--input", "n=30").stdout)
    aws = a.workspace()
    try:
        wait_until(lambda: len(aws.children(execution_id)) == 30, what="the 30 calls to be queued")
        # Restart a while b is away: the backlog now rests only in a's outbox on disk, and
        # a's first attempts after the restart fail; nothing new is queued after them.
        assert a.stop() == 0
        a.serve()

        def failed_since_restart() -> bool:
            status = json.loads(a.cli("link", "status", "b", "--json").stdout)["b"]
            return status["direct_ok"] is False and "Cannot connect" in (status["last_error"] or "")

        wait_until(failed_since_restart, what="a to notice b is away")
        b.serve()
        wait_until(lambda: len(b.executions("--flow", "collect_logs", "--status", "ENDED_SUCCESS")) == 30,
                   timeout=90, what="the backlog to be delivered and run")
        wait_until(lambda: all(c.terminal for c in aws.children(execution_id)), timeout=30,
                   what="the answers to come back")
        assert {c.status for c in aws.children(execution_id)} == {"ENDED_SUCCESS"}
    finally:
        aws.close()
    ran = sorted(b.executions("--flow", "collect_logs"), key=lambda e: e["id"])
    assert [int(e["inputs"]["since"]) for e in ran] == list(range(30))  # in order, each once


@shared_pair
def test_probe_reports_round_trip_and_refusals_in_words(pair, tmp_path):
    from flowlink.link.client import LinkClient, LinkError
    from flowlink.link.exchange import LinkExchange
    from flowlink.workspace.identity import generate_private_key, private_key_to_pem

    a, _b = pair
    ws = a.workspace()
    try:
        exchange = LinkExchange(ws)
        config = ws.links.get("b")
        client = LinkClient(exchange, config)
        try:
            assert client.probe() > 0
        finally:
            client.close()
        # A key b does not know: refused, and the sentence says what to do.
        stranger = generate_private_key(2048)
        key_file = tmp_path / "stranger.pem"
        key_file.write_text(private_key_to_pem(stranger))
        a.cli("link", "set", "b", "--own-private-key", str(key_file))
        try:
            client = LinkClient(exchange, ws.links.get("b"))
            with pytest.raises(LinkError, match="refused our signature"):
                client.probe()
            client.close()
        finally:
            a.cli("link", "set", "b", "--use-workspace-key")
        # No CA certificate for b's self-made certificate: a TLS failure, in words.
        a.cli("link", "set", "b", "--ca-cert", "/dev/null")
        try:
            client = LinkClient(exchange, ws.links.get("b"))
            with pytest.raises(LinkError, match="TLS failure"):
                client.probe()
            client.close()
        finally:
            a.cli("link", "set", "b", "--ca-cert", str(_b.files["ca"]))
    finally:
        ws.close()
