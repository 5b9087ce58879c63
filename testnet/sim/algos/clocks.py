"""Simulated executions checked against a ground-truth happens-before graph (Lamport, vector).

Theory of operation
-------------------
``n`` processes run for ``ticks`` ticks over a seeded lossy, reordering, duplicating
network. Each tick every process may do a local event or send to a random peer; each
arriving message is a receive event. Every event is stamped with the process's
:class:`~p2p.lamport.LamportClock` and :class:`~p2p.clocks.VectorClock` (messages carry
both). The harness also records the true causal predecessors of each event (the previous
event of its process and, for a receive, the send), and computes every event's causal past
as a bit set. Then, over all ordered pairs of events:

* **clock condition** -- ``a -> b`` implies ``L(a) < L(b)``;
* **vector characterization** -- ``a -> b`` iff ``V(a) < V(b)``.

Figures: pairs checked, causally ordered pairs, concurrent pairs, and how many concurrent
pairs Lamport time orders anyway (why Lamport time cannot detect concurrency).

Negative control ``no-merge``: receives tick the clock without merging the message's
timestamp; both checkers flag it.

Called by: :mod:`testnet.sim.algos` (``phalanx sim --algo lamport|vector``).
"""

from __future__ import annotations

from dataclasses import dataclass

import rlp
from rlp.sedes import List, big_endian_int, binary

from p2p.clocks import VectorClock, VectorStamp, decode_vector_stamp
from p2p.lamport import LamportClock
from testnet.sim.algos._base import AlgoConfig, AlgoResult, MessageLoop
from testnet.sim.network import LinkProfile
from testnet.sim.world import derive_rng

__all__ = ["CONTROLS", "ClockMessage", "run_clocks"]

CONTROLS = ("no-merge",)
_SEDES = List([big_endian_int, big_endian_int, binary], strict=True)
_PROFILE = LinkProfile(delay_ticks_min=1, delay_ticks_max=6, drop=0.1, duplicate=0.05,
                       reorder=0.2)
_EVENT_CHANCE = 0.5
_EVENTS_MAX = 240          # bounds the O(events^2) pair check


@dataclass(frozen=True, slots=True)
class ClockMessage:
    sender: int
    lamport: int
    stamp: VectorStamp
    event: int = 0          # ground truth for the checker only: the send event's index

    def encode(self) -> bytes:
        data: bytes = rlp.encode([self.sender, self.lamport, self.stamp.encode() +
                                  self.event.to_bytes(4, "big")])
        return data


def decode_clock_message(data: bytes) -> ClockMessage:
    sender, lamport, rest = rlp.decode(data, sedes=_SEDES, strict=True)
    return ClockMessage(sender, lamport, decode_vector_stamp(rest[:-4]),
                        int.from_bytes(rest[-4:], "big"))


def run_clocks(cfg: AlgoConfig) -> AlgoResult:
    """Run one execution and check both clock properties (see the module docstring)."""
    if cfg.control not in ("", *CONTROLS):
        raise ValueError(f"unknown control {cfg.control!r} for {cfg.algo}; known: {CONTROLS}")
    n = cfg.nodes
    rng = derive_rng(cfg.seed, "workload")
    loop = MessageLoop(cfg.seed, n, _PROFILE, decode_clock_message, keep_trace=cfg.keep_trace)
    lamport = [LamportClock() for _ in range(n)]
    vector = [VectorClock(i) for i in range(n)]
    merge = cfg.control != "no-merge"
    # events: (process, lamport, vector) and their direct predecessors
    stamps: list[tuple[int, int, VectorStamp]] = []
    preds: list[tuple[int, ...]] = []
    last = [-1] * n

    def record(p: int, lt: int, vt: VectorStamp, send_event: int = -1) -> int:
        stamps.append((p, lt, vt))
        preds.append(tuple(e for e in (last[p], send_event) if e >= 0))
        last[p] = len(stamps) - 1
        return last[p]

    while loop.tick < cfg.ticks and len(stamps) < _EVENTS_MAX:
        for src, dst, msg in loop.advance():
            if merge:
                lt, vt = lamport[dst].observe(msg.lamport), vector[dst].observe(msg.stamp)
            else:
                lt, vt = lamport[dst].tick(), vector[dst].tick()
            record(dst, lt, vt, msg.event)
            del src
        for p in range(n):
            if rng.random() >= _EVENT_CHANCE:
                continue
            lt, vt = lamport[p].tick(), vector[p].tick()
            e = record(p, lt, vt)
            if rng.random() < 0.6:
                dst = rng.choice([q for q in range(n) if q != p])
                loop.send(p, dst, ClockMessage(p, lt, vt, e))
    return _check(cfg, stamps, preds, loop)


def _check(cfg: AlgoConfig, stamps: list[tuple[int, int, VectorStamp]],
           preds: list[tuple[int, ...]], loop: MessageLoop) -> AlgoResult:
    result = AlgoResult(cfg)
    past: list[int] = []          # bit i set: event i happened before this event
    for i, ps in enumerate(preds):
        bits = 0
        for p in ps:
            bits |= past[p] | (1 << p)
        past.append(bits)
        del i
    pairs = ordered = concurrent = lamport_orders_concurrent = 0
    clock_bad = vector_bad = 0
    first_clock = first_vector = ""
    m = len(stamps)
    n = cfg.nodes
    vecs = [tuple(v.get(k) for k in range(n)) for _, _, v in stamps]
    for b in range(m):
        lb, vb, pb = stamps[b][1], vecs[b], past[b]
        for a in range(m):
            if a == b:
                continue
            pairs += 1
            la, va = stamps[a][1], vecs[a]
            hb = bool(pb >> a & 1)
            if hb:
                ordered += 1
                if not la < lb:
                    clock_bad += 1
                    first_clock = first_clock or f"e{a} -> e{b} but L {la} >= {lb}"
            elif not past[a] >> b & 1:
                concurrent += 1
                lamport_orders_concurrent += la < lb
            below = va != vb and all(x <= y for x, y in zip(va, vb, strict=True))
            if below != hb:
                vector_bad += 1
                first_vector = first_vector or (f"e{a} -> e{b} is {hb} but V(e{a}) < V(e{b}) "
                                                f"is {below}")
    result.counts.update({"events": m, "pairs_checked": pairs, "ordered_pairs": ordered,
                          "concurrent_pairs": concurrent // 2,
                          "concurrent_ordered_by_lamport": lamport_orders_concurrent,
                          "clock_violations": clock_bad, "vector_violations": vector_bad})
    if cfg.algo == "lamport" and clock_bad:
        result.fail("safety", f"clock condition broken by {clock_bad} pair(s); first: "
                              f"{first_clock}")
    elif cfg.algo != "lamport" and vector_bad:
        result.fail("safety", f"vector characterization broken by {vector_bad} pair(s); "
                              f"first: {first_vector}")
    elif ordered == 0:
        result.fail("liveness", "no causally ordered pairs: the run checked nothing")
    return loop.finish(result)
