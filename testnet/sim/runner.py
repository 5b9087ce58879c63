"""One simulation run: build the world from a seed, safety phase, heal, liveness phase, report.

Theory of operation
-------------------
:func:`run` takes a :class:`SimConfig` and returns a :class:`SimResult`:

1. **Setup** -- keys for ``n`` nodes; Byzantine kinds placed on nodes (by the seed, except
   primary-targeted kinds, which take node 0 first); twins get a second endpoint with the
   same node id and key; a fault plan is drawn from the seed (:mod:`testnet.sim.faults`).
2. **Safety phase** -- ``ticks`` world ticks with every fault of the plan; safety is checked
   after every event.
3. **Heal** -- every cut removed, crashed endpoints restarted, links reliable.
4. **Liveness phase** -- up to ``liveness_ticks`` more ticks; every honest endpoint must add
   ``liveness_deliveries`` to its application height, else the status is ``liveness``.

Statuses: ``pass``, ``crash`` (an engine raised), ``liveness``, ``safety``; exit codes 0..3
in that order (``EXIT_CODES``). The result carries the replay command.

Called by: ``phalanx sim`` (cli/cmd_sim.py), tests/testnet/, testnet/bench_sim.py.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from consensus.byzantine import BEHAVIOURS, PRIMARY_KINDS, TWINS, ByzantineContext
from consensus.contract import Delivery, Engine, NodeId, max_faulty
from testnet.sim.checkers import SafetyChecker, Violation
from testnet.sim.engines import ENGINES, NodeSetup, make_keys
from testnet.sim.faults import FAULT_PRESETS, draw_plan
from testnet.sim.network import Network
from testnet.sim.trace import Trace
from testnet.sim.world import CrashInfo, Endpoint, World, derive_rng

__all__ = ["EXIT_CODES", "SimConfig", "SimResult", "run", "summarize", "valid_value"]

EXIT_CODES = {"pass": 0, "crash": 1, "liveness": 2, "safety": 3}
VALUE_BYTES_MAX = 1024
_DEFAULT_LIVENESS_TICKS = 400
_VERIFY_MEMO_MAX = 4096


def valid_value(value: bytes) -> bool:
    """The application's validity check handed to engines."""
    return value.startswith(b"tx-") and len(value) <= VALUE_BYTES_MAX


@dataclass(frozen=True)
class SimConfig:
    """One run. ``byzantine`` lists one behaviour kind per Byzantine node (``twins`` too)."""

    engine: str = "pbft"
    nodes: int = 4
    byzantine: tuple[str, ...] = ()
    seed: int = 0
    ticks: int = 200
    liveness_ticks: int = _DEFAULT_LIVENESS_TICKS
    liveness_deliveries: int = 2
    faults: str = "default"               # a FAULT_PRESETS name
    f: int | None = None                  # force the tolerance (negative controls)
    keys: str = "hash"
    propose_every: int = 3
    options: tuple[tuple[str, Any], ...] = ()
    keep_trace: bool = False
    check_codec: bool = True

    def replay_command(self) -> str:
        parts = ["phalanx", "sim", "--engine", self.engine, "--nodes", str(self.nodes)]
        if self.byzantine:
            parts += ["--byzantine", ",".join(self.byzantine)]
        parts += ["--seed", str(self.seed), "--ticks", str(self.ticks)]
        if self.liveness_ticks != _DEFAULT_LIVENESS_TICKS:
            parts += ["--liveness-ticks", str(self.liveness_ticks)]
        if self.faults != "default":
            parts += ["--faults", self.faults]
        if self.f is not None:
            parts += ["--f", str(self.f)]
        if self.keys != "hash":
            parts += ["--keys", self.keys]
        return shlex.join(parts)


@dataclass(slots=True)
class SimResult:
    config: SimConfig
    status: str
    digest: str
    heights: dict[int, int]              # endpoint -> application height
    endpoints: dict[int, tuple[int, str]]   # endpoint -> (node, "honest" | behaviour)
    faults: list[str]
    violation: Violation | None = None
    crash: CrashInfo | None = None
    liveness_detail: str = ""
    ticks_run: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    trace_lines: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def replay(self) -> str:
        return self.config.replay_command()


