"""``phalanx testnet chaos``: a seeded nemesis, a transfer workload, a heal, then the checkers.

Theory of operation
-------------------
Jepsen-style, in three phases on a fresh proxied testnet:

1. **Faults with a workload.** Every ``interval_s`` the nemesis picks, from a
   ``random.Random(seed)``, a fault and its targets: ``kill`` (SIGKILL, restarted at the
   heal), ``pause`` (SIGSTOP/SIGCONT), ``restart`` (SIGTERM and start), ``isolate``
   (a partition of the targets from the rest, through the proxy) or ``delay`` (their links
   slowed by the proxy). It holds the fault for ``hold_s``, heals it, and waits. At most
   ``faults_max`` nodes are faulty at once, Byzantine nodes included (default: ``f``, the
   most the engine tolerates; more is a negative control that the checkers must flag).
   Meanwhile :class:`~testnet._workload.Workload` sends transfers and balance reads and
   records acknowledgements and the client history (invoke/ok/fail/info).
2. **Heal.** Every fault is removed; the workload stops.
3. **Check.** Liveness (the chain grows within ``liveness_bound_s`` of the heal, and every
   honest node reaches a common height), then agreement, no lost acknowledged transaction,
   no double spend and conservation over the honest nodes' APIs
   (:func:`testnet._collect.check_testnet`), and per-account linearizability of the client
   history (:func:`testnet.check.check_linearizable`; its counts go into the report).

The same seed gives the same fault schedule (targets, kinds, timing); process scheduling
still varies, so the figures vary a little. Called by ``cli/cmd_testnet.py`` and the e2e tests.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testnet._collect import check_testnet
from testnet._workload import ACCOUNT_BALANCE, Workload, workload_keys
from testnet.check import Violation, check_linearizable, check_liveness
from testnet.local import Testnet, TestnetError
from testnet.proxy import Rules

__all__ = ["FAULT_KINDS", "ChaosConfig", "Fault", "catch_up_times", "plan_faults", "render", "run_chaos"]

FAULT_KINDS = ("kill", "pause", "restart", "isolate", "delay")
#: Consensus settings that keep a chaos run short (fast view changes and blocks).
CHAOS_CONSENSUS = {"tick_ms": 50, "block_time_ms": 100, "view_timeout_ticks": 30,
                   "checkpoint_interval": 10}  # fmt: skip


@dataclass(frozen=True)
class ChaosConfig:
    """A chaos run's parameters (see the module docstring)."""

    directory: Path | None = None
    duration_s: float = 60.0
    seed: int = 1
    nodes: int = 4
    engine: str = "pbft"
    byzantine: Mapping[int, str] = field(default_factory=dict)
    faults_max: int | None = None
    interval_s: float = 9.0
    hold_s: float = 5.0
    liveness_bound_s: float = 20.0
    #: A healed node must be back at the top within this (restart included: start-up of a
    #: Python node on a loaded 2-core machine alone can take 10 s).
    catch_up_bound_s: float = 30.0
    accounts: int = 16
    keep: bool = False


@dataclass(frozen=True)
class Fault:
    """One planned fault: when (seconds from the start), what, and on which nodes."""

    at_s: float
    kind: str
    targets: tuple[int, ...]


def plan_faults(seed: int, duration_s: float, n: int, byzantine: set[int], faults_max: int,
                interval_s: float) -> list[Fault]:  # fmt: skip
    """The seeded fault schedule: one fault per interval, on at most ``faults_max - |byz|`` nodes.

    Targets are honest nodes only (the Byzantine ones already count toward the budget).
    """
    rng = random.Random(seed)
    budget = faults_max - len(byzantine)
    honest = [i for i in range(n) if i not in byzantine]
    plan: list[Fault] = []
    t = 1.0
    while budget > 0 and t + 1.0 < duration_s:
        kind = rng.choice(FAULT_KINDS)
        count = rng.randint(1, min(budget, len(honest)))
        targets = tuple(sorted(rng.sample(honest, count)))
        plan.append(Fault(round(t, 3), kind, targets))
        t += interval_s
    return plan


def _inject(net: Testnet, fault: Fault) -> None:
    n = net.layout.n
    for i in fault.targets:
        if fault.kind == "kill":
            net.kill(i)
        elif fault.kind == "pause":
            net.pause(i)
        elif fault.kind == "restart":
            net.restart(i, wait=False)
    if fault.kind == "isolate":
        rest = [i for i in range(n) if i not in fault.targets]
        net.proxy.set(Rules().partition([list(fault.targets), rest], n))
    elif fault.kind == "delay":
        rules = Rules()
        for i in fault.targets:
            rules = rules.with_delay(i, 400)
        net.proxy.set(rules)


