"""Bracha's reliable broadcast under up to f Byzantine nodes, including an equivocating sender.

Theory of operation
-------------------
``n`` nodes, ``f = (n - 1) // 3``; ``byzantine`` of them (``f`` by default) are chosen by
the seed. Honest nodes run :class:`~p2p.broadcast.BrachaBroadcast` and each broadcast
``broadcasts`` payloads at seeded ticks. The Byzantine nodes collude, with full knowledge:

* the lowest Byzantine node *equivocates* as a sender: it splits the honest nodes in two
  halves and sends ``SEND(a)`` to one half and ``SEND(b)`` to the other, and every
  Byzantine node sends ``ECHO`` and ``READY`` to each honest node for the value of its half;
* for honest senders' instances, Byzantine nodes echo and ready a forged value.

Links are reliable (the algorithm's assumption) with seeded delays, duplicates and
reordering. Checkers over honest nodes, at the end of the run:

* **agreement** -- no two honest nodes deliver different values for one instance;
* **integrity** -- at most one delivery per instance and node; an honest sender's instance
  delivers only what it sent;
* **validity** -- every honest sender's payload is delivered by every honest node;
* **totality** -- an instance delivered by one honest node is delivered by all.

Negative control ``over-f``: ``f + 1`` colluding Byzantine nodes; the agreement checker
flags the split. Textbook cost per broadcast: ``(n-1) + 2n(n-1)`` messages.

Called by: :mod:`testnet.sim.algos` (``phalanx sim --algo bracha``).
"""

from __future__ import annotations

from p2p.broadcast import (
    BrachaBroadcast,
    BroadcastOutput,
    Incoming,
    Kind,
    Originate,
    PlainMessage,
    decode_broadcast_message,
)
from p2p.messages import PeerId
from testnet.sim.algos._base import AlgoConfig, AlgoResult, MessageLoop
from testnet.sim.network import LinkProfile
from testnet.sim.world import derive_rng

__all__ = ["CONTROLS", "run_bracha"]

CONTROLS = ("over-f",)
_PROFILE = LinkProfile(delay_ticks_min=1, delay_ticks_max=8, duplicate=0.1, reorder=0.2)
_BROADCASTS = 2


