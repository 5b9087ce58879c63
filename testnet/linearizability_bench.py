"""Cost of the linearizability checker on generated bank histories (prints figures, no asserts).

``python -m testnet.linearizability_bench`` builds, per size, 20 seeded histories from a real
sequential bank execution (each operation stretched into a random concurrency window, at
most one open operation per process), checks them with :func:`check_bank`, then corrupts one
read per history (balance + 1) and checks again. It prints the verdicts, the median number
of search configurations visited and the median CPU time.

Called by: developers (the figures in docs/algorithms.md).
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from testnet.linearizability import check_bank

__all__ = ["generate_bank_history", "main"]

_ACCOUNTS = ("a", "b", "c", "d")


def generate_bank_history(rng: random.Random, ops: int, processes: int, window: float
                          ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """A linearizable bank history of ``ops`` operations and its initial balances."""
    balances = dict.fromkeys(_ACCOUNTS, 50)
    initial = dict(balances)
    busy_until = [-1e9] * processes
    events: list[tuple[float, int, dict[str, Any]]] = []
    point = 0.0
    for _ in range(ops):
        point += rng.uniform(1, 10)                  # the operation's linearization point
        proc = min(range(processes), key=lambda q: busy_until[q])
        call = max(point - rng.uniform(0, window), busy_until[proc] + 0.1)
        point = max(point, call)
        ret = point + rng.uniform(0, window)
        busy_until[proc] = ret
        if rng.random() < 0.5:
            src, dst = rng.sample(_ACCOUNTS, 2)
            amount = rng.randint(0, 10)
            amount = amount if balances[src] >= amount else 0
            balances[src] -= amount
            balances[dst] += amount
            inv: dict[str, Any] = {"op": "transfer", "value": (src, dst, amount)}
            res: dict[str, Any] = {"op": "transfer", "value": None}
        else:
            acct = rng.choice(_ACCOUNTS)
            inv = {"op": "read", "value": acct}
            res = {"op": "read", "value": (acct, balances[acct])}
        events.append((call, 0, {"process": proc, "type": "invoke", "time": call, **inv}))
        events.append((ret, 1, {"process": proc, "type": "ok", "time": ret, **res}))
    events.sort(key=lambda e: (e[0], e[1]))
    return [e for _, _, e in events], initial


def main() -> None:
    """Print the figures for a few history sizes."""
    for ops, procs, window in ((50, 5, 20.0), (200, 5, 20.0), (200, 10, 60.0),
                               (1000, 10, 20.0)):
        for corrupt in (False, True):
            verdicts: dict[str, int] = {}
            explored, cpu = [], []
            for seed in range(20):
                history, initial = generate_bank_history(random.Random(seed), ops, procs,
                                                         window)
                if corrupt:
                    reads = [e for e in history if e["type"] == "ok" and e["op"] == "read"]
                    bad = reads[len(reads) // 2]
                    bad["value"] = (bad["value"][0], bad["value"][1] + 1)
                t0 = time.process_time()
                r = check_bank(history, initial, ops_max=2000)
                cpu.append(time.process_time() - t0)
                explored.append(sum(k.explored for k in r.keys.values()))
                verdicts[r.status] = verdicts.get(r.status, 0) + 1
            print(f"ops={ops} processes={procs} window={window:g} "
                  f"{'one read +1' if corrupt else 'as executed'}: {verdicts}; median "
                  f"explored {statistics.median(explored):.0f}, median "
                  f"{1000 * statistics.median(cpu):.1f} ms CPU")


if __name__ == "__main__":
    main()