def _heal(net: Testnet, fault: Fault) -> None:
    if fault.kind in ("isolate", "delay"):
        net.proxy.set(Rules())
    for i in fault.targets:
        if fault.kind == "kill":
            net.restart(i, wait=False)
        elif fault.kind == "pause":
            net.resume(i)


def _honest_heights(net: Testnet) -> tuple[int, int] | None:
    """(lowest, highest) height over honest nodes; a node that does not answer counts as -1."""
    heights = [-1 if h is None else h for h in net.heights(net.honest(), timeout=0.5).values()]
    return (min(heights), max(heights)) if max(heights, default=-1) >= 0 else None


def _honest_height(net: Testnet) -> int | None:
    found = _honest_heights(net)
    return None if found is None else found[1]


def catch_up_times(samples: list[tuple[float, int, int]], heals: list[float]) -> list[float | None]:
    """Per heal: seconds until every honest node reached the top height seen at the heal.

    Args:
        samples: ``(time, lowest honest height, highest honest height)`` in time order.
        heals: times at which a fault was healed.
    """
    out: list[float | None] = []
    for th in heals:
        before = [top for t, _, top in samples if t <= th]
        if not before:
            out.append(None)
            continue
        target = before[-1]
        out.append(next((round(t - th, 2) for t, low, _ in samples if t >= th and low >= target), None))
    return out


