"""Leader election (ring and bully) with crashed nodes and a crashing leader.

Theory of operation
-------------------
``n`` nodes; the seed crashes up to ``(n - 1) // 3`` of them before the start. A perfect
failure-detector oracle tells every live node which nodes are down (the algorithms'
assumption; the real node uses the heartbeat detector). Links delay and reorder.

* **Phase 1** -- every live node starts on its first tick (all initiate at once). Run
  until stable: no message in flight, every live node idle with a leader.
* **Phase 2** -- the elected leader crashes; two ticks later every live node suspects it.
  Run until stable again.

Checkers after each phase: **one leader** (exactly one live node believes it leads, and
every live node follows it) and **highest wins** (it is the highest live id); a phase that
does not stabilise within its budget is a **liveness** failure.

Figures: messages per phase against textbook figures for ``m`` live nodes -- ring with all
initiating at most ``m(m+1)/2`` Elect plus ``m`` Elected; bully with one (lowest)
initiator at most ``m(m-1)/2`` Election, as many Answer, and ``m-1`` Coordinator. Here every
live node initiates at once, and each Election that reaches an idle higher node restarts
its election (the textbook rule), so the top node re-announces several times and bully's
measured count runs well above the one-initiator figure; that is the cost the figure shows.

Negative control ``lost-token`` (ring only): no timeout, and the token carrying the
highest live id is lost on its first hop; the ring never completes and the liveness checker
reports it.

Called by: :mod:`testnet.sim.algos` (``phalanx sim --algo ring|bully``).
"""

from __future__ import annotations

from collections.abc import Callable

from consensus.contract import NodeId, Receive, Tick
from consensus.election import BullyElection, ElectionOutput, Phase, decode_election_message
from consensus.failure_detector import Suspect
from consensus.ring_election import RingElect, RingElection, RingOutput, decode_ring_message
from testnet.sim.algos._base import AlgoConfig, AlgoResult, MessageLoop
from testnet.sim.network import LinkProfile
from testnet.sim.world import derive_rng

__all__ = ["CONTROLS", "run_election"]

CONTROLS = ("lost-token",)
_PROFILE = LinkProfile(delay_ticks_min=1, delay_ticks_max=4, reorder=0.2)
_HOP_TICKS_MAX = 4 + 6       # the profile's delay cap plus its largest reorder delay
_BULLY_TIMEOUT_TICKS = 24    # bully: wait for Answer (> a round trip: 2 * (4 + 6 reorder) ticks)


def run_election(cfg: AlgoConfig) -> AlgoResult:
    """Run one seeded election scenario and check it (see the module docstring)."""
    ring = cfg.algo == "ring"
    controls = CONTROLS if ring else ()
    if cfg.control not in ("", *controls):
        raise ValueError(f"unknown control {cfg.control!r} for {cfg.algo}; known: {controls}")
    n = cfg.nodes
    if n < 2:
        raise ValueError("an election needs at least 2 nodes")
    rng = derive_rng(cfg.seed, "workload")
    down = set(rng.sample(range(n), rng.randint(0, (n - 1) // 3)))
    ids = [NodeId(i) for i in range(n)]
    cores: dict[int, RingElection | BullyElection] = {}
    # ring: a participant restarts after two worst-case laps (Elect, then Elected); a
    # shorter timeout restarts elections that were only slow, and they pile up
    lap_ticks = 2 * n * _HOP_TICKS_MAX
    for i in range(n):
        if ring:
            timeout = None if cfg.control == "lost-token" else lap_ticks
            cores[i] = RingElection(NodeId(i), ids, timeout_ticks=timeout)
        else:
            cores[i] = BullyElection(NodeId(i), ids, timeout_ticks=_BULLY_TIMEOUT_TICKS)
    decode: Callable[[bytes], object] = decode_ring_message if ring else decode_election_message
    loop = MessageLoop(cfg.seed, n, _PROFILE, decode, keep_trace=cfg.keep_trace)
    loop.down = set(down)
    result = AlgoResult(cfg)
    if cfg.control == "lost-token":
        top = max(i for i in range(n) if i not in down)
        lost: list[bool] = []

        def drop(src: int, dst: int, msg: object) -> bool:
            if not lost and isinstance(msg, RingElect) and msg.candidate == top:
                lost.append(True)
                return True
            return False
        loop.drop = drop

    def live() -> list[int]:
        return [i for i in range(n) if i not in loop.down]

    def feed(i: int, event: Tick | Receive | Suspect) -> None:
        out: RingOutput | ElectionOutput = cores[i].step(event)
        for dst, msg in out.send:
            loop.send(i, int(dst), msg)

    def stable() -> bool:
        return loop.in_flight == 0 and all(
            cores[i].leader() is not None and cores[i].phase is Phase.IDLE for i in live())

    def phase(name: str, budget: int) -> bool:
        start_tick, start_msgs = loop.tick, loop.messages_sent()
        while loop.tick - start_tick < budget:
            for src, dst, msg in loop.advance():
                feed(dst, Receive(NodeId(src), msg))
            for i in live():
                feed(i, Tick(loop.tick))
            if stable():
                break
        m = len(live())
        msgs = loop.messages_sent() - start_msgs
        result.counts[f"{name}_messages"] = msgs
        result.figures[f"{name}_messages"] = float(msgs)
        result.counts[f"{name}_ticks"] = loop.tick - start_tick
        result.counts[f"{name}_live"] = m
        if ring:
            result.figures[f"{name}_textbook_all_initiate"] = float(m * (m + 1) // 2 + m)
        else:
            result.figures[f"{name}_textbook_one_initiator"] = float(m * (m - 1) + m - 1)
        if not stable():
            seen = {i: cores[i].leader() for i in live()}
            result.fail("liveness", f"stabilise: {name} not stable after {budget} ticks "
                                    f"(leaders {seen}, {loop.in_flight} in flight)")
            return False
        top = max(live())
        followers = {cores[i].leader() for i in live()}
        leaders = [i for i in live() if cores[i].leader() == i]
        if len(leaders) != 1 or followers != {leaders[0]}:
            result.fail("safety", f"one-leader: {name}: self-declared {leaders}, followed "
                                  f"{sorted(x for x in followers if x is not None)}")
        elif leaders[0] != top:
            result.fail("safety", f"highest-wins: {name}: leader {leaders[0]}, highest live "
                                  f"{top}")
        return True

    for i in live():
        for d in sorted(down):
            feed(i, Suspect(NodeId(d)))
    budget = max(cfg.ticks // 2, 2 * lap_ticks if ring else 1)
    if phase("phase1", budget) and result.status == "pass" and len(live()) > 1:
        leader = max(live())
        loop.down.add(leader)
        for _ in range(2):
            for src, dst, msg in loop.advance():
                feed(dst, Receive(NodeId(src), msg))
        for i in live():
            feed(i, Suspect(NodeId(leader)))
        phase("phase2", budget)
    result.counts["initially_down"] = len(down)
    return loop.finish(result)
