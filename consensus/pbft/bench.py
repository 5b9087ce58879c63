"""Micro-benchmark: committed PBFT instances per CPU-second, n replicas in one process, no faults.

    python -m consensus.pbft.bench --n 4 --count 2000 --kind hash
    python -m consensus.pbft.bench --n 4 --count 500 --kind ed25519

:func:`run_instances` is a pure, deterministic driver (a FIFO in-memory network, every
replica executes each delivered value into a hash chain and reports ``Applied``); only
:func:`main` reads the process clock, to report the figure. Payloads are 100-byte values,
signatures are verified on every message, nothing is written to disk. It measures the
engine's CPU cost, not a node's throughput.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import time
from collections import deque
from typing import Any, Literal

from consensus.contract import ALL, Applied, NodeId, Propose, Receive
from consensus.pbft.config import PbftConfig
from consensus.pbft.replica import PbftReplica
from consensus.signing import make_keyring

__all__ = ["main", "run_instances"]


def run_instances(n: int, count: int, kind: Literal["hash", "ed25519"] = "hash", batch: int = 8) -> int:
    """Order ``count`` values on ``n`` replicas; return how many every replica delivered.

    Raises:
        RuntimeError: the replicas did not all deliver every value (a bug).
    """
    cfg = PbftConfig(n=n, checkpoint_interval=50, batch_values_max=batch)
    signers, verifier = make_keyring(n, kind)
    replicas = [
        PbftReplica(cfg, NodeId(i), signers[i], verifier, lambda v: True, random.Random(i)) for i in range(n)
    ]
    roots = [b"\x00" * 32] * n
    delivered = [0] * n
    network: deque[tuple[int, int, Any]] = deque()

    def absorb(i: int, out: Any) -> None:
        for to, msg in out.send:
            if to is ALL:
                network.extend((j, i, msg) for j in range(n) if j != i)
            else:
                network.append((int(to), i, msg))
        for d in out.deliver:
            delivered[i] += 1
            roots[i] = hashlib.sha256(roots[i] + d.value).digest()
            absorb(i, replicas[i].step(Applied(d.seq, roots[i])))

    proposed = 0
    while proposed < count:
        for _ in range(min(batch, count - proposed)):
            value = proposed.to_bytes(8, "big") * 13 + b"\x01" * 4  # 108 bytes
            absorb(0, replicas[0].step(Propose(value)))
            proposed += 1
        while network:
            dst, src, msg = network.popleft()
            absorb(dst, replicas[dst].step(Receive(NodeId(src), msg)))
    if min(delivered) != count:
        raise RuntimeError(f"delivered {delivered}, expected {count} everywhere")
    return count


def main(argv: list[str] | None = None) -> None:
    """Print committed instances per CPU-second (median of ``--runs``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--kind", choices=["hash", "ed25519"], default="hash")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    rates = []
    for _ in range(args.runs):
        start = time.process_time()  # the benchmark's clock, outside any core
        run_instances(args.n, args.count, args.kind)
        rates.append(args.count / (time.process_time() - start))
    print(
        f"pbft n={args.n} signer={args.kind} instances={args.count} runs={args.runs}: "
        f"median {statistics.median(rates):.0f} committed instances per CPU-second "
        f"(all {args.n} replicas in one process; min {min(rates):.0f}, max {max(rates):.0f})"
    )


if __name__ == "__main__":
    main()
