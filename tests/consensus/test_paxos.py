"""Multi-Paxos scenarios through a hand-driven cluster (tests/consensus/paxos_cluster.py)."""

from __future__ import annotations

import random

import pytest

from consensus.contract import NodeId, Receive, Tick
from consensus.paxos.config import PaxosConfig, Role
from consensus.paxos.messages import (
    Accept,
    Accepted,
    Ballot,
    Decided,
    DecidedEntry,
    Nack,
    Prepare,
    Promise,
    decode_message,
    digest_of,
    vote_bytes,
)
from consensus.paxos.records import (
    AcceptedRecord,
    IncarnationRecord,
    PromisedRecord,
    decode_record,
)
from consensus.paxos.replica import PaxosReplica
from tests.consensus.paxos_cluster import Cluster

N0, N1, N2, N3, N4 = (NodeId(i) for i in range(5))


def started(n: int = 3, **kw: object) -> Cluster:
    c = Cluster(n, **kw)  # type: ignore[arg-type]
    c.run_until(lambda: any(c.replicas[i].role is Role.LEADER for i in c.ids))
    c.tick(2)
    return c


def test_normal_case_orders_values_identically_everywhere_with_certificates() -> None:
    c = started(3)
    assert c.leaders() == {N2} and c.replicas[N2].role is Role.LEADER
    for k in range(20):
        c.propose(c.ids[k % 3], b"v%d" % k)
    c.tick(3)
    assert c.values(N0) == c.values(N1) == c.values(N2)
    assert sorted(c.values(N0)) == sorted(b"v%d" % k for k in range(20))
    assert [d.seq for d in c.delivered[N1]] == list(range(1, 21))
    c.check_agreement()


def test_stable_leader_runs_phase_one_once_then_phase_two_only() -> None:
    c = started(3)
    sent_before = len(c.sent)
    for k in range(30):
        c.propose(N2, b"x%d" % k)
        c.deliver_all()
    kinds = {type(m).__name__ for _, m in c.sent[sent_before:]}
    assert "Prepare" not in kinds and "Promise" not in kinds
    assert c.replicas[N2].statistics().counters["phase1_started"] == 1
    assert len(c.values(N0)) == 30


def test_values_queued_during_phase_one_go_out_in_batched_accepts() -> None:
    c = Cluster(3, batch_values_max=8)
    c.now = 1
    for i in c.ids:
        c.step(i, Tick(1))  # node 2 elects itself and sends Prepare...
    c.queue.clear()  # ...which is lost: phase 1 waits for a retransmission
    assert c.replicas[N2].role is Role.CANDIDATE
    for k in range(20):
        c.propose(N2, b"b%d" % k)
    c.run_until(lambda: len(c.values(N0)) == 20)
    accepts = [m for src, m in c.sent if isinstance(m, Accept) and src == N2]
    assert max(len(a.entries) for a in accepts) == 8
    assert c.values(N0) == [b"b%d" % k for k in range(20)]


def test_leader_crash_new_leader_preserves_chosen_values_and_continues() -> None:
    c = started(3)
    for k in range(5):
        c.propose(N0, b"a%d" % k)
    c.tick(2)
    before = c.values(N0)
    c.crash(N2)
    c.run_until(lambda: c.replicas[N1].role is Role.LEADER, ticks=100)
    for k in range(5):
        c.propose(N0, b"b%d" % k)
    c.run_until(lambda: len(c.values(N0)) >= 10)
    assert c.values(N0)[:5] == before
    assert c.values(N0) == c.values(N1)
    c.restart(N2)
    # Slots below the stable checkpoint arrive as state transfer, the rest from the log.
    c.run_until(lambda: c.apps[N2].roots.get(10) == c.apps[N0].roots[10] and c.leaders() == {N2})
    c.check_agreement()


def test_value_chosen_but_not_learned_is_re_proposed_by_the_next_leader() -> None:
    c = started(3)
    c.propose(N2, b"keep-me")
    # Deliver Accept and Accepted, but the leader dies before anyone else learns.
    while c.queue:
        f = c.queue.pop(0)
        if isinstance(decode_message(f.data), Decided):
            continue
        c.deliver(f)
    assert c.values(N2) == [b"keep-me"] and c.values(N0) == []
    c.crash(N2)
    c.run_until(lambda: len(c.values(N0)) == 1 and len(c.values(N1)) == 1, ticks=100)
    assert c.values(N0) == c.values(N1) == [b"keep-me"]
    c.check_agreement()


