"""Local flow benchmarks (issue: local workspace). Prints figures; asserts nothing.

    .venv/bin/python bench/local_flows.py [--runs 500] [--flows 2000] [--executions 100000]

- latency: submit -> ENDED_SUCCESS of a trivial flow, one at a time (p50, p95), and the
  worker's own start -> end (started_at -> ended_at in the store)
- throughput: trivial flows per second with the default parallelism (2 x cores)
- first page: `flowlink executions --limit 50` over a store of N executions, in process
  (the query the CLI and the GUI run) and as a whole CLI process
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("FLOWLINK_SECRET_STORE", "file")

from flowlink.engine.engine import Engine  # noqa: E402
from flowlink.workspace.workspace import Workspace  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--flows", type=int, default=2000)
    parser.add_argument("--executions", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.init(Path(tmp) / "ws", "bench")
        ws.add_flow("trivial", "def handler(system, this):\n    pass\n")
        engine = Engine(ws)
        engine.start()
        try:
            for _ in range(20):  # warm up the forkserver and the spare workers
                engine.wait_ended([engine.submit("trivial")], 30)
            latencies, worker = [], []
            for _ in range(args.runs):
                t = time.perf_counter()
                execution_id = engine.submit("trivial")
                engine.wait_ended([execution_id], 30)
                latencies.append((time.perf_counter() - t) * 1000)
                ex = ws.get_execution(execution_id)
                worker.append((ex.ended_at - ex.started_at) * 1000)
            print(f"trivial flow, submit -> ended ({args.runs} runs): "
                  f"p50 {pct(latencies, 50):.2f} ms, p95 {pct(latencies, 95):.2f} ms")
            print(f"trivial flow, worker start -> end:           "
                  f"p50 {pct(worker, 50):.2f} ms, p95 {pct(worker, 95):.2f} ms")
            t = time.perf_counter()
            ids = [engine.submit("trivial") for _ in range(args.flows)]
            engine.wait_ended(ids, 600)
            elapsed = time.perf_counter() - t
            print(f"throughput, parallelism {engine.parallelism}: {args.flows / elapsed:.0f} flows/s "
                  f"({args.flows} flows in {elapsed:.2f} s)")
        finally:
            engine.stop()
        conn = ws.store.conn
        t = time.perf_counter()
        with ws.store.transaction() as tx:
            tx.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                "INSERT INTO executions (flow, name, status, inputs, outputs, created_at, started_at, "
                "ended_at) SELECT 'trivial', 'trivial', 'ENDED_SUCCESS', '{}', '{}', ?, ?, ? FROM n",
                (args.executions, time.time(), time.time(), time.time()),
            )
        print(f"store of {conn.execute('SELECT count(*) FROM executions').fetchone()[0]} executions "
              f"built in {time.perf_counter() - t:.1f} s")
        ws.close()
        fresh = Workspace.open(Path(tmp) / "ws")
        times = []
        for _ in range(50):
            t = time.perf_counter()
            rows = fresh.list_executions(limit=50)
            times.append((time.perf_counter() - t) * 1000)
        assert len(rows) == 50
        print(f"first page (limit 50), in process: p50 {statistics.median(times):.2f} ms, "
              f"first call {times[0]:.2f} ms")
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "flowlink", "executions", "--limit", "50",
                        "--data-dir", str(Path(tmp) / "ws")], check=True, capture_output=True)
        print(f"first page, whole `flowlink executions --limit 50` process: "
              f"{(time.perf_counter() - t) * 1000:.0f} ms")
        fresh.close()


if __name__ == "__main__":
    main()
