"""Causal broadcast over a reordering network, checked against the true causal past.

Theory of operation
-------------------
``n`` nodes run :class:`~p2p.broadcast.CausalBroadcast`; at seeded ticks each broadcasts a
payload (``broadcasts`` each in total). The harness knows each message's true causal past:
everything its origin had delivered (and sent) before broadcasting it, closed
transitively. Links are reliable (the algorithm's assumption) and delay, duplicate and
reorder heavily, so messages often arrive before their causes. Checkers:

* **causal order** -- no node delivers a message before every message in its causal past
  (which includes the origin's earlier messages: per-sender FIFO, nonce order);
* **integrity** -- each message is delivered at most once per node;
* **liveness** -- at the end every node delivered every message and holds nothing back.

Figures: the hold-back queue's peak length and how many messages waited in it.

Negative control ``no-holdback``: a variant that delivers on arrival; the causal-order
checker flags it.

Called by: :mod:`testnet.sim.algos` (``phalanx sim --algo causal``).
"""

from __future__ import annotations

from p2p.broadcast import (
    BroadcastOutput,
    CausalBroadcast,
    CausalMessage,
    Delivered,
    Incoming,
    Originate,
    decode_broadcast_message,
)
from p2p.messages import PeerId
from testnet.sim.algos._base import AlgoConfig, AlgoResult, MessageLoop
from testnet.sim.network import LinkProfile
from testnet.sim.world import derive_rng

__all__ = ["CONTROLS", "run_causal"]

CONTROLS = ("no-holdback",)
_PROFILE = LinkProfile(delay_ticks_min=1, delay_ticks_max=10, duplicate=0.1, reorder=0.3,
                       reorder_ticks_max=12)
_BROADCASTS = 6


class _NoHoldback(CausalBroadcast):
    """Negative control: delivers every new message at once, as best-effort would."""

    def _incoming(self, sender: PeerId, msg: object, out: BroadcastOutput) -> None:
        if not isinstance(msg, CausalMessage):
            return
        if msg.seq > self._delivered_from.get(msg.origin, 0):
            self._delivered_from[msg.origin] = msg.seq
            out.deliver.append(Delivered(msg.origin, msg.seq, msg.payload))


def run_causal(cfg: AlgoConfig) -> AlgoResult:
    """Run one seeded causal-broadcast execution and check it (see the module docstring)."""
    if cfg.control not in ("", *CONTROLS):
        raise ValueError(f"unknown control {cfg.control!r} for {cfg.algo}; known: {CONTROLS}")
    n = cfg.nodes
    rng = derive_rng(cfg.seed, "workload")
    ids = [PeerId(i) for i in range(n)]
    cls = _NoHoldback if cfg.control == "no-holdback" else CausalBroadcast
    cores = [cls(PeerId(i), ids) for i in range(n)]
    loop = MessageLoop(cfg.seed, n, _PROFILE, decode_broadcast_message,
                       keep_trace=cfg.keep_trace)
    past: dict[tuple[int, int], frozenset[tuple[int, int]]] = {}
    delivered: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    history: list[set[tuple[int, int]]] = [set() for _ in range(n)]   # causal past so far
    result = AlgoResult(cfg)
    held_peak = waited = 0
    schedule = sorted((rng.randint(1, max(1, cfg.ticks // 3)), i)
                      for i in range(n) for _ in range(_BROADCASTS))

    def handle(node: int, out: BroadcastOutput) -> None:
        for dst, msg in out.send:
            loop.send(node, int(dst), msg)
        for d in out.deliver:
            key = (int(d.origin), d.seq)
            if key in delivered[node]:
                result.fail("safety", f"integrity: node {node} delivered {key} twice")
            missing = sorted(past[key] - set(delivered[node]))
            if missing:
                result.fail("safety", f"causal: node {node} delivered {key} before "
                                      f"{len(missing)} of its causes, first {missing[0]}")
            delivered[node].append(key)
            history[node] |= past[key] | {key}

    while loop.tick < cfg.ticks:
        now = loop.tick + 1
        for src, dst, msg in loop.advance():
            before = cores[dst].held_back()
            handle(dst, cores[dst].step(Incoming(PeerId(src), msg)))
            if cores[dst].held_back() > before:
                waited += 1
            held_peak = max(held_peak, cores[dst].held_back())
        while schedule and schedule[0][0] <= now:
            _, i = schedule.pop(0)
            seq = sum(1 for o, _ in past if o == i) + 1
            past[(i, seq)] = frozenset(history[i])
            handle(i, cores[i].step(Originate(b"m-%d-%d" % (i, seq))))
        if not schedule and loop.in_flight == 0:
            break
    for i in range(n):
        if len(delivered[i]) != len(past) or cores[i].held_back():
            result.fail("liveness", f"delivery: node {i} got {len(delivered[i])} of {len(past)} "
                                    f"messages, {cores[i].held_back()} held back")
    deps = sum(len(p) for p in past.values())
    result.counts.update({"broadcasts": len(past), "causal_dependencies": deps,
                          "deliveries": sum(len(d) for d in delivered),
                          "held_back_arrivals": waited, "holdback_peak": held_peak})
    return loop.finish(result)
