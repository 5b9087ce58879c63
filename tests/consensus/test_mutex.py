"""Ricart-Agrawala and Lamport mutual exclusion, moved by hand."""

from __future__ import annotations

import random

import pytest

from consensus.contract import InvalidMessage, NodeId, Receive
from consensus.mutex import (
    Acquire,
    LamportMutex,
    MutexAck,
    MutexOutput,
    MutexReply,
    MutexRequest,
    MutexState,
    Release,
    RicartAgrawala,
    decode_mutex_message,
)

N = [NodeId(i) for i in range(5)]


class Net:
    def __init__(self, cls: type[RicartAgrawala] | type[LamportMutex], n: int) -> None:
        self.cores = [cls(N[i], N[:n]) for i in range(n)]
        self.queue: list[tuple[int, int, object]] = []
        self.sent = 0
        self.granted: list[int] = []

    def take(self, node: int, out: MutexOutput) -> None:
        self.sent += len(out.send)
        self.queue.extend((node, int(d), m) for d, m in out.send)
        self.granted.extend(node for _ in out.events)
        assert sum(c.state is MutexState.HELD for c in self.cores) <= 1

    def do(self, node: int, event: Acquire | Release) -> None:
        self.take(node, self.cores[node].step(event))

    def run(self, fifo: bool, rng: random.Random) -> None:
        while self.queue:
            if fifo:   # pick a random link, deliver its oldest message
                src, dst, _ = self.queue[rng.randrange(len(self.queue))]
                i = next(k for k, q in enumerate(self.queue) if q[:2] == (src, dst))
            else:
                i = rng.randrange(len(self.queue))
            src, dst, msg = self.queue.pop(i)
            self.take(dst, self.cores[dst].step(Receive(N[src], msg)))


@pytest.mark.parametrize(("cls", "per_entry", "fifo"),
                         [(RicartAgrawala, 2, False), (LamportMutex, 3, True)])
def test_contending_nodes_enter_one_at_a_time_in_timestamp_order(
        cls: type[RicartAgrawala] | type[LamportMutex], per_entry: int, fifo: bool) -> None:
    n = 4
    for seed in range(20):
        rng = random.Random(seed)
        net = Net(cls, n)
        for i in range(n):
            net.do(i, Acquire())
        entries = 0
        while entries < n:
            net.run(fifo, rng)
            holder = [i for i, c in enumerate(net.cores) if c.state is MutexState.HELD]
            assert len(holder) == 1, f"seed {seed}: deadlock"
            net.do(holder[0], Release())
            entries += 1
        net.run(fifo, rng)
        # all requests were stamped 1: ties break by node id
        assert net.granted == list(range(n))
        assert net.sent == per_entry * (n - 1) * n


def test_ricart_agrawala_defers_reply_to_a_later_request() -> None:
    a, b = RicartAgrawala(N[0], N[:2]), RicartAgrawala(N[1], N[:2])
    req_a = a.step(Acquire()).send[0][1]
    b.step(Acquire())
    out = b.step(Receive(N[0], req_a))          # (1, 0) < (1, 1): b must reply
    assert out.send == [(N[0], MutexReply(N[1], 1))]
    granted = a.step(Receive(N[1], out.send[0][1]))
    assert granted.events and a.state is MutexState.HELD
    late = a.step(Receive(N[1], MutexRequest(N[1], 1)))
    assert late.send == [] and a.deferred == {N[1]: 1}
    released = a.step(Release())
    assert released.send == [(N[1], MutexReply(N[0], 1))]


def test_stale_reply_does_not_grant() -> None:
    a = RicartAgrawala(N[0], N[:2])
    a.step(Acquire())
    a.step(Receive(N[1], MutexReply(N[1], 1)))
    a.step(Release())
    a.step(Acquire())                                        # request stamped 3 now
    out = a.step(Receive(N[1], MutexReply(N[1], 1)))        # the old reply again
    assert out.events == [] and a.state is MutexState.WANTED


def test_bad_inputs() -> None:
    a = LamportMutex(N[0], N[:3])
    with pytest.raises(ValueError):
        a.step(Release())
    a.step(Acquire())
    with pytest.raises(ValueError):
        a.step(Acquire())
    a.step(Receive(N[2], MutexRequest(N[1], 5)))             # sender mismatch: ignored
    a.step(Receive(N[4], MutexRequest(N[4], 5)))             # not a member: ignored
    assert a.statistics().ignored == 2 and N[1] not in a.queue
    with pytest.raises(ValueError):
        RicartAgrawala(N[4], N[:3])


def test_codec() -> None:
    m = MutexRequest(N[3], 2**40)
    assert decode_mutex_message(m.encode()) == m
    for bad in (b"", bytes.fromhex("c3090102"), m.encode() + b"\x00",
                bytes.fromhex("c401810102")):
        with pytest.raises(InvalidMessage):
            decode_mutex_message(bad)


@pytest.mark.parametrize("cls", [RicartAgrawala, LamportMutex])
def test_a_huge_peer_timestamp_cannot_exhaust_the_clock(
    cls: type[RicartAgrawala] | type[LamportMutex],
) -> None:
    """A peer's stamp near uint64's top used to push the clock so high that our own next
    request could not be encoded (InvalidMessage out of step); such stamps are ignored."""
    a = cls(N[0], N[:2])
    for ts in (2**64 - 1, 2**64 - 2, 2**63):
        a.step(Receive(N[1], MutexRequest(N[1], ts)))
    assert a.statistics().ignored == 3 and a.clock < 2**63
    for _ in range(3):
        out = a.step(Acquire())
        assert [type(m) for _, m in out.send] == [MutexRequest]
        _, request = out.send[0]
        a.step(Receive(N[1], MutexReply(N[1], request.ts)))
        a.step(Receive(N[1], MutexAck(N[1], a.clock + 1)))
        assert a.state is MutexState.HELD
        a.step(Release())