def test_new_leader_fills_holes_with_no_ops() -> None:
    c = started(3, batch_values_max=1)  # each value leaves at once, in its own Accept
    c.propose(N2, b"lost")  # slot 1: its Accept reaches nobody
    c.queue.clear()
    c.propose(N2, b"kept")  # slot 2: accepted by 0 and 1, never learned
    c.queue = [f for f in c.queue if isinstance(decode_message(f.data), Accept)]
    c.deliver_all()
    c.crash(N2)
    c.queue.clear()
    c.run_until(lambda: len(c.values(N0)) == 2, ticks=100)
    assert c.values(N0) == [b"", b"kept"]
    assert c.values(N1) == [b"", b"kept"]


def test_duel_of_proposers_resolves_to_one_leader_and_agreement() -> None:
    c = started(5)
    assert c.replicas[N4].role is Role.LEADER
    c.partition([0, 1, 2], [3, 4])  # the majority side elects 2; 4 still believes it leads
    c.run_until(lambda: c.replicas[N2].role is Role.LEADER, ticks=100)
    c.propose(N0, b"m1")
    c.tick(3)
    assert c.replicas[N4].role is Role.LEADER  # two leaders with different ballots
    c.heal()
    c.propose(N4, b"m2")  # 4's stale ballot: Nack, preempted, retries higher
    c.propose(N2, b"m3")
    c.run_until(lambda: c.leaders() == {N4} and c.replicas[N4].role is Role.LEADER, ticks=200)
    assert sum(c.replicas[i].role is not Role.FOLLOWER for i in c.ids) == 1
    assert c.replicas[N4].ballot > Ballot(2, 2)
    c.propose(N0, b"m4")
    c.run_until(lambda: all(b"m4" in c.values(i) for i in c.ids), ticks=100)
    assert b"m1" in c.values(N0)
    c.check_agreement()


def test_partition_minority_makes_no_progress_and_heal_makes_progress() -> None:
    c = started(5)
    c.partition([0, 1], [2, 3, 4])
    c.propose(N0, b"minority")
    c.propose(N4, b"majority")
    c.tick(30)
    assert c.values(N0) == c.values(N1) == []
    assert b"majority" in c.values(N4)
    c.heal()
    c.run_until(lambda: all(len(c.values(i)) == len(c.values(N4)) for i in c.ids), ticks=200)
    c.propose(N0, b"after")
    c.run_until(lambda: all(b"after" in c.values(i) for i in c.ids), ticks=100)
    c.check_agreement()


def test_restart_never_contradicts_a_promise() -> None:
    c = started(3)
    c.propose(N2, b"v")
    c.tick(2)
    promised = c.replicas[N0].promised
    assert promised.node == 2
    c.crash(N0)
    c.restart(N0)
    r = c.replicas[N0]
    assert r.promised == promised
    low = Ballot(promised.round - 1 if promised.round else 0, 1)
    prepare = Prepare(N1, low, 1).with_signature(
        c.signers[N1].sign(Prepare(N1, low, 1).signed_bytes(c.config.instance_tag))
    )
    out = r.step(Receive(N1, prepare))
    assert [type(m) for _, m in out.send] == [Nack]
    acc = Accept(N1, low, ((2, b"other"),))
    acc = acc.with_signature(c.signers[N1].sign(acc.signed_bytes(c.config.instance_tag)))
    out = r.step(Receive(N1, acc))
    assert [type(m) for _, m in out.send] == [Nack] and out.persist == []


def test_restart_keeps_accepted_values_for_the_next_phase_one() -> None:
    c = started(3)
    c.propose(N2, b"v")
    c.tick(2)
    c.crash(N0)
    c.restart(N0)
    r = c.replicas[N0]
    higher = Ballot(r.promised.round + 5, 1)
    prep = Prepare(N1, higher, 1)
    prep = prep.with_signature(c.signers[N1].sign(prep.signed_bytes(c.config.instance_tag)))
    out = r.step(Receive(N1, prep))
    ((_, promise),) = [(t, m) for t, m in out.send if isinstance(m, Promise)]
    assert [(e.slot, e.value) for e in promise.entries] == [(1, b"v")]
    assert PromisedRecord(higher) in out.persist