def _place_byzantine(cfg: SimConfig, f: int) -> dict[int, str]:
    kinds = list(cfg.byzantine)
    for kind in kinds:
        if kind not in BEHAVIOURS:
            raise ValueError(f"unknown Byzantine behaviour {kind!r}; known: "
                             f"{', '.join(sorted(BEHAVIOURS))}")
    if len(kinds) > cfg.nodes:
        raise ValueError("more Byzantine behaviours than nodes")
    rng = derive_rng(cfg.seed, "placement")
    free = list(range(cfg.nodes))
    placed: dict[int, str] = {}
    for kind in sorted(kinds, key=lambda k: k not in PRIMARY_KINDS):
        node = 0 if (kind in PRIMARY_KINDS and 0 in free) else free[rng.randrange(len(free))]
        free.remove(node)
        placed[node] = kind
    return placed


def _memo(verify: Callable[[Delivery], bool]) -> Callable[[Delivery], bool]:
    """Every replica delivers the same certificate: check each distinct one once (bounded)."""
    seen: dict[Delivery, bool] = {}

    def check(d: Delivery) -> bool:
        ok = seen.get(d)
        if ok is None:
            ok = verify(d)
            if len(seen) >= _VERIFY_MEMO_MAX:
                seen.clear()
            seen[d] = ok
        return ok
    return check