def run_bracha(cfg: AlgoConfig) -> AlgoResult:
    """Run one seeded Bracha execution and check it (see the module docstring)."""
    if cfg.control not in ("", *CONTROLS):
        raise ValueError(f"unknown control {cfg.control!r} for {cfg.algo}; known: {CONTROLS}")
    n = cfg.nodes
    f = (n - 1) // 3
    if n < 4:
        raise ValueError("Bracha's simulation needs n >= 4 (n >= 3f + 1 with f >= 1)")
    byz_count = f + 1 if cfg.control == "over-f" else (f if cfg.byzantine is None
                                                       else cfg.byzantine)
    rng = derive_rng(cfg.seed, "workload")
    byz = sorted(rng.sample(range(n), byz_count))
    honest = [i for i in range(n) if i not in byz]
    ids = [PeerId(i) for i in range(n)]
    cores = {i: BrachaBroadcast(PeerId(i), ids, f) for i in honest}
    loop = MessageLoop(cfg.seed, n, _PROFILE, decode_broadcast_message,
                       keep_trace=cfg.keep_trace)
    sent_by: dict[tuple[int, int], bytes] = {}     # honest instance -> its payload
    delivered: dict[int, dict[tuple[int, int], list[bytes]]] = {i: {} for i in honest}
    schedule = sorted((rng.randint(1, max(1, cfg.ticks // 4)), i, k)
                      for i in honest for k in range(_BROADCASTS))

    def emit(src: int, out_send: list[tuple[PeerId, PlainMessage]]) -> None:
        for dst, msg in out_send:
            loop.send(src, int(dst), msg)

    honest_msgs = [0]

    def handle(node: int, out: BroadcastOutput) -> None:
        honest_msgs[0] += sum(1 for _, m in out.send if m.origin in cores)
        emit(node, out.send)  # type: ignore[arg-type]
        for d in out.deliver:
            delivered[node].setdefault((d.origin, d.seq), []).append(d.payload)

    # the colluding adversary: an equivocating sender, then forged echoes and readies
    if byz:
        halves = (honest[: (len(honest) + 1) // 2], honest[(len(honest) + 1) // 2:])
        liar = byz[0]
        for half, value in zip(halves, (b"value-a", b"value-b"), strict=True):
            for h in half:
                loop.send(liar, h, PlainMessage(Kind.SEND, PeerId(liar), 0, value))
                for b in byz:
                    for kind in (Kind.ECHO, Kind.READY):
                        loop.send(b, h, PlainMessage(kind, PeerId(liar), 0, value))
    forged_for: set[tuple[int, int]] = set()
    while loop.tick < cfg.ticks:
        now = loop.tick + 1
        for src, dst, msg in loop.advance():
            if dst in cores:
                handle(dst, cores[dst].step(Incoming(PeerId(src), msg)))
                key = (msg.origin, msg.seq)
                if byz and msg.origin in cores and key not in forged_for:
                    forged_for.add(key)
                    for b in byz:
                        for h in honest:
                            for kind in (Kind.ECHO, Kind.READY):
                                loop.send(b, h, PlainMessage(kind, msg.origin, msg.seq,
                                                             b"forged"))
        while schedule and schedule[0][0] <= now:
            _, i, k = schedule.pop(0)
            seq = sum(1 for o, _ in sent_by if o == i)     # the core numbers from 0
            payload = b"payload-%d-%d" % (i, seq)
            sent_by[(i, seq)] = payload
            del k
            handle(i, cores[i].step(Originate(payload)))
        if not schedule and loop.in_flight == 0:
            break
    return _check(cfg, loop, honest, byz, sent_by, delivered, honest_msgs[0])


def _check(cfg: AlgoConfig, loop: MessageLoop, honest: list[int], byz: list[int],
           sent_by: dict[tuple[int, int], bytes],
           delivered: dict[int, dict[tuple[int, int], list[bytes]]],
           honest_msgs: int) -> AlgoResult:
    result = AlgoResult(cfg)
    instances = sorted({k for d in delivered.values() for k in d} | set(sent_by))
    for key in instances:
        values = {h: delivered[h].get(key, []) for h in honest}
        for h, vs in values.items():
            if len(vs) > 1:
                result.fail("safety", f"integrity: node {h} delivered {key} {len(vs)} times")
            if vs and key in sent_by and vs[0] != sent_by[key]:
                result.fail("safety", f"integrity: node {h} delivered {vs[0]!r} for honest "
                                      f"{key}, sent {sent_by[key]!r}")
        seen = {vs[0] for vs in values.values() if vs}
        if len(seen) > 1:
            who = "; ".join(f"node {h}: {vs[0]!r}" for h, vs in values.items() if vs)
            result.fail("safety", f"agreement: instance {key} delivered differently ({who})")
        got = [h for h, vs in values.items() if vs]
        if key in sent_by and len(got) < len(honest):
            result.fail("liveness", f"validity: honest instance {key} delivered by {got} only")
        elif got and len(got) < len(honest):
            result.fail("liveness", f"totality: instance {key} delivered by {got} only")
    equivocated = (byz[0], 0) if byz else None
    result.counts.update({
        "honest": len(honest), "byzantine": len(byz), "broadcasts": len(sent_by),
        "deliveries": sum(len(vs) for d in delivered.values() for vs in d.values()),
        "equivocated_delivered_by": sum(1 for h in honest if equivocated in delivered[h]),
    })
    n = cfg.nodes
    # honest nodes' messages for honest senders' instances, against (n-1) + 2 n_h (n-1)
    result.counts["honest_messages"] = honest_msgs
    result.figures["messages_per_broadcast"] = honest_msgs / max(1, len(sent_by))
    result.figures["textbook_per_broadcast"] = float((n - 1) + 2 * len(honest) * (n - 1))
    if not sent_by:
        result.fail("liveness", "no honest broadcast: the run checked nothing")
    return loop.finish(result)