def test_every_promise_and_vote_is_persisted_in_the_same_batch_before_sending() -> None:
    c = Cluster(3)
    durable: dict[NodeId, list[object]] = {i: [] for i in c.ids}
    original = c.handle

    def checking(i: NodeId, out: object) -> None:
        durable[i].extend(out.persist)  # type: ignore[attr-defined]
        for _, m in out.send:  # type: ignore[attr-defined]
            if isinstance(m, Promise):
                assert any(
                    isinstance(r, PromisedRecord) and r.ballot >= m.ballot for r in durable[i]
                )
            if isinstance(m, Accepted):
                for v in m.votes:
                    assert any(
                        isinstance(r, AcceptedRecord)
                        and r.ballot == m.ballot
                        and v.slot in dict(r.entries)
                        for r in durable[i]
                    )
        original(i, out)  # type: ignore[arg-type]

    c.handle = checking  # type: ignore[method-assign]
    c.tick(10)
    for k in range(10):
        c.propose(c.ids[k % 3], b"p%d" % k)
    c.tick(5)
    assert len(c.values(N0)) == 10


def test_messages_from_a_stale_ballot_are_ignored() -> None:
    c = started(3)
    r0 = c.replicas[N0]
    stale = Ballot(0, 1)
    acc = Accept(N1, stale, ((1, b"stale"),))
    acc = acc.with_signature(c.signers[N1].sign(acc.signed_bytes(c.config.instance_tag)))
    out = r0.step(Receive(N1, acc))
    assert [type(m) for _, m in out.send] == [Nack] and out.persist == []
    # A stale Accepted at the leader is dropped too.
    leader = c.replicas[N2]
    d = digest_of(b"stale")
    vote_sig = c.signers[N0].sign(vote_bytes(c.config.instance_tag, 1, stale, d))
    from consensus.paxos.messages import Vote

    accd = Accepted(N0, stale, (Vote(1, d, vote_sig),))
    accd = accd.with_signature(c.signers[N0].sign(accd.signed_bytes(c.config.instance_tag)))
    before = leader.statistics().counters["dropped_stale"]
    assert leader.step(Receive(N0, accd)).deliver == []
    assert leader.statistics().counters["dropped_stale"] == before + 1


def test_duplicated_messages_are_harmless() -> None:
    c = started(3)
    for k in range(10):
        c.propose(N1, b"d%d" % k)
        c.queue = [f for f in c.queue for _ in range(2)]  # every message twice
        c.deliver_all()
    c.tick(3)
    assert c.values(N0) == c.values(N1) == c.values(N2)
    assert len(c.values(N0)) == 10 and len(set(c.values(N0))) == 10
    c.check_agreement()


def test_reordered_and_dropped_messages_are_repaired_by_retransmission() -> None:
    c = started(3)
    rng = random.Random(7)
    for k in range(15):
        c.propose(c.ids[k % 3], b"r%d" % k)
        rng.shuffle(c.queue)
        c.queue = [f for f in c.queue if rng.random() > 0.3]
        c.deliver_all()
    c.run_until(lambda: all(len(c.values(i)) == len(c.values(N2)) for i in c.ids), ticks=100)
    c.check_agreement()


def test_bad_signatures_and_forged_senders_are_dropped() -> None:
    c = started(3)
    r0 = c.replicas[N0]
    forged = Prepare(N1, Ballot(99, 1), 1, b"\x00" * 64)
    assert r0.step(Receive(N1, forged)).send == []
    assert r0.statistics().counters["dropped_signature"] == 1
    good = Prepare(N1, Ballot(99, 1), 1)
    good = good.with_signature(c.signers[N1].sign(good.signed_bytes(c.config.instance_tag)))
    assert r0.step(Receive(N2, good)).send == []  # transport sender differs
    assert r0.step(Receive(N1, "junk")).send == []
    assert r0.statistics().counters["dropped_invalid"] == 2
    other_cluster = Prepare(N1, Ballot(99, 1), 1)
    other_cluster = other_cluster.with_signature(
        c.signers[N1].sign(other_cluster.signed_bytes(b"other"))
    )
    r0.step(Receive(N1, other_cluster))
    assert r0.statistics().counters["dropped_signature"] == 2


def test_invalid_values_are_neither_proposed_nor_accepted() -> None:
    c = started(3)
    c.propose(N2, b"BAD value")
    c.propose(N0, b"BAD too")
    c.propose(N0, b"good")
    c.tick(3)
    assert c.values(N0) == [b"good"]
    leader_ballot = c.replicas[N2].ballot
    acc = Accept(N2, leader_ballot, ((5, b"BAD forced"),))
    acc = acc.with_signature(c.signers[N2].sign(acc.signed_bytes(c.config.instance_tag)))
    out = c.replicas[N0].step(Receive(N2, acc))
    assert out.send == [] and out.persist == []


