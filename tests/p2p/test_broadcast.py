"""Broadcast cores: best-effort, Bracha's reliable broadcast, causal delivery, codecs."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p.broadcast import (
    BestEffortBroadcast,
    BrachaBroadcast,
    BroadcastOutput,
    CausalBroadcast,
    CausalMessage,
    Incoming,
    InvalidBroadcastMessage,
    Kind,
    Originate,
    PlainMessage,
    decode_broadcast_message,
)
from p2p.clocks import VectorStamp
from p2p.messages import PeerId

P = [PeerId(i) for i in range(7)]


class Cluster:
    """Moves outputs to inputs by hand; ``hold`` keeps chosen messages back."""

    def __init__(self, cores: dict[int, BestEffortBroadcast | BrachaBroadcast | CausalBroadcast]):
        self.cores = cores
        self.queue: list[tuple[int, int, object]] = []
        self.delivered: dict[int, list[tuple[int, int, bytes]]] = {i: [] for i in cores}

    def take(self, node: int, out: BroadcastOutput) -> None:
        self.queue.extend((node, int(dst), m) for dst, m in out.send)
        self.delivered[node].extend((d.origin, d.seq, d.payload) for d in out.deliver)

    def originate(self, node: int, payload: bytes) -> None:
        self.take(node, self.cores[node].step(Originate(payload)))

    def run(self, rng: random.Random | None = None) -> None:
        while self.queue:
            i = rng.randrange(len(self.queue)) if rng else 0
            src, dst, msg = self.queue.pop(i)
            if dst in self.cores:
                self.take(dst, self.cores[dst].step(Incoming(PeerId(src), msg)))


def test_codec_round_trips_and_rejects() -> None:
    msgs: list[PlainMessage | CausalMessage] = [
        PlainMessage(Kind.SEND, P[1], 0, b"v"), PlainMessage(Kind.READY, P[2], 9, b""),
        CausalMessage(P[1], VectorStamp.of({0: 2, 1: 1}), b"tx")]
    for m in msgs:
        assert decode_broadcast_message(m.encode()) == m
    for bad in (b"", b"\xc0", msgs[0].encode() + b"\x00",
                bytes.fromhex("c50901808080"),            # unknown kind 9
                bytes.fromhex("c6020100820000")):         # non-canonical seq
        with pytest.raises(InvalidBroadcastMessage):
            decode_broadcast_message(bad)
    with pytest.raises(InvalidBroadcastMessage):
        CausalMessage(P[1], VectorStamp.of({0: 1}), b"")     # does not count itself


def test_best_effort_delivers_once_everywhere() -> None:
    c = Cluster({i: BestEffortBroadcast(P[i], P[:3]) for i in range(3)})
    c.originate(0, b"a")
    c.queue.append(c.queue[0])                                 # a duplicate
    c.run()
    assert all(c.delivered[i] == [(0, 0, b"a")] for i in range(3))


def test_bracha_all_honest_deliver_with_2n_squared_messages() -> None:
    n = 4
    c = Cluster({i: BrachaBroadcast(P[i], P[:n], f=1) for i in range(n)})
    c.originate(2, b"block")
    sent = len(c.queue)
    rng = random.Random(5)
    while c.queue:
        src, dst, msg = c.queue.pop(rng.randrange(len(c.queue)))
        out = c.cores[dst].step(Incoming(PeerId(src), msg))
        sent += len(out.send)
        c.take(dst, out)
    assert all(c.delivered[i] == [(2, 0, b"block")] for i in range(n))
    assert sent == (n - 1) + 2 * n * (n - 1)


def test_bracha_equivocating_sender_cannot_split_honest_nodes() -> None:
    # node 3 is Byzantine: SEND a to 0 and 1, SEND b to 2, then echoes/readies each side
    c = Cluster({i: BrachaBroadcast(P[i], P[:4], f=1) for i in range(3)})
    for dst, value in ((0, b"a"), (1, b"a"), (2, b"b")):
        for kind in (Kind.SEND, Kind.ECHO, Kind.READY):
            c.queue.append((3, dst, PlainMessage(kind, P[3], 0, value)))
    c.run(random.Random(1))
    got = {tuple(c.delivered[i]) for i in range(3)}
    assert got == {((3, 0, b"a"),)}


def test_bracha_ignores_relayed_send_and_counts_each_peer_once() -> None:
    core = BrachaBroadcast(P[0], P[:4], f=1)
    out = core.step(Incoming(P[1], PlainMessage(Kind.SEND, P[2], 0, b"x")))   # not origin
    assert out.send == [] and core.statistics().dropped == 1
    for _ in range(3):                   # one peer's repeated READY counts once
        out = core.step(Incoming(P[1], PlainMessage(Kind.READY, P[2], 0, b"x")))
    assert out.deliver == [] and out.send == []
    with pytest.raises(ValueError):
        BrachaBroadcast(P[0], P[:3], f=1)            # n < 3f + 1


def test_causal_holds_back_until_causes_arrive() -> None:
    cores = {i: CausalBroadcast(P[i], P[:3]) for i in range(3)}
    c = Cluster(cores)           # type: ignore[arg-type]
    c.originate(0, b"m1")
    to1 = [q for q in c.queue if q[1] == 1]
    c.queue = [q for q in c.queue if q[1] != 2]          # node 2's copy of m1 is late
    to2_m1 = (0, 2, to1[0][2])
    c.run()                                              # node 1 delivers m1
    c.originate(1, b"m2")                                # m2 depends on m1
    c.run()
    assert [p for _, _, p in c.delivered[2]] == []      # m2 held back at node 2
    assert cores[2].held_back() == 1
    c.queue.append(to2_m1)
    c.run()
    assert [p for _, _, p in c.delivered[2]] == [b"m1", b"m2"]
    assert cores[2].held_back() == 0


def test_causal_one_senders_messages_in_send_order() -> None:
    cores = {i: CausalBroadcast(P[i], P[:2]) for i in range(2)}
    c = Cluster(cores)           # type: ignore[arg-type]
    for k in range(5):
        c.originate(0, b"tx-%d" % k)
    c.queue.reverse()
    c.run()
    assert [p for _, _, p in c.delivered[1]] == [b"tx-%d" % k for k in range(5)]


def test_causal_holdback_is_bounded() -> None:
    core = CausalBroadcast(P[0], P[:2], holdback_max=2)
    for seq in (3, 4, 5):             # all wait for seq 1 and 2
        core.step(Incoming(P[1], CausalMessage(P[1], VectorStamp.of({1: seq}), b"")))
    assert core.held_back() == 2 and core.statistics().dropped == 1


def test_one_origin_cannot_fill_the_holdback_queue_of_everyone() -> None:
    """A faulty peer sending messages that never become deliverable used to fill the shared
    hold-back queue, so every other origin's reordered messages were dropped."""
    core = CausalBroadcast(P[0], P[:4], holdback_max=6)          # 2 held per peer
    for seq in range(5, 11):                                     # never deliverable
        core.step(Incoming(P[1], CausalMessage(P[1], VectorStamp.of({1: seq}), b"")))
    assert core.held_back() == 2 and core.statistics().dropped == 4
    out = core.step(Incoming(P[2], CausalMessage(P[2], VectorStamp.of({2: 2}), b"b")))
    assert out.deliver == [] and core.held_back() == 3             # held, not dropped
    out = core.step(Incoming(P[2], CausalMessage(P[2], VectorStamp.of({2: 1}), b"a")))
    assert [d.payload for d in out.deliver] == [b"a", b"b"] and core.held_back() == 2
    with pytest.raises(ValueError):
        CausalBroadcast(P[0], P[:4], holdback_max=6, holdback_per_origin_max=0)


