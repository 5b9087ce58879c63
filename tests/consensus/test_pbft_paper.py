"""One test per claim of the PBFT paper (Castro & Liskov), named after the claim."""

from __future__ import annotations

from consensus.contract import Applied, Propose, Receive, Tick
from consensus.pbft import (
    NULL_DIGEST,
    Checkpoint,
    Commit,
    NewView,
    Prepare,
    PrePrepare,
    ViewChange,
    verify_certificate,
)
from tests.consensus.cluster import Cluster, Keys, feed, lone_replica, sent_of

ROOT_A = b"\x0a" * 32
ROOT_B = b"\x0b" * 32


# --- normal case -------------------------------------------------------------------------


def test_replica_rejects_pre_prepare_outside_watermarks() -> None:
    replica, keys = lone_replica(checkpoint_interval=5)  # h = 0, H = 10
    for seq in (0, 11, 1000):
        out = feed(replica, keys.pre_prepare(0, seq, b"x%d" % seq))
        assert not sent_of(out, Prepare)
    assert replica.statistics().dropped_count("outside-watermarks") == 3
    out = feed(replica, keys.pre_prepare(0, 10, b"inside"))
    assert [p.seq for p in sent_of(out, Prepare)] == [10]


def test_replica_rejects_pre_prepare_not_from_primary_or_wrong_view() -> None:
    replica, keys = lone_replica()
    assert not sent_of(feed(replica, keys.pre_prepare(0, 1, b"v", sender=2)), Prepare)
    assert not sent_of(feed(replica, keys.pre_prepare(1, 1, b"v")), Prepare)  # future view: buffered
    stats = replica.statistics()
    assert stats.dropped_count("not-primary") == 1
    assert stats.view == 0


def test_replica_rejects_pre_prepare_with_wrong_digest_or_invalid_value() -> None:
    replica, keys = lone_replica(validity=lambda v: not v.startswith(b"bad"))
    forged = keys.sign(PrePrepare(0, 1, keys.config.digest_of(b"other"), b"value", keys.signers[0].node_id))
    assert not sent_of(feed(replica, forged), Prepare)
    assert not sent_of(feed(replica, keys.pre_prepare(0, 2, b"bad-value")), Prepare)
    stats = replica.statistics()
    assert stats.dropped_count("bad-digest") == 1
    assert stats.dropped_count("invalid-value") == 1


def test_prepared_requires_2f_matching_prepares() -> None:
    replica, keys = lone_replica()  # n=4, f=1: the pre-prepare plus 2 prepares (own included)
    out = feed(replica, keys.pre_prepare(0, 1, b"v"))
    assert len(sent_of(out, Prepare)) == 1 and not sent_of(out, Commit)
    out = feed(replica, keys.prepare(0, 1, b"other", sender=3))  # does not match
    assert not sent_of(out, Commit)
    out = feed(replica, keys.prepare(0, 1, b"v", sender=0))  # the primary does not prepare
    assert not sent_of(out, Commit)
    assert replica.statistics().dropped_count("prepare-from-primary") == 1
    out = feed(replica, keys.prepare(0, 1, b"v", sender=2))
    commits = sent_of(out, Commit)
    assert [(c.view, c.seq, c.digest) for c in commits] == [(0, 1, keys.config.digest_of(b"v"))]


def test_committed_local_requires_2f_plus_1_commits() -> None:
    replica, keys = lone_replica()
    feed(replica, keys.pre_prepare(0, 1, b"v"))
    feed(replica, keys.prepare(0, 1, b"v", sender=2))  # prepared: own commit sent
    out = feed(replica, keys.commit(0, 1, b"v", sender=2))
    assert not out.deliver  # 2 commits (own + 2) < 3
    out = feed(replica, keys.commit(0, 1, b"other", sender=3))
    assert not out.deliver
    out = feed(replica, keys.commit(0, 1, b"v", sender=0))
    assert [(d.seq, d.value) for d in out.deliver] == [(1, b"v")]
    assert len(out.deliver[0].certificate.signatures) == 3