def test_checkpoints_truncate_the_log_and_keep_it_bounded() -> None:
    c = started(3, checkpoint_interval=8, window=16, batch_values_max=4)
    for k in range(100):
        c.propose(N2, b"c%d" % k)
        c.deliver_all()
    c.tick(3)
    for i in c.ids:
        s = c.replicas[i].statistics()
        assert s.delivered == 100 and s.low == 96
        assert s.accepted_log <= 16 and s.chosen_log <= 16
    c.check_agreement()


def test_without_applied_the_window_caps_the_leader() -> None:
    c = started(3, apply=False, checkpoint_interval=8, window=16)
    for k in range(40):
        c.propose(N2, b"w%d" % k)
    c.tick(5)
    assert len(c.values(N0)) == 16
    assert c.replicas[N2].statistics().pending == 24


def test_long_crashed_replica_catches_up_through_state_transfer() -> None:
    c = started(3, checkpoint_interval=8, window=16)
    c.crash(N0)
    for k in range(60):
        c.propose(N2, b"s%d" % k)
        c.deliver_all()
    c.tick(2)
    c.restart(N0)
    c.run_until(lambda: c.replicas[N0].delivered == 60, ticks=100)
    assert c.apps[N0].roots[60] == c.apps[N2].roots[60]
    c.propose(N0, b"later")
    c.run_until(lambda: all(b"later" in c.values(i) for i in c.ids), ticks=50)
    assert c.values(N0)[-1] == c.values(N1)[-1] == b"later"


def test_lagging_replica_catches_up_from_peers_log() -> None:
    c = started(3, checkpoint_interval=64, window=128)
    c.partition([0], [1, 2])
    for k in range(10):
        c.propose(N2, b"l%d" % k)
    c.tick(3)
    assert c.values(N0) == []
    c.heal()
    c.run_until(lambda: c.values(N0) == c.values(N2), ticks=50)
    assert c.replicas[N0].statistics().counters["catchups_sent"] >= 1


def test_pending_proposals_are_bounded() -> None:
    c = Cluster(3, pending_values_max=4)
    for k in range(10):
        c.propose(N0, b"q%d" % k)  # no leader known yet: held
    s = c.replicas[N0].statistics()
    assert s.pending == 4 and s.counters["proposals_dropped"] == 6
    c.tick(20)
    assert len(c.values(N0)) == 4


def test_conflicting_decision_with_valid_certificate_is_dropped_and_counted() -> None:
    """Two quorum certificates for one slot need Byzantine acceptors (outside the model):
    the replica keeps the value it learned, counts the conflict, and does not crash."""
    c = started(3)
    c.propose(N2, b"real")
    c.tick(2)
    tag = c.config.instance_tag
    b = Ballot(50, 1)
    d = digest_of(b"fake")
    sigs = tuple((i, c.signers[i].sign(vote_bytes(tag, 1, b, d))) for i in (0, 1))
    msg = Decided(N1, (DecidedEntry(1, b, b"fake", sigs),))
    msg = msg.with_signature(c.signers[N1].sign(msg.signed_bytes(tag)))
    before = c.values(N2)
    assert before == [b"real"]
    c.replicas[N2].step(Receive(N1, msg))
    assert c.values(N2) == before
    assert c.replicas[N2].statistics().counters["dropped_conflicting_decision"] == 1


def test_single_replica_cluster_decides_alone() -> None:
    c = Cluster(1)
    c.tick(1)
    c.propose(N0, b"solo")
    c.tick(1)
    assert c.values(N0) == [b"solo"]
    c.check_agreement()


def test_same_seed_same_messages() -> None:
    def trace(seed: int) -> list[bytes]:
        c = Cluster(3, seed=seed)
        c.tick(5)
        for k in range(5):
            c.propose(c.ids[k % 3], b"t%d" % k)
        c.tick(5)
        return [m.encode() for _, m in c.sent]

    assert trace(3) == trace(3)


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        PaxosConfig(n=0)
    with pytest.raises(ValueError):
        PaxosConfig(n=3, window=10, checkpoint_interval=8)
    with pytest.raises(ValueError):
        PaxosReplica(PaxosConfig(n=3), NodeId(3), None, None, bool, random.Random())  # type: ignore[arg-type]