def test_bracha_forgets_delivered_instances_and_bounds_the_window() -> None:
    core = BrachaBroadcast(P[0], P[:4], f=1, window_seqs=2)
    for seq in range(3):                  # three deliveries from origin 1
        for peer in (1, 2, 3):
            core.step(Incoming(P[peer], PlainMessage(Kind.READY, P[1], seq, b"v")))
    stats = core.statistics()
    assert stats.delivered == 3 and stats.pending == 0
    late = core.step(Incoming(P[2], PlainMessage(Kind.READY, P[1], 0, b"v")))
    assert late.send == [] and late.deliver == []            # forgotten, not re-delivered
    far = core.step(Incoming(P[2], PlainMessage(Kind.ECHO, P[1], 5, b"v")))   # 3 + 2 <= 5
    assert far.send == [] and core.statistics().dropped == 1
    core.step(Incoming(P[2], PlainMessage(Kind.ECHO, P[1], 4, b"v")))        # in the window
    assert core.statistics().pending == 1 and core.statistics().dropped == 1


def test_one_byzantine_peer_cannot_fill_the_bracha_instance_table() -> None:
    # n = 7 with a table of 64: before the per-origin share, junk echoes from peer 6 for
    # every origin's 16-seq window filled the table and starved the later origins
    n, byz = 7, 6
    cores = {i: BrachaBroadcast(P[i], P[:n], f=2, instances_max=64, window_seqs=16)
             for i in range(n - 1)}
    assert all(core.window_seqs == 64 // n for core in cores.values())
    for core in cores.values():
        for origin in range(n):
            for seq in range(16):
                core.step(Incoming(P[byz], PlainMessage(Kind.ECHO, P[origin], seq, b"junk")))
                core.step(Incoming(P[byz], PlainMessage(Kind.READY, P[origin], seq, b"junk")))
        assert core.statistics().pending <= 64
    c = Cluster(cores)                                   # type: ignore[arg-type]
    for origin in range(n - 1):
        for k in range(3):
            c.originate(origin, b"m%d/%d" % (origin, k))
    c.run(random.Random(3))
    want = sorted((o, k, b"m%d/%d" % (o, k)) for o in range(n - 1) for k in range(3))
    assert all(sorted(c.delivered[i]) == want for i in cores)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 2), st.integers(0, 10**6)),
                min_size=1, max_size=40))
def test_causal_delivery_respects_causal_past_in_any_arrival_order(
        steps: list[tuple[bool, int, int]]) -> None:
    """Each step either broadcasts at a node or delivers a random in-flight message."""
    n = 3
    cores = [CausalBroadcast(P[i], P[:n]) for i in range(n)]
    flight: list[tuple[int, int, object]] = []
    delivered: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    past: dict[tuple[int, int], set[tuple[int, int]]] = {}

    def take(node: int, out: BroadcastOutput) -> None:
        flight.extend((node, int(d), m) for d, m in out.send)
        for d in out.deliver:
            key = (int(d.origin), d.seq)
            assert past[key] <= set(delivered[node]), (node, key)
            assert key not in delivered[node]
            delivered[node].append(key)

    for originate, node, pick in steps:
        if originate or not flight:
            seq = sum(1 for o, _ in past if o == node) + 1
            past[(node, seq)] = set(delivered[node])
            take(node, cores[node].step(Originate(b"")))
        else:
            src, dst, msg = flight.pop(pick % len(flight))
            take(dst, cores[dst].step(Incoming(P[src], msg)))
    while flight:
        src, dst, msg = flight.pop()
        take(dst, cores[dst].step(Incoming(P[src], msg)))
    assert all(sorted(d) == sorted(past) for d in delivered)
    assert all(c.held_back() == 0 for c in cores)