def run_chaos(config: ChaosConfig, progress: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Run one chaos experiment and return its report (``verdict`` is ``PASS`` or ``FAIL``)."""
    say = progress or (lambda _msg: None)
    directory = config.directory or Path(tempfile.mkdtemp(prefix="phalanx-chaos-"))
    keys = workload_keys(config.seed, config.accounts)
    net = Testnet.create(directory, nodes=config.nodes, engine=config.engine,
                         byzantine=dict(config.byzantine), proxy=True,
                         extra_balances={k.address: ACCOUNT_BALANCE for k in keys},
                         consensus=CHAOS_CONSENSUS)  # fmt: skip
    f = net.layout.f
    faults_max = f if config.faults_max is None else config.faults_max
    plan = plan_faults(config.seed, config.duration_s, config.nodes, set(config.byzantine),
                       faults_max, config.interval_s)  # fmt: skip
    report: dict[str, Any] = {
        "seed": config.seed, "nodes": config.nodes, "engine": config.engine, "f": f,
        "faults_max": faults_max, "byzantine": {str(k): v for k, v in config.byzantine.items()},
        "duration_s": config.duration_s, "dir": str(directory),
        "command": f"phalanx testnet chaos --duration {config.duration_s:g} --seed {config.seed} "
                   f"--nodes {config.nodes} --engine {config.engine}",
    }  # fmt: skip
    violations: list[Violation] = []
    try:
        say(f"starting {config.nodes} {config.engine} nodes in {directory} (f = {f})")
        net.start(timeout=60)
        honest_urls = [n.rpc_url for n in net.layout.nodes if not n.byzantine]
        workload = Workload(net.layout.rpc_urls, keys, net.layout.chain_id, seed=config.seed,
                            reads=True, read_urls=honest_urls)  # fmt: skip
        workload.start()
        t0 = time.monotonic()
        samples: list[tuple[float, int, int]] = []
        heals: list[float] = []
        injected: list[dict[str, Any]] = []
        last_heal = 0.0
        for fault in plan:
            _sleep_sampling(net, t0 + fault.at_s, t0, samples)
            say(f"t={time.monotonic() - t0:5.1f}s  {fault.kind} {list(fault.targets)}")
            _inject(net, fault)
            injected.append({"at_s": round(time.monotonic() - t0, 1), "kind": fault.kind,
                             "targets": list(fault.targets)})  # fmt: skip
            _sleep_sampling(net, time.monotonic() + config.hold_s, t0, samples)
            _heal(net, fault)
            last_heal = time.monotonic() - t0
            heals.append(last_heal)
            say(f"t={time.monotonic() - t0:5.1f}s  healed")
        _sleep_sampling(net, t0 + config.duration_s, t0, samples)
        healed_at = last_heal
        _sleep_sampling(net, time.monotonic() + 3.0, t0, samples)
        # Keep watching until the last healed node is back at the top (or the bound passes).
        while heals and catch_up_times(samples, heals[-1:]) == [None]:
            if time.monotonic() - t0 > heals[-1] + config.catch_up_bound_s:
                break
            _sleep_sampling(net, time.monotonic() + 0.5, t0, samples)
        stats = workload.stop()
        say(f"workload stopped: {len(stats.acks)} acknowledged, {stats.errors} errors/retries")
        found, recovery = check_liveness([(t, top) for t, _, top in samples], healed_at,
                                         config.liveness_bound_s)  # fmt: skip
        violations.extend(found)
        catch_up = catch_up_times(samples, heals)
        for done, took in zip(injected, catch_up, strict=False):
            done["catch_up_s"] = took
            if took is None or took > config.catch_up_bound_s:
                violations.append(Violation("liveness", f"after healing {done['kind']} "
                                            f"{done['targets']} the honest nodes took {took} s to "
                                            f"catch up (bound {config.catch_up_bound_s:.0f} s)"))  # fmt: skip
        top = _honest_height(net) or 0
        try:
            net.wait_height(top, timeout=config.liveness_bound_s)
        except TestnetError as e:
            violations.append(Violation("liveness", f"honest nodes did not catch up: {e}"))
        urls = {n.index: n.rpc_url for n in net.layout.nodes if not n.byzantine}
        verdict = check_testnet(urls, net.dir / "genesis.json", stats.acks)
        violations.extend(verdict.violations)
        lost = sum(1 for v in verdict.violations if v.check == "lost-ack")
        lin = _linearizability(stats, keys)
        violations.extend(lin.pop("violations"))
        lat = sorted(stats.latencies_s)
        report.update({
            "faults": injected,
            "faults_injected": len(injected),
            "txs_submitted": stats.submitted,
            "txs_acknowledged": len(stats.acks),
            "txs_indeterminate": stats.indeterminate,
            "txs_lost": lost,
            "commit_latency_p50_s": round(statistics.median(lat), 3) if lat else None,
            "recovery_s": None if recovery is None else round(recovery, 2),
            "catch_up_s_max": max((c for c in catch_up if c is not None), default=None),
            "figures": verdict.figures,
            "linearizability": lin,
        })  # fmt: skip
    finally:
        net.stop()
        report["violations"] = [{"check": v.check, "detail": v.detail} for v in violations]
        report["verdict"] = "PASS" if not violations else "FAIL"
        if not config.keep and not violations and config.directory is None:
            shutil.rmtree(directory, ignore_errors=True)
    return report


def _linearizability(stats: Any, keys: list[Any]) -> dict[str, Any]:
    """The clients' transfer/read history checked per account (with counts and reads made)."""
    from chain.keys import format_address

    if stats.history_truncated:
        return {"violations": [], "skipped": "history past history_max", "reads": stats.reads}
    initial = {format_address(k.address).lower(): ACCOUNT_BALANCE for k in keys}
    found, counts = check_linearizable(stats.history, initial)
    return {"violations": found, **counts, "reads": stats.reads, "events": len(stats.history)}


def _sleep_sampling(net: Testnet, until: float, t0: float,
                    samples: list[tuple[float, int, int]]) -> None:  # fmt: skip
    """Sleep until the monotonic time ``until``, sampling the honest height every 0.5 s."""
    while True:
        now = time.monotonic()
        h = _honest_heights(net)
        if h is not None:
            samples.append((now - t0, *h))
        if now >= until:
            return
        time.sleep(min(0.5, until - now))


def render(report: Mapping[str, Any]) -> str:
    """The human summary of a chaos report."""
    lines = [
        f"chaos {report['verdict']}: seed {report['seed']}, {report['nodes']} {report['engine']} "
        f"nodes, f = {report['f']}, faults at once <= {report['faults_max']}",
        f"  faults injected:   {report.get('faults_injected', 0)} "
        + " ".join(f"{x['kind']}{x['targets']}" for x in report.get("faults", [])),
        f"  txs acknowledged:  {report.get('txs_acknowledged', 0)} "
        f"(submitted {report.get('txs_submitted', 0)}, indeterminate "
        f"{report.get('txs_indeterminate', 0)}, lost {report.get('txs_lost', 0)})",
        f"  chain grew {report.get('recovery_s')} s after the last heal; slowest catch-up of a "
        f"healed node {report.get('catch_up_s_max')} s; "
        f"commit latency p50 {report.get('commit_latency_p50_s')} s",
        f"  checked: {report.get('figures', {})}",
        f"  linearizability per account: {report.get('linearizability', {})}",
        f"  replay: {report['command']}",
    ]
    lines += [f"  VIOLATION {v['check']}: {v['detail']}" for v in report["violations"]]
    return "\n".join(lines)

