"""Failure-detection study: detection time vs false suspicions, per detector, delay and loss.

Theory of operation
-------------------
For each network *scenario* (``lan``, ``wan``, ``heavy``: delay law and loss), ``n`` nodes
send a :class:`~consensus.failure_detector.Heartbeat` to every peer each
``HEARTBEAT_TICKS`` ticks over the simulator's seeded network
(:class:`~testnet.sim.algos._base.MessageLoop`); the last node crashes at 2/3 of the run
(``ticks * 6`` ticks in all). Heartbeat sends do not depend on what any detector thinks, so
the network is simulated once per scenario and the recorded arrivals are replayed into
every observer's detector of every *variant*:

* ``fixed-10``, ``fixed-20``: the heartbeat detector with a fixed timeout (2 and 4 periods);
* ``adaptive``: the heartbeat detector, timeout 10 doubling after each false suspicion;
* ``phi-1``, ``phi-3``, ``phi-8``: the phi-accrual detector at three thresholds.

Per variant and scenario the study measures, over all (observer, peer) pairs:
*detection time* (ticks from the crash to the final, permanent suspicion of the crashed
node; median and max over observers, -1 if none), *false suspicions* (suspicions of a node that was
alive, per 1000 pair-ticks), and *mistaken time* (the fraction of pair-ticks a live node
was wrongly suspected). The observers also run
:class:`~consensus.suspicion_gossip.SuspicionGossip` over their own seeded network with the
scenario's links, confirming at ``f + 1`` reporters (anti-entropy every ``GOSSIP_TICKS``): *confirm_med* is the median time from
the crash to the final confirmation, *false_conf* counts confirmations of live nodes.

Checkers (statuses as the simulator's): *strong completeness* -- every observer suspects
the crashed node permanently before the end (``liveness`` otherwise), for every variant;
*eventual accuracy* of the adaptive detector (diamond-P): each false suspicion doubles that
peer's timeout, so once the timeout exceeds the largest silence the link produces it stops
suspecting; over a run, every (observer, live peer) pair is falsely suspected at most
``MISTAKES_PER_PAIR_MAX = log2(640 / 10) + 1 = 7`` times (``liveness`` otherwise; the
largest silence under ``heavy`` -- an 80-tick delay plus a few lost heartbeats -- is far
below the 640-tick cap). Negative control ``fixed-timeout`` applies the same check to
``fixed-10``: it never adapts, keeps suspecting live nodes for as long as the run lasts,
and the checker must flag it.

Called by: :mod:`testnet.sim.algos` (``phalanx sim --algo fd-study``), tests.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from consensus.contract import NodeId, Receive, Tick
from consensus.failure_detector import (
    Heartbeat,
    HeartbeatFailureDetector,
    Suspect,
    Trust,
    decode_heartbeat,
)
from consensus.phi_detector import PhiAccrualFailureDetector
from consensus.suspicion_gossip import (
    Confirmed,
    GossipOutput,
    SuspicionGossip,
    decode_suspicion_report,
)
from testnet.sim.algos._base import AlgoConfig, AlgoResult, MessageLoop
from testnet.sim.network import LinkProfile
from testnet.sim.trace import short_hash
from testnet.sim.world import derive_rng

__all__ = ["CONTROLS", "SCENARIOS", "VARIANTS", "StudyResult", "run_fd_study"]

CONTROLS = ("fixed-timeout",)
HEARTBEAT_TICKS = 5
MISTAKES_PER_PAIR_MAX = 7
TICKS_MIN = 50                      # 300 ticks in all, 100 of them after the crash
GOSSIP_TICKS = 20                   # anti-entropy period (changes are sent at once)
_GOSSIP_SEED_OFFSET = 1_000_003     # the gossip network draws apart from the heartbeats'

SCENARIOS: dict[str, LinkProfile] = {
    "lan": LinkProfile(delay_ticks_min=1, delay_ticks_max=3),
    "wan": LinkProfile(delay_kind="exponential", delay_ticks_min=1, delay_ticks_max=30,
                       delay_ticks_mean=4.0, drop=0.05),
    "heavy": LinkProfile(delay_kind="exponential", delay_ticks_min=1, delay_ticks_max=80,
                         delay_ticks_mean=12.0, drop=0.2),
}

Detector = HeartbeatFailureDetector | PhiAccrualFailureDetector
Factory = Callable[[NodeId, list[NodeId]], Detector]

VARIANTS: dict[str, Factory] = {
    "fixed-10": lambda me, peers: HeartbeatFailureDetector(
        me, peers, HEARTBEAT_TICKS, 10, 10, adaptive=False),
    "fixed-20": lambda me, peers: HeartbeatFailureDetector(
        me, peers, HEARTBEAT_TICKS, 20, 20, adaptive=False),
    "adaptive": lambda me, peers: HeartbeatFailureDetector(
        me, peers, HEARTBEAT_TICKS, 10, 640, adaptive=True),
    "phi-1": lambda me, peers: PhiAccrualFailureDetector(me, peers, HEARTBEAT_TICKS, 1.0),
    "phi-3": lambda me, peers: PhiAccrualFailureDetector(me, peers, HEARTBEAT_TICKS, 3.0),
    "phi-8": lambda me, peers: PhiAccrualFailureDetector(me, peers, HEARTBEAT_TICKS, 8.0),
}


@dataclass(slots=True)
class StudyResult(AlgoResult):
    """An :class:`AlgoResult` whose text line carries the study's table."""

    table: list[str] = field(default_factory=list)

    def line(self) -> str:
        return "\n".join([AlgoResult.line(self), *self.table])

    def summary(self) -> dict[str, Any]:
        doc = AlgoResult.summary(self)
        doc["table"] = [row.split() for row in self.table[1:]]
        doc["table_columns"] = self.table[0].split() if self.table else []
        return doc


