"""Sign / verify / parse timings of link bodies (PROTOCOL.md sections 3-4).

Run: .venv/bin/python bench/sign_verify.py [--runs N] [--bits B]
Prints p50 (and p95) per operation for a ~1 KB and a ~1 MB envelope body.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from flowlink.link.checks import PeerView, check_request
from flowlink.link.envelope import Envelope, new_envelope
from flowlink.link.signing import Signer, Verifier
from flowlink.workspace.identity import generate_private_key


def body_of_size(target: int) -> bytes:
    """A realistic request: execution.update messages whose outputs fill ~target bytes."""
    per_message = min(target, 64 * 1024)
    messages = []
    seq = 1
    size = 0
    while size < target:
        messages.append(
            {
                "seq": seq,
                "type": "execution.update",
                "request_id": str(uuid.uuid4()),
                "execution": {
                    "id": seq,
                    "flow": "report",
                    "name": "report",
                    "status": "ENDED_SUCCESS",
                    "message": None,
                    "outputs": {"output_value": "x" * max(0, per_message - 420)},
                    "parent_id": None,
                    "created_at": "2026-12-04T19:18:07.123Z",
                    "started_at": "2026-12-04T19:18:07.124Z",
                    "ended_at": "2026-12-04T19:18:07.200Z",
                    "version": 3,
                },
                "listed": False,
            }
        )
        seq += 1
        size = len(new_envelope("a", "b", messages=messages, ack=0, controls=True).to_bytes())
    return new_envelope("a", "b", messages=messages, ack=0, controls=True).to_bytes()


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    fn()  # warm up
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def bench_body(label: str, body: bytes, signer: Signer, verifier: Verifier, runs: int) -> None:
    signature = signer.sign(body)
    peer = PeerView("a", True, verifier)
    now = datetime.now(UTC)

    def check() -> object:
        return check_request(
            path_name="a",
            body=body,
            signature=signature,
            own_name="b",
            lookup=lambda name: peer,
            now=now,
            seen=lambda p, i: False,
        )

    rows: dict[str, Callable[[], object]] = {
        "sign": lambda: signer.sign(body),
        "verify": lambda: verifier.verify(signature, body),
        "parse (strict JSON + shape)": lambda: Envelope.from_bytes(body, is_request=True),
        "check_request (checks 1-8)": check,
    }
    print(f"{label} body ({len(body)} bytes):")
    for name, fn in rows.items():
        p50, p95 = timed(fn, runs)
        print(f"  {name:<28} {p50 * 1e3:8.3f} / {p95 * 1e3:8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--bits", type=int, default=3072)
    args = parser.parse_args()
    key = generate_private_key(args.bits)
    signer, verifier = Signer(key), Verifier(key.public_key())
    print(f"RSA-{args.bits} PS256, {args.runs} runs each; p50 / p95 in ms")
    for label, target in (("1 KB", 1024), ("1 MB", 1024 * 1024)):
        bench_body(label, body_of_size(target), signer, verifier, args.runs)


if __name__ == "__main__":
    main()
