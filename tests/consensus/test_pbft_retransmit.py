"""Retransmission sends the value only where it may be missing.

A primary's pre-prepare carries the whole value (a block of up to thousands of
transactions). Re-sending it to every replica each period cost bandwidth and receivers'
decoding under load; a replica whose matching prepare or commit the primary holds has it.
"""

from __future__ import annotations

from consensus.contract import NodeId, Receive
from consensus.pbft import PrePrepare
from tests.consensus.cluster import Cluster, Keys


def _retransmitted_pre_prepares(c: Cluster, node: int, ticks: int) -> list[int]:
    before = len(c.sent)
    c.tick(node, n=ticks)
    return sorted(e.dst for e in c.sent[before:] if isinstance(e.msg, PrePrepare))


def test_primary_resends_its_pre_prepare_only_to_replicas_that_did_not_prepare() -> None:
    c = Cluster(4, retransmit_ticks=2)
    c.drop("PrePrepare", to=3)
    c.drop("Commit", to=0)  # the primary cannot finish the seq: it stays unfinished
    c.propose(0, b"block")
    c.deliver_all()
    assert c.delivered(0) == [] and c.delivered(3) == []
    assert _retransmitted_pre_prepares(c, 0, 2) == [3]
    c.heal()
    c.run(6)
    assert all(c.delivered(i) == [b"block"] for i in range(4))


def test_primary_resends_its_pre_prepare_to_everyone_when_nobody_answered() -> None:
    c = Cluster(4, retransmit_ticks=2)
    c.drop("PrePrepare")
    c.propose(0, b"block")
    c.deliver_all()
    assert _retransmitted_pre_prepares(c, 0, 2) == [1, 2, 3]
    c.heal()
    c.run(6)
    assert all(c.delivered(i) == [b"block"] for i in range(4))


def test_primary_resends_to_a_replica_whose_prepare_named_another_digest() -> None:
    c = Cluster(4, retransmit_ticks=2)
    c.drop("Commit", to=0)
    c.drop("Prepare", frm=2, to=0)
    c.propose(0, b"block")
    c.deliver_all()
    keys = Keys(c.config)
    c.step(0, Receive(NodeId(2), keys.prepare(0, 1, b"other block", 2)))
    assert _retransmitted_pre_prepares(c, 0, 2) == [2]