@dataclass(frozen=True, slots=True)
class Measure:
    """One variant under one scenario, over all observers."""

    detection_median: float
    detection_max: int
    undetected: int
    false_suspicions: int
    false_per_1k: float
    mistaken: float
    false_per_pair_max: int
    confirm_median: float
    false_confirmations: int
    unconfirmed: int


def _arrivals(cfg: AlgoConfig, profile: LinkProfile, horizon: int, crash_at: int
              ) -> tuple[list[list[tuple[int, Heartbeat]]], MessageLoop]:
    """Simulate the heartbeats once: ``arrivals[tick]`` lists ``(dst, heartbeat)``."""
    loop = MessageLoop(cfg.seed, cfg.nodes, profile, decode_heartbeat)
    crashed = cfg.nodes - 1
    seq = [0] * cfg.nodes
    arrivals: list[list[tuple[int, Heartbeat]]] = [[] for _ in range(horizon + 1)]
    for now in range(horizon + 1):
        if now:
            for _src, dst, msg in loop.advance():
                arrivals[now].append((dst, msg))
        if now % HEARTBEAT_TICKS == 0:
            for src in range(cfg.nodes):
                if src == crashed and now >= crash_at:
                    continue
                seq[src] += 1
                for dst in range(cfg.nodes):
                    if dst != src:
                        loop.send(src, dst, Heartbeat(NodeId(src), 0, seq[src]))
    return arrivals, loop


def _measure(cfg: AlgoConfig, factory: Factory, arrivals: list[list[tuple[int, Heartbeat]]],
             horizon: int, crash_at: int, profile: LinkProfile) -> Measure:
    crashed = NodeId(cfg.nodes - 1)
    observers = [NodeId(i) for i in range(cfg.nodes - 1)]
    ids = [NodeId(i) for i in range(cfg.nodes)]
    dets = {o: factory(o, ids) for o in observers}
    final_suspect: dict[NodeId, int | None] = dict.fromkeys(observers)
    false = mistaken = 0
    per_pair: dict[tuple[NodeId, NodeId], int] = {}
    # Suspicion gossip among the observers, confirming at f + 1 reporters.
    gloop = MessageLoop(cfg.seed + _GOSSIP_SEED_OFFSET, cfg.nodes, profile,
                        decode_suspicion_report)
    quorum = (cfg.nodes - 1) // 3 + 1
    gossip = {o: SuspicionGossip(o, ids, quorum, derive_rng(cfg.seed, f"gossip-{o}"),
                                 gossip_ticks=GOSSIP_TICKS) for o in observers}
    final_confirm: dict[NodeId, int | None] = dict.fromkeys(observers)
    false_conf = 0

    def feed(o: NodeId, out: GossipOutput) -> None:
        nonlocal false_conf
        for dst, report in out.send:
            gloop.send(o, dst, report)
        for gev in out.events:
            if isinstance(gev, Confirmed):
                if gev.node == crashed and now >= crash_at:
                    if final_confirm[o] is None:
                        final_confirm[o] = now
                else:
                    false_conf += 1
            elif gev.node == crashed:
                final_confirm[o] = None

    for now in range(horizon + 1):
        for src, dst, msg in (gloop.advance() if now else []):
            if dst in gossip:
                feed(NodeId(dst), gossip[NodeId(dst)].step(Receive(NodeId(src), msg)))
        for o in observers:
            events = dets[o].step(Tick(now)).events
            for dst, hb in arrivals[now]:
                if dst == o:
                    events += dets[o].step(Receive(hb.sender, hb)).events
            for ev in events:
                feed(o, gossip[o].step(ev))
            feed(o, gossip[o].step(Tick(now)))
            for ev in events:
                if isinstance(ev, Suspect):
                    if ev.node == crashed and now >= crash_at:
                        final_suspect[o] = now if final_suspect[o] is None else final_suspect[o]
                    else:
                        false += 1
                        per_pair[(o, ev.node)] = per_pair.get((o, ev.node), 0) + 1
                elif isinstance(ev, Trust) and ev.node == crashed:
                    final_suspect[o] = None
            sus = dets[o].suspected()
            mistaken += sum(1 for p in sus if p != crashed or now < crash_at)
        for o in observers:   # a suspicion held since before the crash counts from the crash
            if now == crash_at and crashed in dets[o].suspected():
                final_suspect[o] = crash_at
            if now == crash_at and crashed in gossip[o].confirmed():
                final_confirm[o] = crash_at
    detections = [t - crash_at for t in final_suspect.values() if t is not None]
    confirms = [t - crash_at for t in final_confirm.values() if t is not None]
    pair_ticks = len(observers) * (cfg.nodes - 1) * (horizon + 1)
    return Measure(
        detection_median=statistics.median(detections) if detections else -1.0,
        detection_max=max(detections, default=-1),
        undetected=sum(1 for t in final_suspect.values() if t is None),
        false_suspicions=false,
        false_per_1k=1000.0 * false / pair_ticks,
        mistaken=mistaken / pair_ticks,
        false_per_pair_max=max(per_pair.values(), default=0),
        confirm_median=statistics.median(confirms) if confirms else -1.0,
        false_confirmations=false_conf,
        unconfirmed=sum(1 for t in final_confirm.values() if t is None),
    )


