"""Bully election: the highest live id wins, a crashed leader is replaced, messages counted."""

from __future__ import annotations

import pytest

from consensus.contract import InvalidMessage, NodeId, Receive, Tick
from consensus.election import (
    Answer,
    BullyElection,
    Coordinator,
    Election,
    LeaderChanged,
    Phase,
    decode_election_message,
)
from consensus.failure_detector import HeartbeatFailureDetector, Suspect, Trust


class Net:
    """Bully elections over real heartbeat failure detectors, moved by hand."""

    def __init__(self, n: int, *, with_fd: bool = True, timeout: int = 4) -> None:
        ids = [NodeId(i) for i in range(n)]
        self.ids = ids
        self.el = {i: BullyElection(i, ids, timeout_ticks=timeout) for i in ids}
        self.fd = {
            i: HeartbeatFailureDetector(
                i, ids, heartbeat_ticks=1, timeout_ticks=3, timeout_ticks_max=12
            )
            for i in ids
        }
        self.with_fd = with_fd
        self.crashed: set[NodeId] = set()
        self.queue: list[tuple[NodeId, NodeId, object]] = []
        self.now = 0
        self.changes: dict[NodeId, list[LeaderChanged]] = {i: [] for i in ids}

    def feed(self, node: NodeId, event: object) -> None:
        out = self.el[node].step(event)  # type: ignore[arg-type]
        self.changes[node] += out.events
        for to, msg in out.send:
            # Through the codec, as on the wire.
            self.queue.append((node, to, decode_election_message(msg.encode())))

    def deliver_all(self) -> None:
        while self.queue:
            src, dst, msg = self.queue.pop(0)
            if dst not in self.crashed and src not in self.crashed:
                self.feed(dst, Receive(src, msg))

    def tick(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.now += 1
            for i in self.ids:
                if i in self.crashed:
                    continue
                if self.with_fd:
                    out = self.fd[i].step(Tick(self.now))
                    for _, hb in out.send:
                        for j in self.ids:
                            if j != i and j not in self.crashed:
                                self.fd[j].step(Receive(i, hb))
                    for ev in out.events:
                        self.feed(i, ev)
                self.feed(i, Tick(self.now))
            self.deliver_all()

    def leaders(self) -> set[NodeId | None]:
        return {self.el[i].leader() for i in self.ids if i not in self.crashed}

    def sent(self) -> dict[str, int]:
        total = {"Election": 0, "Answer": 0, "Coordinator": 0}
        for e in self.el.values():
            for k, v in e.statistics().sent.items():
                total[k] += v
        return total


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_highest_id_wins_when_all_start_together(n: int) -> None:
    net = Net(n)
    net.tick(10)
    assert net.leaders() == {NodeId(n - 1)}
    assert all(e.phase is Phase.IDLE for e in net.el.values())


def test_leader_crash_leads_to_reelection_of_the_next_highest() -> None:
    net = Net(5)
    net.tick(10)
    net.crashed.add(NodeId(4))
    net.tick(20)
    assert net.leaders() == {NodeId(3)}
    net.crashed.add(NodeId(3))
    net.tick(20)
    assert net.leaders() == {NodeId(2)}


def test_recovered_higher_node_bullies_its_way_back() -> None:
    net = Net(4)
    net.tick(10)
    net.crashed.add(NodeId(3))
    net.tick(20)
    assert net.leaders() == {NodeId(2)}
    net.crashed.discard(NodeId(3))
    net.el[NodeId(3)] = BullyElection(NodeId(3), net.ids, timeout_ticks=4)  # restarted, fresh state
    net.tick(20)
    assert net.leaders() == {NodeId(3)}


def test_best_case_the_second_highest_notices_and_sends_n_minus_2_messages() -> None:
    net = Net(5, with_fd=False)
    net.tick(10)
    before = net.sent()
    net.crashed.add(NodeId(4))
    net.feed(NodeId(3), Suspect(NodeId(4)))  # only node 3 notices
    net.deliver_all()
    after = net.sent()
    assert {k: after[k] - before[k] for k in after} == {
        "Election": 0,
        "Answer": 0,
        "Coordinator": 3,
    }
    assert net.leaders() == {NodeId(3)}


def test_worst_case_the_lowest_notices_and_messages_grow_quadratically() -> None:
    # Node 0 alone suspects the crashed leader 4; nodes 1..3 still send Election to it.
    # Elections: 0->{1,2,3}, 1->{2,3,4}, 2->{3,4}, 3->{4} = 9; Answers: 1+2+3 = 6;
    # node 3 times out and sends Coordinator to {0,1,2} = 3.
    net = Net(5, with_fd=False)
    net.tick(10)
    before = net.sent()
    net.crashed.add(NodeId(4))
    net.feed(NodeId(0), Suspect(NodeId(4)))
    net.deliver_all()
    net.tick(5)
    after = net.sent()
    assert {k: after[k] - before[k] for k in after} == {
        "Election": 9,
        "Answer": 6,
        "Coordinator": 3,
    }
    assert net.leaders() == {NodeId(3)}


def test_lost_coordinator_is_repaired_by_waiting_timeout() -> None:
    net = Net(3, with_fd=False)
    net.tick(1)
    # Drop everything node 2 says once: nodes 0 and 1 got Answers but no Coordinator.
    net.queue.clear()
    e0 = net.el[NodeId(0)]
    net.feed(NodeId(0), Suspect(NodeId(2)))
    net.feed(NodeId(0), Trust(NodeId(2)))
    net.deliver_all()
    net.tick(12)
    assert net.leaders() == {NodeId(2)}
    assert e0.statistics().elections_started >= 2


def test_reannounce_repeats_coordinator_at_its_period() -> None:
    e = BullyElection(
        NodeId(2), [NodeId(0), NodeId(1), NodeId(2)], timeout_ticks=3, reannounce_ticks=5
    )
    first = e.step(Tick(0))
    assert [m for _, m in first.send] == [Coordinator(NodeId(2))] * 2
    assert first.events == [LeaderChanged(NodeId(2))]
    assert e.step(Tick(4)).send == []
    assert len(e.step(Tick(5)).send) == 2


def test_lower_coordinator_is_bullied_and_forged_messages_ignored() -> None:
    e = BullyElection(NodeId(1), [NodeId(0), NodeId(1), NodeId(2)], timeout_ticks=3)
    e.step(Tick(0))
    out = e.step(Receive(NodeId(0), Coordinator(NodeId(0))))
    assert e.leader() != NodeId(0)
    assert out.send == [] or all(isinstance(m, Election) for _, m in out.send)
    e.step(Receive(NodeId(0), Coordinator(NodeId(2))))  # sender mismatch
    e.step(Receive(NodeId(7), Answer(NodeId(7))))  # not a member
    assert e.statistics().ignored == 2


@pytest.mark.parametrize("data", [b"", b"\xc2\x04\x01", b"\xc3\x01\x81\x00", b"\xc1\x01", b"\x01"])
def test_decode_rejects_malformed_messages(data: bytes) -> None:
    with pytest.raises(InvalidMessage):
        decode_election_message(data)


@pytest.mark.parametrize("msg", [Election(NodeId(3)), Answer(NodeId(0)), Coordinator(NodeId(300))])
def test_messages_round_trip(msg: object) -> None:
    assert decode_election_message(msg.encode()) == msg  # type: ignore[attr-defined]
