"""Mutual exclusion (Ricart-Agrawala, Lamport) under contention: safety, progress, cost.

Theory of operation
-------------------
``n`` nodes each enter the critical section ``entries`` times: after a seeded think time a
node sends ``Acquire``; once granted it holds the section a few ticks, then ``Release``.
Links are reliable, delayed and (for Ricart-Agrawala) reordering; Lamport's algorithm gets
FIFO links, its assumption. Checkers:

* **mutual exclusion** -- after every event, at most one node holds the section;
* **no deadlock / no starvation** -- every request is granted within the tick budget;
  the longest wait is reported;
* **order** -- grants follow the ``(timestamp, node)`` order of the requests they overtake
  (a request granted while an earlier-stamped one waits is counted; it stays 0).

Figures: messages per entry against ``2(n-1)`` (Ricart-Agrawala) and ``3(n-1)`` (Lamport).

Negative controls: ``dropped-reply`` loses the first reply (Ricart-Agrawala) or the first
ack and everything after it on that link (Lamport, where any later message from the peer
would stand in for the ack): the progress checker reports the stuck requesters; ``greedy`` enters one reply
short (Ricart-Agrawala) or without heading the queue (Lamport): the safety checker reports
two holders.

Called by: :mod:`testnet.sim.algos` (``phalanx sim --algo ricart-agrawala|lamport-mutex``).
"""

from __future__ import annotations

from consensus.contract import NodeId, Receive
from consensus.mutex import (
    Acquire,
    LamportMutex,
    MutexAck,
    MutexOutput,
    MutexReply,
    MutexState,
    Release,
    RicartAgrawala,
    decode_mutex_message,
)
from testnet.sim.algos._base import AlgoConfig, AlgoResult, MessageLoop
from testnet.sim.network import LinkProfile
from testnet.sim.world import derive_rng

__all__ = ["CONTROLS", "run_mutex"]

CONTROLS = ("dropped-reply", "greedy")
_ENTRIES = 3
_PROFILE_RA = LinkProfile(delay_ticks_min=1, delay_ticks_max=5, reorder=0.2)
_PROFILE_FIFO = LinkProfile(delay_ticks_min=1, delay_ticks_max=5)


class _GreedyRA(RicartAgrawala):
    """Negative control: enters with one reply missing."""

    def _may_enter(self) -> bool:
        return len(self.replies) >= len(self.peers) - 1


class _GreedyLamport(LamportMutex):
    """Negative control: enters once everyone acked, without heading the queue."""

    def _may_enter(self) -> bool:
        if self.request_ts is None:
            return False
        mine = self._mine()
        return all((self.latest[p], p) > mine for p in self.peers)


def run_mutex(cfg: AlgoConfig) -> AlgoResult:
    """Run one seeded mutual-exclusion execution and check it (see the module docstring)."""
    if cfg.control not in ("", *CONTROLS):
        raise ValueError(f"unknown control {cfg.control!r} for {cfg.algo}; known: {CONTROLS}")
    n = cfg.nodes
    lamport = cfg.algo == "lamport-mutex"
    greedy = cfg.control == "greedy"
    cls: type[RicartAgrawala] | type[LamportMutex]
    if lamport:
        cls = _GreedyLamport if greedy else LamportMutex
    else:
        cls = _GreedyRA if greedy else RicartAgrawala
    ids = [NodeId(i) for i in range(n)]
    cores = [cls(NodeId(i), ids) for i in range(n)]
    rng = derive_rng(cfg.seed, "workload")
    loop = MessageLoop(cfg.seed, n, _PROFILE_FIFO if lamport else _PROFILE_RA,
                       decode_mutex_message, fifo=lamport, keep_trace=cfg.keep_trace)
    if cfg.control == "dropped-reply":
        dead: list[tuple[int, int]] = []
        victim = MutexAck if lamport else MutexReply

        def drop(src: int, dst: int, msg: object) -> bool:
            if not dead and isinstance(msg, victim):
                dead.append((src, dst))
                return True
            # Lamport: any later message from that peer stands in for a lost ack, so the
            # control loses the rest of that link too (a link that silently died).
            return lamport and (src, dst) in dead
        loop.drop = drop
    result = AlgoResult(cfg)
    done = [0] * n
    wake = [rng.randint(1, 6) for _ in range(n)]          # tick to act next
    asked_at: dict[int, int] = {}
    release_at: dict[int, int] = {}
    waits: list[int] = []
    out_of_order = 0

    def holders() -> list[int]:
        return [i for i in range(n) if cores[i].state is MutexState.HELD]

    def handle(node: int, out: MutexOutput) -> None:
        nonlocal out_of_order
        for dst, msg in out.send:
            loop.send(node, int(dst), msg)
        for g in out.events:
            waits.append(loop.tick - asked_at.pop(node))
            release_at[node] = loop.tick + rng.randint(1, 3)
            mine = (g.ts, node)
            out_of_order += sum(1 for j in asked_at
                                if (cores[j].request_ts or 0, j) < mine)
        h = holders()
        if len(h) > 1:
            result.fail("safety", f"mutual-exclusion: nodes {h} hold the section at tick "
                                  f"{loop.tick}")

    while loop.tick < cfg.ticks and result.status != "safety":
        now = loop.tick + 1
        for src, dst, msg in loop.advance():
            handle(dst, cores[dst].step(Receive(NodeId(src), msg)))
        for i in range(n):
            if release_at.get(i) == now:
                del release_at[i]
                done[i] += 1
                wake[i] = now + rng.randint(1, 6)
                handle(i, cores[i].step(Release()))
            elif (cores[i].state is MutexState.RELEASED and done[i] < _ENTRIES
                    and wake[i] <= now):
                asked_at[i] = now
                handle(i, cores[i].step(Acquire()))
        if all(d == _ENTRIES for d in done):
            break
    if result.status != "safety" and any(d < _ENTRIES for d in done):
        stuck = [f"node {i} waiting since tick {t}" for i, t in sorted(asked_at.items())]
        result.fail("liveness", f"progress: {sum(done)} of {n * _ENTRIES} entries within "
                                f"{cfg.ticks} ticks; " + ", ".join(stuck or ["none waiting"]))
    entries = sum(done) + len(release_at)
    result.counts.update({"entries": entries, "max_wait_ticks": max(waits, default=0),
                          "out_of_order_grants": out_of_order})
    per = 3 if lamport else 2
    result.figures["messages_per_entry"] = loop.messages_sent() / max(1, entries)
    result.figures["textbook_per_entry"] = float(per * (n - 1))
    return loop.finish(result)
