"""``phalanx bench sim``: PBFT instances committed per CPU-second in the simulator.

One run simulates ``n`` PBFT replicas (default 4) without faults on one CPU, with a new
value proposed every tick, and divides the distinct sequence numbers committed by the CPU
time of the whole run (all replicas, the network, the checkers: the simulator's cost per
agreed instance). It runs once with the cheap keyed-hash signer and once with Ed25519, and
reports medians of ``--runs`` runs (default 5). Goal: >= 500 instances/s with the cheap
signer.

Called by: ``phalanx bench sim`` (through testnet/bench_registry.py) or
``python -m testnet.bench_sim``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Any

from testnet.sim.runner import SimConfig
from testnet.sim.runner import run as run_sim

__all__ = ["add_arguments", "render", "run"]

TICKS = 300
QUICK_TICKS = 40
NODES = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sim-ticks", type=int, default=None,
                        help=f"simulated ticks per run (default {TICKS}, --quick {QUICK_TICKS})")
    parser.add_argument("--sim-nodes", type=int, default=None,
                        help=f"replicas (default {NODES})")


def _one(nodes: int, ticks: int, keys: str, seed: int) -> dict[str, float]:
    cfg = SimConfig(engine="pbft", nodes=nodes, seed=seed, ticks=ticks, liveness_deliveries=0,
                    faults="none", keys=keys, propose_every=1)
    start = time.process_time()
    result = run_sim(cfg)
    seconds = time.process_time() - start
    if result.status != "pass":
        raise RuntimeError(f"benchmark run failed: {result.status} ({result.replay})")
    committed = result.counts["committed_seqs"]
    return {"seconds": seconds, "instances": committed,
            "instances_per_s": committed / seconds,
            "messages_per_s": result.counts["received"] / seconds}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-able report."""
    runs = max(1, int(args.runs))
    quick = bool(getattr(args, "quick", False))
    ticks = getattr(args, "sim_ticks", None) or (QUICK_TICKS if quick else TICKS)
    nodes = getattr(args, "sim_nodes", None) or NODES
    report: dict[str, Any] = {"target": "sim", "runs": runs, "quick": quick, "ticks": ticks,
                              "nodes": nodes}
    command = f"phalanx bench sim --runs {runs}" + (" --quick" if quick else "")
    if getattr(args, "sim_ticks", None):
        command += f" --sim-ticks {ticks}"
    if getattr(args, "sim_nodes", None):
        command += f" --sim-nodes {nodes}"
    report["command"] = command
    run_sim(SimConfig(engine="pbft", nodes=nodes, ticks=2, liveness_ticks=0, faults="none"))
    for keys in ("hash", "ed25519"):
        rows = [_one(nodes, ticks, keys, seed) for seed in range(runs)]
        report[keys] = {
            "instances_per_s": statistics.median(r["instances_per_s"] for r in rows),
            "messages_per_s": statistics.median(r["messages_per_s"] for r in rows),
            "instances": statistics.median(r["instances"] for r in rows),
            "per_run": rows,
        }
    report["environment"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                             "machine": platform.machine()}
    return report


def render(report: dict[str, Any]) -> str:
    """The human table for :func:`run`'s report."""
    lines = [f"phalanx bench sim: PBFT n={report['nodes']}, no faults, one value per tick, "
             f"{report['ticks']} ticks; median of {report['runs']} run(s)", ""]
    for keys, label in (("hash", "keyed-hash signer"), ("ed25519", "Ed25519")):
        r = report[keys]
        lines.append(f"  {label:<18} {r['instances_per_s']:>10,.0f} instances/CPU-s "
                     f"{r['messages_per_s']:>10,.0f} messages/CPU-s "
                     f"({r['instances']:.0f} instances per run)")
    lines += ["", f"command: {report['command']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="simulator benchmark")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    add_arguments(parser)
    print(render(run(parser.parse_args())))
