"""A hand-driven cluster of Paxos replicas for tests: outputs become inputs by hand.

Every message goes through ``encode()`` / ``decode_message`` as on the wire. Each node has a
durable record list (what it persisted), a toy application (a hash chain of delivered values
that answers ``Applied``), and can be crashed, restarted from its records, partitioned.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from consensus.contract import ALL, Applied, Delivery, NodeId, Output, Propose, Receive, Tick
from consensus.paxos.config import PaxosConfig
from consensus.paxos.messages import decode_message
from consensus.paxos.records import decode_record
from consensus.paxos.replica import PaxosReplica
from consensus.signing import make_keyring


@dataclass
class App:
    """A toy state machine: root_k = sha256(root_{k-1} || value_k)."""

    roots: dict[int, bytes] = field(default_factory=lambda: {0: b"\x00" * 32})
    height: int = 0

    def apply(self, d: Delivery) -> bytes:
        assert d.seq == self.height + 1, (d.seq, self.height)
        self.height = d.seq
        self.roots[d.seq] = hashlib.sha256(self.roots[d.seq - 1] + d.value).digest()
        return self.roots[d.seq]


@dataclass
class Flight:
    src: NodeId
    dst: NodeId
    data: bytes


class Cluster:
    """``n`` replicas wired by hand. Time advances only through :meth:`tick`."""

    def __init__(self, n: int, seed: int = 0, *, apply: bool = True, **options: Any) -> None:
        defaults: dict[str, Any] = {"checkpoint_interval": 8, "window": 32}
        defaults.update(options)
        self.config = PaxosConfig(n=n, **defaults)
        self.n = n
        self.ids = [NodeId(i) for i in range(n)]
        self.signers, self.verifier = make_keyring(n, "hash", seed=b"paxos-test-%d" % seed)
        self.rng = random.Random(seed)
        self.apply = apply
        self.now = 0
        self.records: dict[NodeId, list[bytes]] = {i: [] for i in self.ids}
        self.delivered: dict[NodeId, list[Delivery]] = {i: [] for i in self.ids}
        self.apps: dict[NodeId, App] = {i: App() for i in self.ids}
        self.crashed: set[NodeId] = set()
        self.blocked: set[tuple[NodeId, NodeId]] = set()
        self.queue: list[Flight] = []
        self.sent: list[tuple[NodeId, Any]] = []
        self.validity: Callable[[bytes], bool] = lambda v: not v.startswith(b"BAD")
        self.replicas = {i: self._build(i) for i in self.ids}

    def _build(self, i: NodeId) -> PaxosReplica:
        return PaxosReplica(
            self.config,
            i,
            self.signers[i],
            self.verifier,
            self.validity,
            random.Random(self.rng.random()),
        )

    # -- driving ----------------------------------------------------------------------

    def step(self, i: NodeId, event: Any) -> Output:
        out = self.replicas[i].step(event)
        self.handle(i, out)
        return out

    def handle(self, i: NodeId, out: Output) -> None:
        self.records[i].extend(r.encode() for r in out.persist)  # durable first
        for to, msg in out.send:
            self.sent.append((i, msg))
            targets = [j for j in self.ids if j != i] if to is ALL else [to]
            for j in targets:
                self.queue.append(Flight(i, j, msg.encode()))
        for d in out.deliver:
            self.delivered[i].append(d)
        if self.apply:
            for d in out.deliver:
                root = self.apps[i].apply(d)
                self.step(i, Applied(d.seq, root))
        for want in out.wants:
            self._install(i, want.seq, want.state_root)

    def _install(self, i: NodeId, seq: int, root: bytes) -> None:
        """State transfer: copy a peer's application state at ``seq``."""
        for j in self.ids:
            if self.apps[j].roots.get(seq) == root:
                self.apps[i] = App(
                    roots={k: v for k, v in self.apps[j].roots.items() if k <= seq}, height=seq
                )
                self.step(i, Applied(seq, root))
                return

    def deliver(self, flight: Flight) -> None:
        if flight.dst in self.crashed or (flight.src, flight.dst) in self.blocked:
            return
        self.step(flight.dst, Receive(flight.src, decode_message(flight.data)))

    def deliver_all(self, limit: int = 100_000) -> None:
        for _ in range(limit):
            if not self.queue:
                return
            self.deliver(self.queue.pop(0))
        raise AssertionError("messages kept flowing")

    def tick(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.now += 1
            for i in self.ids:
                if i not in self.crashed:
                    self.step(i, Tick(self.now))
            self.deliver_all()

    def run_until(self, cond: Callable[[], bool], ticks: int = 200) -> None:
        for _ in range(ticks):
            if cond():
                return
            self.tick()
        assert cond(), "condition not reached"

    def propose(self, i: NodeId, value: bytes) -> None:
        self.step(i, Propose(value))

    # -- faults -----------------------------------------------------------------------

    def crash(self, i: NodeId) -> None:
        self.crashed.add(i)
        self.queue = [f for f in self.queue if f.dst != i]

    def restart(self, i: NodeId) -> None:
        """A fresh replica restored from the node's durable records; the app survives."""
        self.crashed.discard(i)
        r = self._build(i)
        r.restore([decode_record(b) for b in self.records[i]])
        self.replicas[i] = r
        app = self.apps[i]
        if app.height:
            self.step(i, Applied(app.height, app.roots[app.height]))

    def partition(self, *groups: list[int]) -> None:
        side = {NodeId(n): k for k, g in enumerate(groups) for n in g}
        self.blocked = {(a, b) for a in self.ids for b in self.ids if side.get(a) != side.get(b)}

    def heal(self) -> None:
        self.blocked = set()

    # -- observations -----------------------------------------------------------------

    def values(self, i: NodeId) -> list[bytes]:
        return [d.value for d in self.delivered[i]]

    def leaders(self) -> set[NodeId | None]:
        return {self.replicas[i].leader() for i in self.ids if i not in self.crashed}

    def check_agreement(self) -> None:
        """Every slot delivered anywhere has one value, and every certificate verifies."""
        by_slot: dict[int, bytes] = {}
        checker = self.replicas[self.ids[0]]
        for i in self.ids:
            for d in self.delivered[i]:
                assert by_slot.setdefault(d.seq, d.value) == d.value, f"slot {d.seq} disagrees"
                assert checker.verify_certificate(d.certificate, d.value), (
                    f"bad certificate at {d.seq}"
                )
                assert len(d.certificate.signatures) >= self.config.quorum


def bench(n: int = 3, values: int = 3000, burst: int = 1, keys: str = "hash") -> float:
    """Decided slots per CPU-second: the leader gets ``burst`` proposals, then every
    message is delivered (through the codec, with signatures and Applied), and so on.
    """
    import time

    c = Cluster(n, checkpoint_interval=64, window=256, batch_values_max=32)
    if keys != "hash":
        c.signers, c.verifier = make_keyring(n, keys, seed=b"bench")  # type: ignore[arg-type]
        c.replicas = {i: c._build(i) for i in c.ids}
    c.run_until(
        lambda: any(
            r.leader() == r.node_id and r.role.value == "leader" for r in c.replicas.values()
        )
    )
    leader = next(i for i, r in c.replicas.items() if r.role.value == "leader")
    start_cpu, start_slots = time.process_time(), len(c.delivered[NodeId(0)])
    for k in range(0, values, burst):
        for j in range(min(burst, values - k)):
            c.propose(leader, b"value-%08d" % (k + j) + b"." * 100)
        c.deliver_all()
    cpu = time.process_time() - start_cpu
    decided = len(c.delivered[NodeId(0)]) - start_slots
    assert decided == values
    return decided / cpu


if __name__ == "__main__":
    import statistics
    import sys

    keys = sys.argv[1] if len(sys.argv) > 1 else "hash"
    for burst in (1, 32):
        runs = [bench(3, 3000, burst, keys) for _ in range(5)]
        print(
            f"n=3 keys={keys} burst={burst}: median {statistics.median(runs):,.0f} decided slots per CPU-second "
            f"(runs: {', '.join(f'{r:,.0f}' for r in runs)})"
        )