def test_values_are_delivered_in_sequence_order_without_gaps() -> None:
    replica, keys = lone_replica()
    delivered = []
    for seq, value in ((2, b"two"), (1, b"one")):
        feed(replica, keys.pre_prepare(0, seq, value))
        feed(replica, keys.prepare(0, seq, value, sender=2))
        for sender in (0, 2):
            delivered += feed(replica, keys.commit(0, seq, value, sender=sender)).deliver
        if seq == 2:
            assert not delivered  # seq 2 committed, but seq 1 is missing
    assert [(d.seq, d.value) for d in delivered] == [(1, b"one"), (2, b"two")]


def test_delivered_values_carry_valid_certificate() -> None:
    c = Cluster(4)
    for k in range(3):
        c.propose(0, b"value-%d" % k)
    c.deliver_all()
    for i in range(4):
        for d in c.deliveries(i):
            cert = d.certificate
            digest = c.config.digest_of(d.value)
            assert verify_certificate(c.config, c.verifier, cert, digest)
            assert c.replica(i).verify_certificate(cert, digest)
            assert not verify_certificate(c.config, c.verifier, cert, c.config.digest_of(b"else"))
            node, sig = cert.signatures[0]
            bad_sig = bytes([sig[0] ^ 1]) + sig[1:]
            tampered = type(cert)(cert.seq, cert.view, cert.digest, ((node, bad_sig), *cert.signatures[1:]))
            assert not verify_certificate(c.config, c.verifier, tampered, digest)
            short = type(cert)(cert.seq, cert.view, cert.digest, cert.signatures[:-1])
            assert not verify_certificate(c.config, c.verifier, short, digest)


# --- checkpoints and garbage collection ----------------------------------------------------


def test_checkpoint_is_signed_after_every_k_applied_values() -> None:
    c = Cluster(4, checkpoint_interval=2)
    c.drop("Checkpoint")
    for k in range(5):
        c.propose(0, b"v%d" % k)
    c.deliver_all()
    own = [r for r in c.nodes[1].records if isinstance(r, Checkpoint)]
    assert [cp.seq for cp in own] == [2, 4]
    assert own[0].state_root == c.nodes[1].roots[2]


def test_checkpoint_becomes_stable_with_2f_plus_1_matching_messages() -> None:
    replica, keys = lone_replica(checkpoint_interval=1, node=3)
    feed(replica, keys.pre_prepare(0, 1, b"v"))
    for sender in (1, 2):
        feed(replica, keys.prepare(0, 1, b"v", sender=sender))
    for sender in (0, 1):
        feed(replica, keys.commit(0, 1, b"v", sender=sender))
    out = replica.step(Applied(1, ROOT_A))  # own checkpoint: 1 of 3
    assert sent_of(out, Checkpoint)
    feed(replica, keys.checkpoint(1, ROOT_A, sender=0))
    feed(replica, keys.checkpoint(1, ROOT_B, sender=1))  # does not match
    assert replica.statistics().stable_checkpoint == 0
    feed(replica, keys.checkpoint(1, ROOT_A, sender=2))
    assert replica.statistics().stable_checkpoint == 1


def test_stable_checkpoint_garbage_collects_log() -> None:
    c = Cluster(4, checkpoint_interval=4)
    for k in range(6):
        c.propose(0, b"v%d" % k)
    c.deliver_all()
    for i in range(4):
        stats = c.replica(i).statistics()
        assert (stats.low_watermark, stats.high_watermark) == (4, 12)
        assert stats.log_size == 2  # only seqs 5 and 6 remain
    # a message for a collected seq is now outside the watermarks
    keys = Keys(c.config)
    feed(c.replica(1), keys.prepare(0, 3, b"v2", sender=2))
    assert c.replica(1).statistics().dropped_count("outside-watermarks") == 1