def test_tick_before_anything_else_starts_the_election() -> None:
    c = Cluster(3)
    out = c.replicas[N2].step(Tick(0))
    assert c.replicas[N2].leader() == N2 and c.replicas[N2].role is Role.CANDIDATE
    assert any(isinstance(m, Prepare) for _, m in out.send)


def test_restarted_leader_re_chooses_slots_it_knows_only_from_its_application_state() -> None:
    # Regression (found by random schedules): the leader delivered slot 1, nobody else
    # learned it, and the leader restarted with its application at height 1 but no log.
    c = started(3)
    c.propose(N2, b"only-the-leader-learned")
    c.queue = [f for f in c.queue if not isinstance(decode_message(f.data), Decided)]
    while c.queue:
        f = c.queue.pop(0)
        if not isinstance(decode_message(f.data), Decided):
            c.deliver(f)
    assert c.apps[N2].height == 1 and c.values(N0) == []
    c.crash(N2)
    c.restart(N2)
    c.run_until(lambda: all(c.apps[i].height == 1 for i in c.ids), ticks=100)
    assert c.values(N0) == c.values(N1) == [b"only-the-leader-learned"]
    c.check_agreement()


def _preempt(c: Cluster, target: NodeId, by: NodeId, overwrite: bytes | None = None) -> None:
    """Show ``target`` a Prepare at a ballot higher than any so far, signed by ``by``, and
    with ``overwrite``, an Accept of that value for slot 1 at that ballot."""
    tag = c.config.instance_tag
    b = Ballot(max(r.promised.round for r in c.replicas.values()) + 1, by)
    prep = Prepare(by, b, 1)
    c.step(target, Receive(by, prep.with_signature(c.signers[by].sign(prep.signed_bytes(tag)))))
    if overwrite is not None:
        acc = Accept(by, b, ((1, overwrite),))
        c.step(target, Receive(by, acc.with_signature(c.signers[by].sign(acc.signed_bytes(tag)))))


def test_preempted_leader_proposes_its_overwritten_value_again() -> None:
    c = started(3)
    c.propose(N2, b"orphan")
    c.queue.clear()  # nobody else saw the Accept
    _preempt(c, N2, N1, overwrite=b"")  # and 2's own acceptor now holds a no-op in slot 1
    assert c.replicas[N2].role is Role.FOLLOWER and c.leaders() == {N2}
    c.queue.clear()
    c.run_until(lambda: all(c.values(i) == [b"", b"orphan"] for i in c.ids), ticks=100)
    c.tick(20)
    assert all(c.values(i) == [b"", b"orphan"] for i in c.ids)


def test_preempted_leader_does_not_duplicate_a_value_that_was_chosen() -> None:
    c = started(3)
    c.propose(N2, b"once")
    c.queue = [f for f in c.queue if isinstance(decode_message(f.data), Accept)]
    c.deliver_all()  # 0 and 1 accepted (chosen), their Accepted replies are lost
    c.queue.clear()
    _preempt(c, N2, N1)
    c.queue.clear()
    c.run_until(lambda: all(c.values(i) == [b"once"] for i in c.ids), ticks=100)
    c.propose(N0, b"next")
    c.run_until(lambda: all(c.values(i) == [b"once", b"next"] for i in c.ids), ticks=100)


def test_a_ballot_is_only_usable_by_its_owner() -> None:
    c = started(3)
    tag = c.config.instance_tag
    for msg in (Prepare(N1, Ballot(90, 2), 1), Accept(N1, Ballot(90, 2), ((1, b"x"),))):
        signed = msg.with_signature(c.signers[N1].sign(msg.signed_bytes(tag)))
        out = c.replicas[N0].step(Receive(N1, signed))
        assert out.send == [] and out.persist == []
    assert c.replicas[N0].promised < Ballot(90, 2)


def test_restarted_replica_is_trusted_again_at_once_thanks_to_its_new_incarnation() -> None:
    c = started(3)
    c.tick(60)  # long enough that heartbeat numbers are high
    c.crash(N1)
    c.run_until(lambda: N1 in c.replicas[N0].statistics().suspected, ticks=50)
    c.restart(N1)
    c.tick(4)
    assert N1 not in c.replicas[N0].statistics().suspected
    records = [decode_record(b) for b in c.records[N1]]
    assert records.count(IncarnationRecord(0)) == records.count(IncarnationRecord(1)) == 1
