"""Catch-up proofs go only to peers really behind, never for instances still in flight."""

from __future__ import annotations

from consensus.contract import NodeId
from consensus.pbft import CommittedProof, Status, sign_message
from tests.consensus.cluster import Cluster, feed, sent_of


def _status_from(c: Cluster, sender: int, last_executed: int) -> Status:
    st: Status = sign_message(Status(0, last_executed, 0, NodeId(sender)), c.signers[sender],
                              c.config.instance_tag)
    return st


def test_no_proof_for_seqs_executed_less_than_a_status_period_ago() -> None:
    c = Cluster(4, retransmit_ticks=4)
    c.drop("Commit", to=3)
    for k in range(3):
        c.propose(0, b"v%d" % k)
    c.deliver_all()
    assert len(c.delivered(0)) == 3 and c.delivered(3) == []
    fresh = feed(c.replica(0), _status_from(c, 3, 0))
    assert sent_of(fresh, CommittedProof) == []  # just executed: most likely still in flight at 3
    c.tick(0, n=4)
    ripe = feed(c.replica(0), _status_from(c, 3, 0))
    proofs = sent_of(ripe, CommittedProof)
    assert [p.seq for p in proofs] == [1, 2, 3]
    assert all(dest == 3 for dest, m in ripe.send if isinstance(m, CommittedProof))


def test_only_the_ripe_prefix_is_proved() -> None:
    c = Cluster(4, retransmit_ticks=4)
    c.drop("Commit", to=3)
    c.propose(0, b"old")
    c.deliver_all()
    c.tick(0, n=4)
    c.propose(0, b"new")
    c.deliver_all()
    assert len(c.delivered(0)) == 2
    out = feed(c.replica(0), _status_from(c, 3, 0))
    assert [p.seq for p in sent_of(out, CommittedProof)] == [1]


def test_a_lagging_replica_still_catches_up_after_the_heal() -> None:
    c = Cluster(4, retransmit_ticks=2)
    c.drop("Commit", to=3)
    for k in range(5):
        c.propose(0, b"v%d" % k)
    c.deliver_all()
    c.heal()
    c.run(8)
    assert c.delivered(3) == c.delivered(0)
    assert any(isinstance(e.msg, CommittedProof) and e.dst == 3 for e in c.sent)