def run_fd_study(cfg: AlgoConfig) -> AlgoResult:
    """Run every scenario and variant for one seed; check completeness and accuracy."""
    if cfg.nodes < 3:
        raise ValueError("fd-study needs at least 3 nodes (2 observers and 1 crash)")
    if cfg.ticks < TICKS_MIN:
        raise ValueError(f"fd-study needs --ticks >= {TICKS_MIN}: the slowest detectors take "
                         f"about 80 ticks to suspect a crash under heavy delay")
    result = StudyResult(cfg)
    horizon = cfg.ticks * 6
    crash_at = (2 * horizon) // 3
    result.table = [
        f"  {'scenario':8} {'detector':9} {'detect_med':>10} {'max':>5} {'false':>6} "
        f"{'false/1k':>9} {'mistaken':>9} {'confirm_med':>11} {'false_conf':>10}"]
    messages = 0
    digests = []
    for scen, profile in SCENARIOS.items():
        arrivals, loop = _arrivals(cfg, profile, horizon, crash_at)
        messages += loop.messages_sent()
        digests.append(loop.trace.digest())
        for name, factory in VARIANTS.items():
            m = _measure(cfg, factory, arrivals, horizon, crash_at, profile)
            result.table.append(
                f"  {scen:8} {name:9} {m.detection_median:10.1f} {m.detection_max:5d} "
                f"{m.false_suspicions:6d} {m.false_per_1k:9.3f} {m.mistaken:9.4f} "
                f"{m.confirm_median:11.1f} {m.false_confirmations:10d}")
            if m.unconfirmed:
                result.fail("liveness", f"completeness: gossip with {name} under {scen}: "
                                        f"{m.unconfirmed} observer(s) never confirmed the crash")
            if scen == "heavy" and name in ("fixed-10", "adaptive", "phi-8"):
                result.figures[f"{scen}_{name}_detect"] = m.detection_median
                result.figures[f"{scen}_{name}_false"] = float(m.false_suspicions)
                result.figures[f"{scen}_{name}_false_conf"] = float(m.false_confirmations)
            if scen == "heavy" and name == "adaptive":
                result.figures["heavy_adaptive_false_per_pair_max"] = float(
                    m.false_per_pair_max)
            if m.undetected:
                result.fail("liveness", f"completeness: {name} under {scen}: "
                                        f"{m.undetected} observer(s) never suspected the crash")
            checked = ("adaptive", "fixed-10") if cfg.control == "fixed-timeout" \
                else ("adaptive",)
            if name in checked and m.false_per_pair_max > MISTAKES_PER_PAIR_MAX:
                result.fail("liveness", f"accuracy: {name} under {scen}: a live peer was "
                                        f"falsely suspected {m.false_per_pair_max} times by "
                                        f"one observer (> {MISTAKES_PER_PAIR_MAX})")
    result.counts["messages"] = messages
    result.counts["ticks"] = horizon
    result.digest = short_hash("".join(digests).encode())
    return result
