"""Soak: many remote calls between two `flowlink serve` workspaces, with SIGKILLs and
partitions on the way, then the books and a secrets audit.

FLOWLINK_SOAK=1 (`make soak`): 10 000 calls, 10 kills, 5 partitions. Otherwise (`make test`)
the same code paths at 300 calls, 2 kills, 1 partition. a's Remote URL points at the fault
proxy (tests/adversarial/tcp_proxy.py), b has none, so every exchange can be partitioned.

It prints: calls made, calls ended, lost, run twice, outboxes drained, and the peak memory
(VmHWM) of each side's serve process over all its restarts; any broken invariant fails it.
Set FLOWLINK_CHAOS_SEED to replay a run's schedule.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_faults import LoggedPeer, ProxiedPair, ledger, make_proxied_pair, query, settle
from test_secrets_audit import audit

SOAK = os.environ.get("FLOWLINK_SOAK") == "1"
pytestmark = [pytest.mark.xdist_group("soak"),
              pytest.mark.timeout(4 * 3600 if SOAK else 300)]
CALLS = 10_000 if SOAK else 300
KILLS = 10 if SOAK else 2
PARTITIONS = 5 if SOAK else 1
BATCH = 200 if SOAK else 100  # calls per burst flow in a
SETTLE_SECONDS = 900 if SOAK else 120


@dataclass
class SoakReport:
    seed: int
    calls_made: int = 0
    calls_ended: int = 0
    lost: int = 0
    run_twice: int = 0
    outboxes_drained: bool = False
    peak_kb: dict[str, int] = field(default_factory=lambda: {"a": 0, "b": 0})
    events: list[str] = field(default_factory=list)
    bursts: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        return [
            f"soak: {CALLS} calls asked, {KILLS} kills, {PARTITIONS} partitions "
            f"(seed {self.seed}, {self.seconds:.0f} s, {self.bursts} bursts)",
            f"  calls made:        {self.calls_made}",
            f"  calls ended:       {self.calls_ended}",
            f"  lost:              {self.lost}",
            f"  run twice:         {self.run_twice}",
            f"  outboxes drained:  {'yes' if self.outboxes_drained else 'NO'}",
            f"  max memory a:      {self.peak_kb['a'] / 1024:.1f} MB (VmHWM of serve, all restarts)",
            f"  max memory b:      {self.peak_kb['b'] / 1024:.1f} MB",
            f"  events:            {', '.join(self.events)}",
        ]


def vm_hwm(peer: LoggedPeer) -> int:
    if peer.proc is None or peer.proc.poll() is not None:
        return 0
    try:
        text = Path(f"/proc/{peer.proc.pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def schedule(rng: random.Random) -> list[tuple[float, str]]:
    """(fraction of the calls made, event) for every kill and partition, shuffled in."""
    events = [f"kill-{rng.choice('ab')}" for _ in range(KILLS)]
    events += ["partition"] * PARTITIONS
    rng.shuffle(events)
    # Spread over the run, each at a random point of its own slot.
    return [((i + rng.uniform(0.2, 0.8)) / len(events), event) for i, event in enumerate(events)]


def run_soak(pair: ProxiedPair, seed: int) -> SoakReport:
    rng = random.Random(seed)
    report = SoakReport(seed=seed)
    a, b, proxy = pair.a, pair.b, pair.proxy
    plan = schedule(rng)
    started = time.monotonic()
    open_partition: float | None = None
    launched_at, expect = 0.0, 0  # the last burst: when, and how many calls made by then

    def sample() -> None:
        for peer in (a, b):
            report.peak_kb[peer.name] = max(report.peak_kb[peer.name], vm_hwm(peer))

    def counts() -> tuple[int, int]:
        made, ended = query(a, "SELECT count(*), coalesce(sum(status IN ('ENDED_SUCCESS', "
                               "'ENDED_ERROR', 'ENDED_CANCELLED')), 0) FROM executions "
                               "WHERE workspace = 'b' AND request_id IS NOT NULL")[0]
        return made, ended

    deadline = started + (3600 * 4 if SOAK else 300)
    while True:
        assert time.monotonic() < deadline, f"the soak did not finish: {report.lines()}"
        sample()
        made, ended = counts()
        # About a burst in flight; the next once the last has made its calls (or died with
        # a: then after 5 s).
        if (made < CALLS and made - ended < BATCH
                and (made >= expect or time.monotonic() - launched_at > 5)):
            n = min(BATCH, CALLS - made)
            a.cli("run", "burst", "--no-wait", "--inputs-json",
                  json.dumps({"n": n, "tag": f"soak-{report.bursts}"}))
            report.bursts += 1
            launched_at, expect = time.monotonic(), made + n
        if open_partition is not None and time.monotonic() >= open_partition:
            proxy.heal()
            open_partition = None
        if plan and made >= plan[0][0] * CALLS and open_partition is None:
            _fraction, event = plan.pop(0)
            if event == "partition":
                seconds = rng.uniform(1.0, 4.0)
                proxy.refuse()
                open_partition = time.monotonic() + seconds
                report.events.append(f"partition {seconds:.1f}s at {made}")
            else:
                victim = a if event == "kill-a" else b
                sample()
                victim.kill()
                victim.serve()
                report.events.append(f"kill {victim.name} at {made}")
        if made >= CALLS and not plan and open_partition is None:
            break
        time.sleep(0.1)
    # Everything asked for is made, or its burst died with a: now let it all end.
    books = settle(a, b, timeout=SETTLE_SECONDS)
    sample()
    report.calls_made, report.calls_ended = books.made, books.ended
    report.lost, report.run_twice = books.lost, books.twice
    report.outboxes_drained = books.outbox_a == 0 and books.outbox_b == 0
    report.seconds = time.monotonic() - started
    return report


def test_soak_every_call_ends_exactly_once_and_no_secret_leaks(tmp_path_factory):
    """One test, not a fixture shared by two: the audit must read what this soak left."""
    folder = tmp_path_factory.mktemp("soak")
    began = time.time()
    seed = int(os.environ.get("FLOWLINK_CHAOS_SEED") or time.time_ns() % 1_000_000)
    pair = make_proxied_pair(folder)
    try:
        report = run_soak(pair, seed)
        text = "\n".join(report.lines())
        print("\n" + text)
        (folder / "logs" / "soak-report.txt").write_text(text + "\n")
        assert report.calls_made >= CALLS, text
        assert report.calls_ended == report.calls_made, text
        assert report.lost == 0 and report.run_twice == 0, text
        assert report.outboxes_drained, text
        assert len(report.events) == KILLS + PARTITIONS, report.events
        # b ran each call once; every one of b's runs ended too (the ledger's b_open).
        ledger(pair.a, pair.b).check()
        # A generous bound: neither side may grow without limit over the run.
        for side, peak in report.peak_kb.items():
            assert 0 < peak < 1024 * 1024, f"{side}'s serve reached {peak} kB"
    finally:
        pair.close()
    # The secrets audit, over everything the soak left: data dirs, logs, captured output.
    result = audit(folder, since=began, outputs=[text])
    print(f"{result}")
    assert result.keys >= 6, result  # a and b: workspace key, CA key, server TLS key each
    assert not result.findings, result
