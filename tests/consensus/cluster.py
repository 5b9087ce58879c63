"""A hand-driven PBFT cluster for tests: outputs are moved to inputs by explicit calls.

    c = Cluster(4)
    c.propose(0, b"block-1")
    c.drop(msg_type="Commit", to=3)      # a rule: matching messages vanish
    c.deliver_all()                      # FIFO until the network is quiet
    c.tick(node=1, n=30)                 # advance one replica's clock
    c.crash(2); c.restart(2)             # restart from the records it persisted
    assert c.delivered(0) == [b"block-1"]

The cluster plays the driver: it keeps each replica's persisted records, "executes" delivered
values into a hash chain (state root after seq = SHA-256(previous root || value)) and feeds
``Applied`` back, and answers ``StateWanted`` by copying a peer's executed prefix (the state
transfer a node would do). Nothing here is clever: it exists so tests read like the paper.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from consensus.contract import (
    ALL,
    Applied,
    Delivery,
    Evidence,
    NodeId,
    Output,
    Propose,
    Receive,
    StateWanted,
    Tick,
)
from consensus.pbft import (
    Checkpoint,
    Commit,
    NewView,
    PbftConfig,
    PbftReplica,
    Prepare,
    PreparedCert,
    PrePrepare,
    ViewChange,
    sign_message,
)
from consensus.signing import make_keyring

GENESIS_ROOT = b"\x00" * 32
#: Messages a replica signs as votes: each must be persisted before it is sent.
VOTES = (PrePrepare, Prepare, Commit, Checkpoint, ViewChange, NewView)


def _persisted_ids(records: Iterable[Any]) -> set[int]:
    ids = set()
    for r in records:
        ids.add(id(r))
        if isinstance(r, NewView):  # the re-issued pre-prepares are persisted inside it
            ids.update(id(pp) for pp in r.pre_prepares)
    return ids


def next_root(root: bytes, value: bytes) -> bytes:
    return hashlib.sha256(root + value).digest()


@dataclass
class Envelope:
    src: int
    dst: int
    msg: Any


@dataclass
class DropRule:
    msg_type: str | None = None
    to: int | None = None
    frm: int | None = None
    predicate: Callable[[Envelope], bool] | None = None
    hits: int = 0

    def matches(self, env: Envelope) -> bool:
        if self.msg_type is not None and type(env.msg).__name__ != self.msg_type:
            return False
        if self.to is not None and env.dst != self.to:
            return False
        if self.frm is not None and env.src != self.frm:
            return False
        return self.predicate is None or self.predicate(env)


@dataclass
class Node:
    replica: PbftReplica
    records: list[Any] = field(default_factory=list)
    executed: list[Delivery] = field(default_factory=list)
    roots: list[bytes] = field(default_factory=lambda: [GENESIS_ROOT])
    evidence: list[Evidence] = field(default_factory=list)
    wants: list[StateWanted] = field(default_factory=list)
    now: int = 0
    persisted: set[int] = field(default_factory=set)


class Cluster:
    """``n`` PBFT replicas and a hand-moved network (see the module docstring)."""

    def __init__(
        self,
        n: int,
        f: int | None = None,
        *,
        kind: str = "hash",
        validity: Callable[[bytes], bool] | None = None,
        auto_apply: bool = True,
        auto_state: bool = True,
        **config: Any,
    ) -> None:
        self.config = PbftConfig(n=n, f=f, **config)
        self.signers, self.verifier = make_keyring(n, kind)  # type: ignore[arg-type]
        self.validity = validity or (lambda v: True)
        self.auto_apply = auto_apply
        self.auto_state = auto_state
        self.nodes = [Node(self._new_replica(i)) for i in range(n)]
        self.network: list[Envelope] = []
        self.sent: list[Envelope] = []
        self.rules: list[DropRule] = []
        self.crashed: set[int] = set()

    def _new_replica(self, i: int) -> PbftReplica:
        return PbftReplica(
            self.config, NodeId(i), self.signers[i], self.verifier, self.validity, random.Random(i)
        )

    def replica(self, i: int) -> PbftReplica:
        return self.nodes[i].replica

    # --- driving -------------------------------------------------------------------------

    def step(self, i: int, event: Any) -> Output:
        """Feed one input to replica ``i`` and act on its output like a driver would."""
        node = self.nodes[i]
        out = node.replica.step(event)
        node.records.extend(out.persist)
        node.persisted.update(_persisted_ids(out.persist))
        for to, msg in out.send:
            if isinstance(msg, VOTES) and msg.sender == i and id(msg) not in node.persisted:
                raise AssertionError(f"node {i} sent {msg!r} without persisting it first")
            targets = [j for j in range(len(self.nodes)) if j != i] if to is ALL else [int(to)]
            for j in targets:
                env = Envelope(i, j, msg)
                self.sent.append(env)
                self.network.append(env)
        node.evidence.extend(out.evidence)
        for d in out.deliver:
            assert d.seq == len(node.executed) + 1, (i, d.seq, len(node.executed))
            node.executed.append(d)
            node.roots.append(next_root(node.roots[-1], d.value))
            if self.auto_apply:
                self.step(i, Applied(d.seq, node.roots[-1]))
        node.wants.extend(out.wants)
        if self.auto_state:
            for want in out.wants:
                self._transfer_state(i, want)
        return out

    def _transfer_state(self, i: int, want: StateWanted) -> None:
        node = self.nodes[i]
        if len(node.executed) >= want.seq:
            return
        for j, peer in enumerate(self.nodes):
            if j != i and len(peer.executed) >= want.seq and peer.roots[want.seq] == want.state_root:
                node.executed = list(peer.executed[: want.seq])
                node.roots = list(peer.roots[: want.seq + 1])
                self.step(i, Applied(want.seq, want.state_root))
                return

    def propose(self, i: int, value: bytes) -> Output:
        return self.step(i, Propose(value))

    def drop(
        self,
        msg_type: str | None = None,
        *,
        to: int | None = None,
        frm: int | None = None,
        predicate: Callable[[Envelope], bool] | None = None,
    ) -> DropRule:
        """Make matching messages vanish from now on (until :meth:`heal`)."""
        rule = DropRule(msg_type, to, frm, predicate)
        self.rules.append(rule)
        return rule

    def heal(self) -> None:
        self.rules.clear()

    def pending(self, msg_type: str | None = None) -> list[Envelope]:
        return [e for e in self.network if msg_type is None or type(e.msg).__name__ == msg_type]

    def deliver_all(self, max_messages: int = 200_000, rng: random.Random | None = None) -> int:
        """Deliver messages (FIFO, or in random order with ``rng``) until none are left."""
        count = 0
        while self.network:
            if count >= max_messages:
                raise AssertionError("network did not quiesce")
            idx = rng.randrange(len(self.network)) if rng is not None else 0
            env = self.network.pop(idx)
            if env.dst in self.crashed:
                continue
            dropped = False
            for rule in self.rules:
                if rule.matches(env):
                    rule.hits += 1
                    dropped = True
                    break
            if dropped:
                continue
            self.step(env.dst, Receive(NodeId(env.src), env.msg))
            count += 1
        return count

    def tick(self, node: int | Iterable[int] | None = None, n: int = 1, deliver: bool = False) -> None:
        """Advance the clocks of ``node`` (default: every live node) by ``n`` ticks."""
        if node is None:
            nodes = [i for i in range(len(self.nodes)) if i not in self.crashed]
        elif isinstance(node, int):
            nodes = [node]
        else:
            nodes = list(node)
        for _ in range(n):
            for i in nodes:
                self.nodes[i].now += 1
                self.step(i, Tick(self.nodes[i].now))
            if deliver:
                self.deliver_all()

    def run(self, ticks: int) -> None:
        """Tick every live node and deliver everything after each tick."""
        self.tick(n=ticks, deliver=True)

    def crash(self, i: int) -> None:
        self.crashed.add(i)
        self.network = [e for e in self.network if e.dst != i]

    def restart(self, i: int) -> PbftReplica:
        """A fresh replica restored from ``i``'s persisted records; its ledger head is fed back."""
        node = self.nodes[i]
        node.replica = self._new_replica(i)
        node.replica.restore(list(node.records))
        node.persisted = _persisted_ids(node.records)
        self.crashed.discard(i)
        head = len(node.executed)
        self.step(i, Tick(node.now))
        if head:
            self.step(i, Applied(head, node.roots[head]))
        return node.replica

    # --- observing -----------------------------------------------------------------------

    def delivered(self, i: int) -> list[bytes]:
        return [d.value for d in self.nodes[i].executed]

    def deliveries(self, i: int) -> list[Delivery]:
        return list(self.nodes[i].executed)

    def evidence(self, i: int) -> list[Evidence]:
        return list(self.nodes[i].evidence)

    def live(self) -> list[int]:
        return [i for i in range(len(self.nodes)) if i not in self.crashed]

    def assert_agreement(self) -> None:
        """No two replicas executed different values at one sequence number."""
        logs = [self.delivered(i) for i in range(len(self.nodes))]
        for a in logs:
            for b in logs:
                common = min(len(a), len(b))
                assert a[:common] == b[:common], (a, b)


