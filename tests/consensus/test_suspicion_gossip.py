"""Suspicion gossip: quorum confirmation, Byzantine reporters, anti-entropy, codec."""

from __future__ import annotations

import random

import pytest
import rlp

from consensus.contract import InvalidMessage, NodeId, Receive, Tick
from consensus.failure_detector import Suspect, Trust
from consensus.suspicion_gossip import (
    Cleared,
    Confirmed,
    SuspicionGossip,
    SuspicionReport,
    decode_suspicion_report,
)

N = [NodeId(i) for i in range(4)]


def _cluster(quorum: int = 2) -> dict[NodeId, SuspicionGossip]:
    return {n: SuspicionGossip(n, N, quorum, random.Random(n)) for n in N}


def _deliver(nodes: dict[NodeId, SuspicionGossip], sender: NodeId,
             sends: list[tuple[NodeId, SuspicionReport]]) -> list[object]:
    events: list[object] = []
    for dst, report in sends:
        events += nodes[dst].step(Receive(sender, decode_suspicion_report(report.encode()))).events
    return events


def test_one_reporter_is_not_enough_two_confirm_and_a_trust_clears() -> None:
    nodes = _cluster(quorum=2)
    out = nodes[N[0]].step(Suspect(N[3]))
    assert out.events == [] and len(out.send) == 3
    _deliver(nodes, N[0], out.send)
    assert all(not g.confirmed() for g in nodes.values())
    out = nodes[N[1]].step(Suspect(N[3]))
    assert out.events == [Confirmed(N[3])]
    events = _deliver(nodes, N[1], out.send)
    assert events.count(Confirmed(N[3])) == 3        # nodes 0, 2 and 3 itself
    assert all(g.confirmed() == {N[3]} for g in nodes.values())
    out = nodes[N[0]].step(Trust(N[3]))
    assert Cleared(N[3]) in out.events
    _deliver(nodes, N[0], out.send)
    assert all(not g.confirmed() for g in nodes.values())


def test_a_byzantine_reporter_alone_cannot_confirm_anyone() -> None:
    g = SuspicionGossip(N[0], N, quorum=2, rng=random.Random(1))
    liar = SuspicionReport(N[3], 7, (N[0], N[1], N[2]))
    assert g.step(Receive(N[3], liar)).events == []
    assert g.reporters_of(N[1]) == {N[3]} and g.confirmed() == frozenset()
    # Forged authorship, a non-member suspect, an older version: all ignored.
    g.step(Receive(N[3], SuspicionReport(N[2], 9, (N[1],))))
    g.step(Receive(N[3], SuspicionReport(N[3], 8, (NodeId(77),))))
    g.step(Receive(N[3], SuspicionReport(N[3], 6, ())))
    assert g.ignored == 3 and g.reporters_of(N[1]) == {N[3]}


def test_anti_entropy_repairs_a_lost_report() -> None:
    nodes = _cluster(quorum=2)
    nodes[N[0]].step(Suspect(N[3]))                   # change broadcast lost entirely
    seen = False
    for now in range(0, 60):
        out = nodes[N[0]].step(Tick(now))
        _deliver(nodes, N[0], out.send)
        if all(N[0] in nodes[n].reporters_of(N[3]) for n in N[1:]):
            seen = True
            break
    assert seen


def test_no_gossip_before_any_suspicion() -> None:
    g = SuspicionGossip(N[0], N, quorum=2, rng=random.Random(1))
    assert all(not g.step(Tick(t)).send for t in range(30))


def test_codec_is_canonical() -> None:
    r = SuspicionReport(N[1], 3, (N[0], N[2]))
    assert decode_suspicion_report(r.encode()) == r
    for bad in (b"", rlp.encode([1, 3, [2, 0]]), rlp.encode([1, 3, [2, 2]]),
                rlp.encode([1, 3]), rlp.encode([b"\x00\x01", 3, []])):
        with pytest.raises(InvalidMessage):
            decode_suspicion_report(bad)
    with pytest.raises(ValueError):
        SuspicionGossip(N[0], N, quorum=9, rng=random.Random(0))


def test_a_reporter_we_suspect_no_longer_counts() -> None:
    """A crashed reporter's last report is stale: it must not help confirm anyone."""
    g = SuspicionGossip(N[0], N, quorum=2, rng=random.Random(2), ignore_suspected_reporters=True)
    g.step(Receive(N[3], SuspicionReport(N[3], 1, (N[1],))))    # node 3 suspected node 1
    assert g.step(Receive(N[2], SuspicionReport(N[2], 1, (N[1],)))).events == [Confirmed(N[1])]
    out = g.step(Suspect(N[3]))             # then node 3 went silent here
    assert Cleared(N[1]) in out.events and g.confirmed() == {N[3]} - {N[3]}
    assert g.reporters_of(N[1]) == {N[2], N[3]}   # still heard, just not counted
    out = g.step(Trust(N[3]))               # back: its newest report counts again
    assert out.events == [Confirmed(N[1])]


def test_by_default_a_suspected_reporters_report_still_counts() -> None:
    g = SuspicionGossip(N[0], N, quorum=2, rng=random.Random(2))
    g.step(Receive(N[3], SuspicionReport(N[3], 1, (N[1],))))
    g.step(Receive(N[2], SuspicionReport(N[2], 1, (N[1],))))
    g.step(Suspect(N[3]))
    assert N[1] in g.confirmed()
