"""Remote-call benchmarks over a real link (issue: workspace linking). Prints figures; asserts
nothing but that the setup works.

    .venv/bin/python bench/link_roundtrip.py [--calls 500] [--inflight 100] [--rounds 10]
                                             [--backlog 10000] [--one-way] [--skip WHAT] [--keep]

Two `flowlink serve` processes on 127.0.0.1 (workspaces "a" and "b", temporary data dirs, file
secret store), linked both ways through the CLI; b has a trivial flow "x". Flows in a measure,
from inside the flow script:

- round trip: ``this.flow('x', remote_workspace_name='b')`` to its return, --calls sequential
  calls after a warm-up (p50, p95, mean, max);
- throughput: --inflight calls with ``wait=False`` then ``this.wait_for(*children)``, --rounds
  times (remote calls per second, best and median round);
- backlog (linked both ways only): b is stopped (SIGTERM), a flow in a starts --backlog remote calls with
  ``wait=False`` (they queue as execution.start messages in a's outbox for b), b is started
  again, and the time from b listening to a's outbox for b being empty (delivered and acked)
  is reported; then the time until all those calls have ended in a.

Goals (issue 4, this 2-core machine): p50 < 10 ms, > 300 calls/s, backlog < 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ["FLOWLINK_SECRET_STORE"] = "file"

from link_fixtures import ServeProcess, run_cli, wait_until  # noqa: E402

X = """\
def handler(system, this, inputs):
    return this.success('x')
"""
SEQUENTIAL = """\
import time

def handler(system, this, inputs):
    times = []
    for _ in range(inputs.get('n', 500)):
        started = time.perf_counter()
        this.flow('x', remote_workspace_name='b')
        times.append(time.perf_counter() - started)
    this.save(output_value={'times': times})
"""
PARALLEL = """\
import time

def handler(system, this, inputs):
    rounds = []
    for _ in range(inputs.get('rounds', 5)):
        started = time.perf_counter()
        children = [this.flow('x', remote_workspace_name='b', wait=False)
                    for _ in range(inputs.get('k', 100))]
        this.wait_for(*children)
        rounds.append(time.perf_counter() - started)
    this.save(output_value={'rounds': rounds})
