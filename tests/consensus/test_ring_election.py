"""Chang-Roberts ring election: highest live id wins, message counts, lost tokens."""

from __future__ import annotations

import pytest

from consensus.contract import InvalidMessage, NodeId, Receive, Tick
from consensus.failure_detector import Suspect
from consensus.ring_election import (
    RingElect,
    RingElected,
    RingElection,
    RingOutput,
    decode_ring_message,
)

N = [NodeId(i) for i in range(8)]


class Ring:
    def __init__(self, n: int, timeout: int | None = None) -> None:
        self.nodes = {i: RingElection(N[i], N[:n], timeout_ticks=timeout) for i in range(n)}
        self.queue: list[tuple[int, int, object]] = []
        self.sent = 0
        self.down: set[int] = set()

    def take(self, node: int, out: RingOutput) -> None:
        self.sent += len(out.send)
        self.queue.extend((node, int(d), m) for d, m in out.send)

    def feed(self, node: int, event: Tick | Receive | Suspect) -> None:
        self.take(node, self.nodes[node].step(event))

    def run(self) -> None:
        while self.queue:
            src, dst, msg = self.queue.pop(0)
            if dst not in self.down:
                self.feed(dst, Receive(N[src], msg))

    def leaders(self) -> set[NodeId | None]:
        return {c.leader() for i, c in self.nodes.items() if i not in self.down}


@pytest.mark.parametrize("n", [3, 5, 8])
def test_one_initiator_right_after_the_highest_costs_3n_minus_1(n: int) -> None:
    ring = Ring(n)
    ring.feed(0, Tick(1))          # 0 follows n-1 on the ring: the worst single start
    ring.run()
    assert ring.leaders() == {N[n - 1]}
    assert ring.sent == (2 * n - 1) + n


def test_all_initiate_highest_wins_within_the_quadratic_bound() -> None:
    n = 6
    ring = Ring(n)
    for i in range(n):
        ring.feed(i, Tick(1))
    ring.run()
    assert ring.leaders() == {N[n - 1]}
    assert ring.sent <= n * (n + 1) // 2 + n


def test_crashed_leader_is_skipped_and_replaced() -> None:
    ring = Ring(5)
    for i in range(5):
        ring.feed(i, Tick(1))
    ring.run()
    ring.down.add(4)
    for i in range(4):
        ring.feed(i, Suspect(N[4]))
    ring.run()
    assert ring.leaders() == {N[3]}
    assert ring.nodes[3].successor() == N[0]


def test_lost_token_stalls_without_timeout_and_recovers_with_it() -> None:
    for timeout, expect in ((None, {None}), (10, {N[3]})):
        ring = Ring(4, timeout)
        for i in range(4):
            ring.feed(i, Tick(1))
        ring.queue = [q for q in ring.queue if q[0] != 3]      # the top token is lost
        ring.run()
        for now in range(2, 30):
            for i in range(4):
                ring.feed(i, Tick(now))
            ring.run()
        assert ring.leaders() == expect


def test_forged_or_foreign_messages_are_ignored() -> None:
    node = RingElection(N[1], N[:3])
    node.step(Receive(N[0], RingElected(N[2], N[2])))      # sender mismatch
    node.step(Receive(N[0], RingElect(N[0], N[7])))        # candidate not a member
    assert node.leader() is None and node.statistics().ignored == 2


def test_codec() -> None:
    for m in (RingElect(N[1], N[5]), RingElected(N[0], N[3])):
        assert decode_ring_message(m.encode()) == m
    for bad in (b"", bytes.fromhex("c3090102"), RingElect(N[1], N[2]).encode() + b"\x00"):
        with pytest.raises(InvalidMessage):
            decode_ring_message(bad)