def test_lagging_replica_requests_state_at_stable_checkpoint() -> None:
    c = Cluster(4, checkpoint_interval=2, state_wait_ticks=2, retransmit_ticks=2)
    rule = c.drop(to=3)
    for k in range(9):
        c.propose(0, b"v%d" % k)
    c.deliver_all()
    assert len(c.delivered(3)) == 0 and len(c.delivered(0)) == 9
    assert rule.hits > 0
    c.heal()
    c.run(10)
    wants = c.nodes[3].wants
    assert wants, "replica 3 never asked for state"
    assert wants[0].seq % 2 == 0 and wants[0].seq >= 4
    assert len(wants[0].proof) >= c.config.quorum
    assert c.delivered(3) == c.delivered(0)
    assert c.replica(3).statistics().last_executed == 9


def test_lagging_replica_catches_up_with_committed_proofs() -> None:
    c = Cluster(4, retransmit_ticks=2)
    c.drop("Commit", to=3)
    for k in range(3):
        c.propose(0, b"v%d" % k)
    c.deliver_all()
    assert c.delivered(3) == [] and len(c.delivered(0)) == 3
    c.heal()
    c.run(4)
    assert c.delivered(3) == c.delivered(0)
    assert not c.nodes[3].wants  # no state transfer needed: the log was still there


# --- view change ---------------------------------------------------------------------------


def test_backup_timeout_triggers_view_change() -> None:
    c = Cluster(4, view_timeout_ticks=10)
    c.crash(0)
    c.propose(1, b"stuck")
    c.deliver_all()
    c.tick(node=2, n=9)
    assert not c.pending("ViewChange")
    c.tick(node=2, n=1)
    vcs = [e.msg for e in c.pending("ViewChange")]
    assert vcs and all(vc.new_view == 1 and vc.sender == 2 for vc in vcs)


def test_view_change_timeout_doubles() -> None:
    base = 10
    c = Cluster(7, view_timeout_ticks=base, view_timeout_ticks_max=1000)  # f = 2
    c.crash(0)
    c.crash(1)  # the primaries of views 0 and 1
    c.propose(2, b"value")
    c.deliver_all()
    sent_at: dict[int, int] = {}
    for t in range(1, 80):
        c.tick()
        for env in c.pending("ViewChange"):
            if env.src == 3:
                sent_at.setdefault(env.msg.new_view, t)
        c.deliver_all()
        if 2 in sent_at and c.delivered(3):
            break
    assert sent_at[1] == base
    assert sent_at[2] - sent_at[1] == 2 * base
    assert c.delivered(3) == [b"value"]
    assert c.replica(3).view == 2


def test_replica_joins_view_change_after_f_plus_1_view_changes() -> None:
    replica, keys = lone_replica(node=3)
    out = feed(replica, keys.view_change(1, sender=1))
    assert not sent_of(out, ViewChange)
    out = feed(replica, keys.view_change(2, sender=2))
    vcs = sent_of(out, ViewChange)
    assert [vc.new_view for vc in vcs] == [1]  # the smallest view that f+1 replicas want
    assert replica.statistics().phase == "view-change"


def _new_view_from(replica_node: int = 1):
    """Replica 1 (primary of view 1) with view changes from 2 and 3 carrying prepared seqs 1 and 3."""
    replica, keys = lone_replica(node=replica_node)
    certs = [keys.prepared_cert(0, 1, b"one"), keys.prepared_cert(0, 3, b"three")]
    feed(replica, keys.view_change(1, sender=2, prepared=certs))
    out = feed(replica, keys.view_change(1, sender=3, prepared=certs[:1]))
    return replica, keys, out


def test_new_view_fills_gaps_with_null_requests() -> None:
    replica, _, out = _new_view_from()
    (nv,) = sent_of(out, NewView)
    assert [pp.seq for pp in nv.pre_prepares] == [1, 2, 3]
    assert (nv.pre_prepares[1].digest, nv.pre_prepares[1].value) == (NULL_DIGEST, b"")
    assert replica.view == 1 and replica.is_primary