"""
BURST = """\
def handler(system, this, inputs):
    for _ in range(inputs['n']):
        this.flow('x', remote_workspace_name='b', wait=False)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def query(data_dir: Path, sql: str, *params: object) -> int:
    conn = sqlite3.connect(f"file:{data_dir / 'workspace.db'}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchone()[0]
    finally:
        conn.close()


def run_flow(data_dir: Path, flow: str, inputs: dict, timeout: float = 900) -> dict:
    proc = run_cli(data_dir, "run", flow, "--inputs-json", json.dumps(inputs),
                   "--timeout", str(timeout), timeout=timeout + 30, check=False)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise SystemExit(
            f"flowlink run {flow} printed no JSON:\n{proc.stdout}\n{proc.stderr}") from None
    if result["status"] != "ENDED_SUCCESS":
        raise SystemExit(f"flow {flow} ended {result['status']}: {result['message']}")
    return result


class Pair:
    """Workspaces a and b, each run by `flowlink serve`, each with a link to the other."""

    def __init__(self, folder: Path, *, one_way: bool = False) -> None:
        self.folder = folder
        self.dirs = {name: folder / name for name in ("a", "b")}
        self.ports = {name: free_port() for name in ("a", "b")}
        for name, data_dir in self.dirs.items():
            run_cli(data_dir, "init", "--name", name)
            (folder / f"{name}.pub").write_text(run_cli(data_dir, "keys", "public", "--pem").stdout)
            (folder / f"{name}-ca.pem").write_text(run_cli(data_dir, "tls", "ca-cert").stdout)
        for name, source in (("x", X),):
            self._flow("b", name, source)
        for name, source in (("seq", SEQUENTIAL), ("par", PARALLEL), ("burst", BURST)):
            self._flow("a", name, source)
        for me, other in (("a", "b"), ("b", "a")):
            url = f"https://127.0.0.1:{self.ports[other]}/api/latest/sync_config/{me}/sync"
            if one_way and me == "b":
                url = ""  # b only answers: a controls it and keeps a long poll standing
            run_cli(self.dirs[me], "link", "add", other, "--remote-url", url,
                    "--remote-public-key", str(folder / f"{other}.pub"),
                    "--ca-cert", str(folder / f"{other}-ca.pem"))
        self.serve = {name: ServeProcess(self.dirs[name], folder / f"{name}-serve.log",
                                         port=self.ports[name]) for name in ("a", "b")}

    def _flow(self, workspace: str, name: str, source: str) -> None:
        path = self.folder / f"{workspace}-{name}.py"
        path.write_text(source)
        run_cli(self.dirs[workspace], "flow", "add", name, str(path))

    def start(self) -> None:
        for serve in self.serve.values():
            serve.start()

    def stop(self) -> None:
        for name, serve in self.serve.items():
            if serve.running:
                code = serve.stop(timeout=60)
                if code != 0:
                    print(f"warning: serve {name} exited {code}", file=sys.stderr)


def bench_round_trip(pair: Pair, calls: int) -> None:
    run_flow(pair.dirs["a"], "seq", {"n": 20})  # warm-up: connections, workers, caches
    started = time.monotonic()
    times = run_flow(pair.dirs["a"], "seq", {"n": calls})["outputs"]["times"]
    wall = time.monotonic() - started
    ms = [t * 1000 for t in times]
    print(f"round trip, {len(ms)} sequential remote calls of a trivial flow "
          f"({wall:.1f} s in all):")
    print(f"  p50 {pct(ms, 50):.1f} ms   p95 {pct(ms, 95):.1f} ms   mean "
          f"{statistics.fmean(ms):.1f} ms   min {min(ms):.1f} ms   max {max(ms):.1f} ms")


def bench_throughput(pair: Pair, inflight: int, rounds: int) -> None:
    result = run_flow(pair.dirs["a"], "par", {"k": inflight, "rounds": rounds})
    per_round = result["outputs"]["rounds"]
    rates = [inflight / t for t in per_round]
    print(f"throughput, {inflight} remote calls in flight (wait=False, then wait_for), "
          f"{rounds} rounds:")
    print(f"  median {statistics.median(rates):.0f} calls/s   best {max(rates):.0f} calls/s   "
          f"worst {min(rates):.0f} calls/s")


def bench_backlog(pair: Pair, backlog: int) -> None:
    a_dir = pair.dirs["a"]
    code = pair.serve["b"].stop(timeout=60)
    print(f"backlog of {backlog} remote calls queued while b is stopped (b exited {code}):")
    started = time.monotonic()
    result = run_flow(a_dir, "burst", {"n": backlog})
    print(f"  queued in {time.monotonic() - started:.1f} s")
    parent = result["id"]
    queued = query(a_dir, "SELECT count(*) FROM outbox WHERE link = 'b'")
    print(f"  a's outbox for b holds {queued} messages")
    started = time.monotonic()
    pair.serve["b"].start(timeout=60)
    listening = time.monotonic()
    wait_until(lambda: query(a_dir, "SELECT count(*) FROM outbox WHERE link = 'b'") == 0,
               600, "a's outbox for b to drain", interval=0.02)
    delivered = time.monotonic()
    print(f"  b started in {listening - started:.2f} s; delivered and acked "
          f"{delivered - listening:.2f} s after b was listening")
    sql = ("SELECT count(*) FROM executions WHERE parent_id = ? AND workspace = 'b' "
           "AND status LIKE 'ENDED_%'")
    try:
        wait_until(lambda: query(a_dir, sql, parent) >= backlog, 900,
                   "the backlog's calls to end", interval=0.2)
        print(f"  all {backlog} calls ended in a {time.monotonic() - listening:.1f} s after "
              "b was listening")
    except AssertionError:
        print(f"  only {query(a_dir, sql, parent)} of {backlog} calls ended within 900 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--inflight", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--skip", action="append", default=[],
                        choices=["roundtrip", "throughput", "backlog"])
    parser.add_argument("--one-way", action="store_true",
                        help="b's link to a has no Remote URL (a initiates every exchange)")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="flowlink-bench-"))
    pair = Pair(folder, one_way=args.one_way)
    try:
        pair.start()
        print(f"a on {pair.serve['a'].url}, b on {pair.serve['b'].url} (data in {folder})")
        if "roundtrip" not in args.skip:
            bench_round_trip(pair, args.calls)
        if "throughput" not in args.skip:
            bench_throughput(pair, args.inflight, args.rounds)
        if "backlog" not in args.skip and not args.one_way:
            bench_backlog(pair, args.backlog)
    finally:
        pair.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
