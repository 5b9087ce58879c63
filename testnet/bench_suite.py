"""Several network benchmark runs as one: medians, and the PBFT/Paxos comparison.

``phalanx bench --runs N`` repeats one network benchmark (:func:`testnet.bench.run_bench`)
N times and reports the median of every figure with the per-run values of the main ones.

``phalanx bench --compare --runs N`` answers the benchmark's question in one command: for
each engine (PBFT on ``--nodes`` validators, default 4, then Paxos on 3) it first finds the
sustained throughput (N runs at ``--max``, median committed tx/s), then offers
``load_fraction`` (80%) of that rate for N more runs and reports their latency medians. The
report ends with the goal for PBFT, side by side with what was measured: throughput at
least ``GOAL_RATIO`` x the raw Ed25519 verify rate, p50 under ``GOAL_P50_S`` and p99 under
``GOAL_P99_S`` at 80% load. Each run starts its own fresh testnet, so runs do not share a
chain, a mempool or a warm cache.

Called by :mod:`cli.cmd_bench`; the run function is a parameter so tests can feed reports.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable
from typing import Any

from testnet.bench import NetBenchConfig

__all__ = ["GOAL_P50_S", "GOAL_P99_S", "GOAL_RATIO", "compare", "median_report",
           "render_compare", "render_runs", "repeat"]

GOAL_RATIO = 0.06
GOAL_P50_S = 0.5
GOAL_P99_S = 2.0

#: Figures listed run by run next to their median.
PER_RUN_KEYS = ("committed_tps", "ratio_to_verify_rate", "ed25519_verify_per_s",
                "latency_p50_s", "latency_p99_s", "cpu_ms_per_committed_tx")

RunBench = Callable[[NetBenchConfig], dict[str, Any]]


def median_report(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from several: the median of each numeric figure (the first run's value for
    the others), plus ``runs`` and ``per_run`` (the main figures of each run, in order)."""
    if not reports:
        raise ValueError("no reports to take the median of")
    out: dict[str, Any] = {}
    for key, first in reports[0].items():
        values = [r.get(key) for r in reports]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) < len(values) or all(v == first for v in values):
            out[key] = first                  # labels, and figures every run shares (nodes)
        else:
            out[key] = round(statistics.median(numbers), 4)
    ranges = [r["ed25519_verify_range_per_s"] for r in reports if "ed25519_verify_range_per_s" in r]
    if ranges:
        out["ed25519_verify_range_per_s"] = [min(lo for lo, _ in ranges), max(hi for _, hi in ranges)]
    out["runs"] = len(reports)
    out["per_run"] = {k: [r.get(k) for r in reports] for k in PER_RUN_KEYS}
    return out


def repeat(config: NetBenchConfig, runs: int, run_bench: RunBench) -> dict[str, Any]:
    """``runs`` runs of one configuration, as a :func:`median_report`."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    return median_report([run_bench(config) for _ in range(runs)])


def compare(config: NetBenchConfig, runs: int, run_bench: RunBench, *,
            load_fraction: float = 0.8, paxos_nodes: int = 3) -> dict[str, Any]:  # fmt: skip
    """Sustained throughput, then latency at ``load_fraction`` of it, for PBFT and Paxos."""
    engines: dict[str, Any] = {}
    for engine, nodes in (("pbft", config.nodes), ("paxos", paxos_nodes)):
        base = dataclasses.replace(config, engine=engine, nodes=nodes)
        sustained = repeat(dataclasses.replace(base, rate=None), runs, run_bench)
        offered = round(load_fraction * sustained["committed_tps"], 1)
        loaded = repeat(dataclasses.replace(base, rate=offered), runs, run_bench)
        engines[engine] = {"nodes": nodes, "sustained": sustained, "loaded": loaded,
                           "offered_rate": offered}
    sustained, loaded = engines["pbft"]["sustained"], engines["pbft"]["loaded"]
    ratio, p50, p99 = (sustained["ratio_to_verify_rate"], loaded["latency_p50_s"],
                       loaded["latency_p99_s"])
    goal = {
        "ratio_to_verify_rate": _goal(f">= {GOAL_RATIO}", ratio, ratio >= GOAL_RATIO),
        "latency_p50_s": _goal(f"< {GOAL_P50_S}", p50, p50 is not None and p50 < GOAL_P50_S),
        "latency_p99_s": _goal(f"< {GOAL_P99_S}", p99, p99 is not None and p99 < GOAL_P99_S),
    }
    return {"runs": runs, "duration_s": config.duration_s, "load_fraction": load_fraction,
            "engines": engines, "pbft_goal": goal, "command": config.command}


def _goal(text: str, measured: Any, met: bool) -> dict[str, Any]:
    return {"goal": text, "measured": measured, "met": met}


def render_runs(report: dict[str, Any], render_one: Callable[[dict[str, Any]], str]) -> str:
    """The single-run table of the medians, then the per-run figures."""
    lines = [render_one(report), f"medians of {report['runs']} runs; per run:"]
    lines += [f"  {k:<26} {report['per_run'][k]}" for k in PER_RUN_KEYS]
    return "\n".join(lines)


def render_compare(report: dict[str, Any]) -> str:
    """The comparison table (medians of ``runs`` runs per cell) and the PBFT goal."""
    head = ("engine", "nodes", "sustained tx/s", "x verify", "CPU ms/tx", "offered (80%)",
            "p50 s", "p95 s", "p99 s")
    rows = [head]
    for engine, e in report["engines"].items():
        s, lo = e["sustained"], e["loaded"]
        rows.append((engine, str(e["nodes"]), str(s["committed_tps"]),
                     str(s["ratio_to_verify_rate"]), str(s["cpu_ms_per_committed_tx"]),
                     str(e["offered_rate"]), str(lo["latency_p50_s"]), str(lo["latency_p95_s"]),
                     str(lo["latency_p99_s"])))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append(f"medians of {report['runs']} runs of {report['duration_s']} s per cell; "
                 f"latency at {round(100 * report['load_fraction'])}% of the sustained rate")
    for key, g in report["pbft_goal"].items():
        lines.append(f"PBFT {key}: {g['measured']} (goal {g['goal']}): "
                     + ("met" if g["met"] else "NOT met"))
    lines.append(f"command: {report['command']}")
    return "\n".join(lines)