def test_new_primary_reissues_prepared_requests() -> None:
    _, keys, out = _new_view_from()
    (nv,) = sent_of(out, NewView)
    values = {pp.seq: pp.value for pp in nv.pre_prepares}
    assert (values[1], values[3]) == (b"one", b"three")
    assert all(pp.view == 1 and pp.sender == 1 for pp in nv.pre_prepares)
    assert len(nv.view_changes) == keys.config.quorum


def test_backup_rejects_new_view_with_wrong_o() -> None:
    replica, keys = lone_replica(node=2)
    certs = [keys.prepared_cert(0, 1, b"one")]
    vcs = tuple(keys.view_change(1, sender=s, prepared=certs) for s in (1, 2, 3))
    wrong = (keys.pre_prepare(1, 1, b"not-one"),)
    out = feed(replica, keys.sign(NewView(1, vcs, wrong, keys.signers[1].node_id)))
    assert not sent_of(out, Prepare) and replica.view == 0
    assert replica.statistics().dropped_count("invalid-new-view") == 1
    right = (keys.pre_prepare(1, 1, b"one"),)
    out = feed(replica, keys.sign(NewView(1, vcs, right, keys.signers[1].node_id)))
    assert [(p.view, p.seq) for p in sent_of(out, Prepare)] == [(1, 1)]
    assert replica.view == 1


def test_request_prepared_in_view_v_survives_view_change() -> None:
    c = Cluster(4, view_timeout_ticks=5)
    c.drop("Commit")  # everyone prepares, nobody commits in view 0
    c.propose(0, b"precious")
    c.deliver_all()
    assert all(not c.delivered(i) for i in range(4))
    c.heal()
    c.crash(0)
    c.run(20)
    for i in (1, 2, 3):
        assert c.delivered(i) == [b"precious"]
        assert c.replica(i).view >= 1


def test_equivocating_primary_yields_evidence() -> None:
    replica, keys = lone_replica()
    first, second = keys.pre_prepare(0, 1, b"A"), keys.pre_prepare(0, 1, b"B")
    out1 = feed(replica, first)
    out2 = feed(replica, second)
    assert len(sent_of(out1, Prepare)) == 1 and not sent_of(out2, Prepare)
    (ev,) = out2.evidence
    assert (ev.offender, ev.kind) == (0, "equivocation")
    assert {ev.first.digest, ev.second.digest} == {first.digest, second.digest}


def test_double_prepare_and_double_commit_yield_evidence() -> None:
    replica, keys = lone_replica()
    feed(replica, keys.prepare(0, 1, b"A", sender=2))
    out = feed(replica, keys.prepare(0, 1, b"B", sender=2))
    assert [(e.offender, e.kind) for e in out.evidence] == [(2, "double-prepare")]
    feed(replica, keys.commit(0, 1, b"A", sender=3))
    out = feed(replica, keys.commit(0, 1, b"B", sender=3))
    assert [(e.offender, e.kind) for e in out.evidence] == [(3, "double-commit")]


# --- persistence ---------------------------------------------------------------------------


def test_restarted_replica_never_signs_conflicting_vote() -> None:
    c = Cluster(4)
    c.drop(to=2)
    c.drop(to=3)
    c.propose(0, b"A")
    c.deliver_all()  # only replica 1 prepared A at (0, 1)
    assert any(isinstance(r, Prepare) for r in c.nodes[1].records)
    c.crash(1)
    restarted = c.restart(1)
    keys = Keys(c.config)
    out = restarted.step(Receive(keys.signers[0].node_id, keys.pre_prepare(0, 1, b"B")))
    assert not sent_of(out, Prepare)
    assert restarted.statistics().dropped_count("conflicts-own-vote") == 1
    out = restarted.step(Receive(keys.signers[0].node_id, keys.pre_prepare(0, 1, b"A")))
    assert [p.digest for p in sent_of(out, Prepare)] == [c.config.digest_of(b"A")]