# --- builders for tests of a single replica ---------------------------------------------


class Keys:
    """Every replica's signer, so tests can forge what any replica would send."""

    def __init__(self, config: PbftConfig, kind: str = "hash") -> None:
        self.config = config
        self.signers, self.verifier = make_keyring(config.n, kind)  # type: ignore[arg-type]

    def sign(self, msg: Any) -> Any:
        return sign_message(msg, self.signers[msg.sender], self.config.instance_tag)

    def pre_prepare(self, view: int, seq: int, value: bytes, sender: int | None = None) -> PrePrepare:
        primary = self.config.primary_of(view) if sender is None else sender
        pp = PrePrepare(view, seq, self.config.digest_of(value), value, NodeId(primary))
        signed: PrePrepare = self.sign(pp)
        return signed

    def prepare(self, view: int, seq: int, value: bytes, sender: int) -> Prepare:
        signed: Prepare = self.sign(Prepare(view, seq, self.config.digest_of(value), NodeId(sender)))
        return signed

    def commit(self, view: int, seq: int, value: bytes, sender: int) -> Commit:
        signed: Commit = self.sign(Commit(view, seq, self.config.digest_of(value), NodeId(sender)))
        return signed

    def checkpoint(self, seq: int, root: bytes, sender: int) -> Checkpoint:
        signed: Checkpoint = self.sign(Checkpoint(seq, root, NodeId(sender)))
        return signed

    def prepared_cert(self, view: int, seq: int, value: bytes) -> PreparedCert:
        primary = self.config.primary_of(view)
        backups = [i for i in range(self.config.n) if i != primary][: self.config.quorum - 1]
        return PreparedCert(
            self.pre_prepare(view, seq, value), tuple(self.prepare(view, seq, value, b) for b in backups)
        )

    def view_change(
        self, new_view: int, sender: int, prepared: Sequence[PreparedCert] = (), stable_seq: int = 0,
        proof: Sequence[Checkpoint] = (),
    ) -> ViewChange:
        signed: ViewChange = self.sign(
            ViewChange(new_view, stable_seq, tuple(proof), tuple(prepared), NodeId(sender))
        )
        return signed


def lone_replica(
    n: int = 4, node: int = 1, validity: Callable[[bytes], bool] | None = None, **config: Any
) -> tuple[PbftReplica, Keys]:
    cfg = PbftConfig(n=n, **config)
    keys = Keys(cfg)
    replica = PbftReplica(
        cfg, NodeId(node), keys.signers[node], keys.verifier, validity or (lambda v: True), random.Random(0)
    )
    return replica, keys


def feed(replica: PbftReplica, msg: Any, sender: int | None = None) -> Output:
    return replica.step(Receive(NodeId(msg.sender if sender is None else sender), msg))


def sent_of(out: Output, cls: type) -> list[Any]:
    return [m for _, m in out.send if isinstance(m, cls)]