def run(cfg: SimConfig) -> SimResult:
    """Run one seeded simulation (see the module docstring)."""
    if cfg.engine not in ENGINES:
        raise ValueError(f"unknown engine {cfg.engine!r}; known: {', '.join(sorted(ENGINES))}")
    if cfg.faults not in FAULT_PRESETS:
        raise ValueError(f"unknown fault preset {cfg.faults!r}; known: "
                         f"{', '.join(sorted(FAULT_PRESETS))}")
    if cfg.nodes < 1 or cfg.ticks < 0 or cfg.liveness_ticks < 0:
        raise ValueError("need nodes >= 1 and non-negative tick counts")
    spec = ENGINES[cfg.engine]
    n = cfg.nodes
    f = cfg.f if cfg.f is not None else max_faulty(n, byzantine=spec.byzantine)
    signers, verifier = make_keys(n, cfg.keys, cfg.seed)
    placed = _place_byzantine(cfg, f)
    forged: set[bytes] = set()
    proposed: set[bytes] = set()

    def forge_value(node: NodeId) -> Callable[[], bytes]:
        counter = [0]

        def make() -> bytes:
            counter[0] += 1
            value = b"tx-%d-forged-%d" % (node, counter[0])
            forged.add(value)
            return value
        return make

    def setup(node: int, ep: int, incarnation: int) -> NodeSetup:
        return NodeSetup(NodeId(node), n, f, signers[node], verifier, valid_value,
                         derive_rng(cfg.seed, f"engine:{ep}:{incarnation}"), cfg.options)

    def builder(node: int, kind: str | None) -> Callable[[int, int], Engine]:
        def build(ep: int, incarnation: int) -> Engine:
            engine = spec.build(setup(node, ep, incarnation))
            if kind is None or kind == TWINS:
                return engine
            ctx = ByzantineContext(NodeId(node), n, f, signers[node],
                                   derive_rng(cfg.seed, f"byzantine:{ep}:{incarnation}"),
                                   forge_value(NodeId(node)), cfg.options)
            return BEHAVIOURS[kind](engine, ctx)
        return build

    endpoints = [Endpoint(ep=i, node=NodeId(i), behaviour=placed.get(i), build=builder(i, placed.get(i)))
                 for i in range(n)]
    twins: list[tuple[int, int]] = []
    for node in sorted(placed):
        if placed[node] == TWINS:
            ep = len(endpoints)
            endpoints.append(Endpoint(ep=ep, node=NodeId(node), behaviour=TWINS,
                                      build=builder(node, TWINS)))
            twins.append((node, ep))
    all_eps = [e.ep for e in endpoints]
    honest_eps = [e.ep for e in endpoints if e.behaviour is None]
    plan = draw_plan(derive_rng(cfg.seed, "faults"), FAULT_PRESETS[cfg.faults], all_eps,
                     honest_eps, cfg.ticks, twins)
    for e in endpoints:
        e.rate = plan.rates.get(e.ep, 1.0)
    network = Network(derive_rng(cfg.seed, "network"), all_eps, plan.profiles)
    verify = _memo(spec.make_verify(setup(0, 0, 0)))
    checker = SafetyChecker(
        honest=set(honest_eps), node_of={e.ep: int(e.node) for e in endpoints},
        verify=verify,
        is_valid_value=lambda v: v == b"" or v in proposed or v in forged,
        honest_nodes={i for i in range(n) if i not in placed})
    trace = Trace(keep_lines=cfg.keep_trace)
    world = World(endpoints, network, checker, spec.decode, trace, cfg.check_codec)
    for fault in plan.faults:
        if fault.kind == "crash":
            world.schedule(fault.start, "crash", fault.endpoint)
            world.schedule(fault.end, "restart", fault.endpoint)
        else:
            world.schedule(fault.start, "cut", payload=list(fault.links))
            world.schedule(fault.end, "mend", payload=list(fault.links))

    counter = [0]

    def propose(tick: int) -> list[tuple[int, bytes]]:
        # one new value every propose_every ticks, offered at the nodes in turn
        if tick % cfg.propose_every:
            return []
        counter[0] += 1
        node = counter[0] % n
        value = b"tx-%d-%d" % (node, counter[0])
        proposed.add(value)
        return [(node, value)]

    world.start()
    world.run_ticks(cfg.ticks, propose)
    liveness_detail = ""
    if not world.stopped:
        # heal: drop scheduled faults, mend every link, restart the crashed, reliable links
        world.network.heal()
        trace.record(world.tick, "heal", -1, -1)
        for ep in world.order:
            world.restart(ep)
        base = {ep: world.endpoints[ep].height for ep in honest_eps}
        goal = cfg.liveness_deliveries

        def live() -> bool:
            return all(world.endpoints[ep].height >= base[ep] + goal for ep in honest_eps)

        # Faults still scheduled after the safety phase are moot: drop them from the heap.
        world.drop_scheduled(("crash", "restart", "cut", "mend"))
        world.run_ticks(cfg.liveness_ticks, propose, until=live)
        if not world.stopped and not live():
            behind = [f"e{ep} {base[ep]}->{world.endpoints[ep].height}" for ep in honest_eps
                      if world.endpoints[ep].height < base[ep] + goal]
            liveness_detail = (f"after heal at tick {cfg.ticks}, {len(behind)} honest replica(s) "
                               f"did not add {goal} deliveries within {cfg.liveness_ticks} "
                               f"ticks: " + ", ".join(behind))
    if world.crash is not None:
        status = "crash"
    elif checker.violation is not None:
        status = "safety"
    elif liveness_detail:
        status = "liveness"
    else:
        status = "pass"
    return SimResult(
        config=cfg, status=status, digest=trace.digest(),
        heights={ep: world.endpoints[ep].height for ep in world.order},
        endpoints={ep: (int(world.endpoints[ep].node), world.endpoints[ep].behaviour or "honest")
                   for ep in world.order},
        faults=plan.describe(), violation=checker.violation, crash=world.crash,
        liveness_detail=liveness_detail, ticks_run=world.tick,
        counts={"sent": network.sent, "received": world.messages_delivered,
                "dropped": network.dropped, "duplicated": network.duplicated,
                "cut_losses": network.cut_losses, "lost_to_down": world.lost_to_down,
                "decode_errors": world.decode_errors, "steps": world.steps,
                "wants_served": world.wants_served, "committed_seqs": len(checker.committed),
                "deliveries_checked": checker.checked, "trace_events": trace.events},
        trace_lines=list(trace.lines or []))


def summarize(result: SimResult) -> dict[str, Any]:
    """A JSON-ready summary (used by ``phalanx sim --json`` and the tests)."""
    v = result.violation
    return {
        "status": result.status, "seed": result.config.seed, "engine": result.config.engine,
        "nodes": result.config.nodes, "byzantine": list(result.config.byzantine),
        "digest": result.digest, "ticks_run": result.ticks_run,
        "heights": {str(k): h for k, h in result.heights.items()},
        "endpoints": {str(k): {"node": nd, "role": r} for k, (nd, r) in result.endpoints.items()},
        "faults": result.faults, "counts": result.counts,
        "violation": None if v is None else {
            "property": v.prop, "tick": v.tick, "seq": v.seq, "detail": v.detail,
            "first": {"endpoint": v.first_endpoint, "value": v.first_value.hex()},
            "second": {"endpoint": v.second_endpoint, "value": v.second_value.hex()},
            "text": v.describe()},
        "crash": None if result.crash is None else {
            "tick": result.crash.tick, "endpoint": result.crash.endpoint,
            "event": result.crash.event, "error": result.crash.error},
        "liveness": result.liveness_detail or None,
        "replay": result.replay,
    }