def test_restarted_replica_keeps_view_change_and_prepared_certificates() -> None:
    c = Cluster(4, view_timeout_ticks=5)
    c.drop("Commit")
    c.propose(0, b"A")
    c.deliver_all()
    c.tick(node=1, n=5)  # replica 1 alone starts a view change
    assert c.replica(1).statistics().phase == "view-change"
    c.crash(1)
    restarted = c.restart(1)
    stats = restarted.statistics()
    assert (stats.view, stats.phase) == (1, "view-change")
    restarted.step(Tick(c.nodes[1].now + 100))
    (vc,) = [r for r in c.nodes[1].records if isinstance(r, ViewChange)]
    assert [cert.seq for cert in vc.prepared] == [1]


def test_every_signed_vote_is_persisted_before_it_is_sent() -> None:
    # Cluster.step raises if a replica sends a vote it did not persist first.
    c = Cluster(4, checkpoint_interval=2, view_timeout_ticks=5)
    for k in range(5):
        c.propose(0, b"v%d" % k)
    c.deliver_all()
    c.crash(0)
    c.propose(1, b"after")
    c.run(20)
    assert c.delivered(1)[-1] == b"after"
    kinds = {type(r).__name__ for r in c.nodes[1].records}
    assert {"Prepare", "Commit", "Checkpoint", "ViewChange", "PreparedCert", "CheckpointProof"} <= kinds


# --- bad input -------------------------------------------------------------------------------


def test_bad_signature_dropped_and_counted() -> None:
    replica, keys = lone_replica()
    good = keys.prepare(0, 1, b"v", sender=2)
    bad = good.with_signature(bytes(64))
    out = feed(replica, bad)
    assert out.is_empty()
    assert replica.statistics().dropped_count("bad-signature") == 1
    # the genuine one is still accepted afterwards (the forgery left no trace)
    feed(replica, good)
    assert replica.statistics().dropped_count("duplicate") == 0


def test_messages_from_non_members_stale_views_and_garbage_are_dropped() -> None:
    replica, keys = lone_replica()
    replica.step(Receive(keys.signers[0].node_id, Prepare(0, 1, b"\x01" * 32, 9, b"\x00" * 64)))
    replica.step(Receive(keys.signers[0].node_id, b"\xc0garbage"))
    replica.step(Receive(keys.signers[0].node_id, "not a message"))
    feed(replica, keys.view_change(1, sender=2))
    feed(replica, keys.view_change(1, sender=3))  # joins view 1
    feed(replica, keys.prepare(0, 1, b"v", sender=2))  # view 0 is over
    stats = replica.statistics()
    assert stats.dropped_count("non-member") == 1
    assert stats.dropped_count("malformed") == 1
    assert stats.dropped_count("unknown-message") == 1
    assert stats.dropped_count("stale-view") == 1


def test_oversized_value_is_dropped() -> None:
    replica, keys = lone_replica(value_bytes_max=16)
    out = feed(replica, keys.pre_prepare(0, 1, b"x" * 17))
    assert not sent_of(out, Prepare)
    assert replica.statistics().dropped_count("oversized") == 1


def test_unprepared_pre_prepare_of_an_old_view_does_not_keep_the_timer_running() -> None:
    c = Cluster(4, view_timeout_ticks=5)
    c.drop("Prepare")  # seq 1 is pre-prepared in view 0 but never prepared
    c.propose(0, b"lost")
    c.deliver_all()
    c.heal()
    c.crash(0)
    c.tick(n=5, deliver=True)  # timeout -> view 1 with an empty O
    assert all(c.replica(i).view == 1 and c.replica(i).statistics().phase == "normal" for i in (1, 2, 3))
    c.tick(n=100, deliver=True)
    assert all(c.replica(i).view == 1 for i in (1, 2, 3)), "spurious view changes"
    assert all(c.replica(i).statistics().timer_deadline is None for i in (1, 2, 3))


def test_restarted_new_primary_stays_in_the_view_it_started() -> None:
    replica, keys = lone_replica(node=1)  # the primary of view 1
    records = []
    for sender in (2, 3):
        records += feed(replica, keys.view_change(1, sender=sender)).persist
    assert any(isinstance(r, NewView) and not r.pre_prepares for r in records)  # an empty O
    restarted, _ = lone_replica(node=1)
    restarted.restore(records)
    stats = restarted.statistics()
    assert (stats.view, stats.phase) == (1, "normal") and restarted.is_primary
    out = restarted.step(Propose(b"next"))
    assert [(pp.view, pp.seq) for pp in sent_of(out, PrePrepare)] == [(1, 1)]


def test_one_peer_cannot_fill_the_buffer_of_future_view_messages() -> None:
    replica, keys = lone_replica(node=2, future_messages_max=8)  # 2 per sender with n=4
    for seq in range(1, 6):
        feed(replica, keys.prepare(1, seq, b"v", sender=3))
    feed(replica, keys.prepare(1, 1, b"v", sender=0))
    assert replica.statistics().dropped_count("future-full") == 3
    # view 1 starts with seq 1 re-issued: the buffered prepares of 0 and 3 make it prepared
    certs = [keys.prepared_cert(0, 1, b"v")]
    vcs = tuple(keys.view_change(1, sender=s, prepared=certs) for s in (1, 2, 3))
    o_set = (keys.pre_prepare(1, 1, b"v"),)
    out = feed(replica, keys.sign(NewView(1, vcs, o_set, keys.signers[1].node_id)))
    assert replica.view == 1
    assert [(c.view, c.seq) for c in sent_of(out, Commit)] == [(1, 1)]


def test_state_transfer_clears_pending_values_so_they_cannot_force_view_changes() -> None:
    replica, keys = lone_replica(node=3, view_timeout_ticks=5, checkpoint_interval=2)  # H = 4
    replica.step(Propose(b"mine"))  # pending, forwarded to the others
    assert replica.statistics().pending == 1 and replica.statistics().timer_deadline is not None
    proof = [keys.checkpoint(10, ROOT_A, sender=s) for s in (0, 1, 2)]
    out = None
    for cp in proof:
        out = feed(replica, cp)
    assert out is not None and [w.seq for w in out.wants] == [10]
    replica.step(Applied(10, ROOT_A))  # the driver installed the state at 10
    stats = replica.statistics()
    assert (stats.last_executed, stats.stable_checkpoint, stats.pending) == (10, 10, 0)
    assert stats.timer_deadline is None
    for t in range(1, 30):
        assert not sent_of(replica.step(Tick(t)), ViewChange)


def test_statistics_say_what_a_stuck_replica_waits_for() -> None:
    replica, keys = lone_replica(node=2)
    assert replica.statistics().waiting_for == "nothing (idle)"
    feed(replica, keys.pre_prepare(0, 1, b"v"))
    assert replica.statistics().waiting_for == "prepares for seq 1: 1/2 from [2]"
    feed(replica, keys.prepare(0, 1, b"v", sender=3))
    assert replica.statistics().waiting_for == "commits for seq 1: 1/3 from [2]"
    feed(replica, keys.view_change(1, sender=3))
    feed(replica, keys.view_change(1, sender=0))  # f+1: replica 2 joins view 1
    assert replica.statistics().waiting_for == "NewView for view 1 from primary 1"


def test_one_replica_asking_for_ever_higher_views_moves_nobody() -> None:
    replica, keys = lone_replica(node=2)
    for view in range(5, 12):
        out = feed(replica, keys.view_change(view, sender=3))
        assert not sent_of(out, ViewChange)
    stats = replica.statistics()
    assert (stats.view, stats.phase) == (0, "normal")
    assert stats.dropped_count("view-change-flood") == 0  # newer ones replace the oldest
    feed(replica, keys.view_change(6, sender=3))  # older than the 4 it keeps: refused
    assert replica.statistics().dropped_count("view-change-flood") == 1
    out = feed(replica, keys.view_change(9, sender=0))  # a second replica: f+1 agree on >= 9
    assert [vc.new_view for vc in sent_of(out, ViewChange)] == [9]
