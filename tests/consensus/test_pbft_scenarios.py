"""PBFT scenarios for n = 4, 7, 10 with the hand-driven cluster; headlines say what happens."""

from __future__ import annotations

import random

import pytest

from consensus.contract import NodeId, Receive, Tick
from consensus.pbft import Commit
from tests.consensus.cluster import Cluster, Keys

SIZES = [4, 7, 10]


def all_have(c: Cluster, values: list[bytes], nodes: list[int] | None = None) -> bool:
    return all(set(values) <= set(c.delivered(i)) for i in (nodes if nodes is not None else c.live()))


def run_until(c: Cluster, done, ticks: int = 300) -> None:  # type: ignore[no-untyped-def]
    for _ in range(ticks):
        if done():
            return
        c.run(1)
    assert done(), [c.replica(i).statistics() for i in range(len(c.nodes))]


@pytest.mark.parametrize("n", SIZES)
def test_replicas_agree_on_every_value_under_random_delivery_order(n: int) -> None:
    c = Cluster(n, checkpoint_interval=4)
    rng = random.Random(n)
    values = [b"value-%d" % k for k in range(15)]
    for v in values:
        c.propose(rng.randrange(n), v)
        c.deliver_all(rng=rng)
    run_until(c, lambda: all_have(c, values))
    c.assert_agreement()
    assert all(len(c.delivered(i)) == len(values) for i in range(n))


@pytest.mark.parametrize("n", SIZES)
def test_f_crashed_replicas_including_the_primary_do_not_stop_progress(n: int) -> None:
    c = Cluster(n, view_timeout_ticks=6)
    f = c.config.faults
    for i in range(f):
        c.crash(i)  # replica 0 is the primary of view 0
    values = [b"v%d" % k for k in range(5)]
    for k, v in enumerate(values):
        c.propose(f + k % (n - f), v)
    run_until(c, lambda: all_have(c, values))
    c.assert_agreement()
    assert c.replica(n - 1).view >= f  # views 0..f-1 had crashed primaries


def _split_by_primary(n: int, timeout: int, *, tell_both: bool) -> Cluster:
    """Replica 0, the primary, is Byzantine (crashed: it speaks only through the forged
    pre-prepares here): the lower half of the backups get value A at seq 1, the rest B, and
    with ``tell_both`` every backup then also gets the other one."""
    c = Cluster(n, view_timeout_ticks=timeout)
    keys = Keys(c.config)
    c.crash(0)
    for dst in range(1, n):
        value, other = (b"A", b"B") if dst <= n // 2 else (b"B", b"A")
        c.step(dst, Receive(NodeId(0), keys.pre_prepare(0, 1, value)))
        if tell_both:
            c.step(dst, Receive(NodeId(0), keys.pre_prepare(0, 1, other)))
    return c


@pytest.mark.parametrize("n", [4, 7])
def test_primary_equivocates_view_changes_within_timeout(n: int) -> None:
    timeout = 8
    # it also tells everyone about the other value, which honest replicas report
    c = _split_by_primary(n, timeout, tell_both=True)
    c.propose(1, b"honest")
    c.deliver_all()
    assert all(not c.delivered(i) for i in range(1, n))
    evidence = [e for i in range(1, n) for e in c.evidence(i)]
    assert evidence and all((e.offender, e.kind) == (0, "equivocation") for e in evidence)
    run_until(c, lambda: all_have(c, [b"honest"]), ticks=6 * timeout)
    c.assert_agreement()
    # at seq 1 at most one of A / B, never both
    firsts = {c.delivered(i)[0] for i in c.live()}
    assert len(firsts) == 1


@pytest.mark.parametrize("n", [4, 7])
def test_partitioned_minority_catches_up_after_heal(n: int) -> None:
    c = Cluster(n, checkpoint_interval=3, retransmit_ticks=2, state_wait_ticks=2)
    f = c.config.faults
    minority = list(range(n - f, n))
    for m in minority:
        c.drop(to=m)
        c.drop(frm=m)
    values = [b"v%d" % k for k in range(10)]
    for v in values:
        c.propose(0, v)
    c.run(3)
    assert all_have(c, values, nodes=list(range(n - f)))
    assert not any(c.delivered(m) for m in minority)
    c.heal()
    run_until(c, lambda: all_have(c, values))
    c.assert_agreement()


@pytest.mark.parametrize("n", [4, 7])
def test_restarted_replicas_rejoin_and_agree(n: int) -> None:
    c = Cluster(n, checkpoint_interval=3, view_timeout_ticks=6)
    f = c.config.faults
    for k in range(4):
        c.propose(0, b"a%d" % k)
    c.deliver_all()
    for i in range(f):
        c.crash(i)
    for k in range(4):
        c.propose(n - 1, b"b%d" % k)
    c.run(30)
    for i in range(f):
        c.restart(i)
    for k in range(4):
        c.propose(n - 1, b"c%d" % k)
    every = [b"%s%d" % (p, k) for p in (b"a", b"b", b"c") for k in range(4)]
    run_until(c, lambda: all_have(c, every))
    c.assert_agreement()


def test_negative_control_n_equal_3f_forks_under_an_equivocating_primary() -> None:
    """n = 3, f = 1 (quorum 2): two quorums meet only in the Byzantine primary -> a fork."""
    c = Cluster(3, f=1)
    keys = Keys(c.config)
    c.crash(0)
    for dst, value in ((1, b"A"), (2, b"B")):
        for msg in (
            keys.pre_prepare(0, 1, value),
            keys.sign(Commit(0, 1, c.config.digest_of(value), NodeId(0))),
        ):
            c.step(dst, Receive(NodeId(0), msg))
    c.drop(frm=1, to=2)
    c.drop(frm=2, to=1)
    c.deliver_all()
    assert c.delivered(1) == [b"A"] and c.delivered(2) == [b"B"]
    with pytest.raises(AssertionError):
        c.assert_agreement()


def test_same_scenario_with_n_3f_plus_1_does_not_fork() -> None:
    c = Cluster(4)
    keys = Keys(c.config)
    c.crash(0)
    for dst, value in ((1, b"A"), (2, b"B"), (3, b"B")):
        for msg in (
            keys.pre_prepare(0, 1, value),
            keys.sign(Commit(0, 1, c.config.digest_of(value), NodeId(0))),
        ):
            c.step(dst, Receive(NodeId(0), msg))
    c.deliver_all()
    c.run(40)
    c.assert_agreement()
    assert [c.delivered(i)[:1] for i in (1, 2, 3)] == [[b"B"]] * 3


@pytest.mark.parametrize("seed", [1, 2])
def test_seeded_chaos_keeps_agreement_and_recovers_after_heal(seed: int) -> None:
    """Random order, drops, duplicates, crashes and restarts (at most f down); then heal."""
    rng = random.Random(seed)
    n = 4
    c = Cluster(n, checkpoint_interval=5, view_timeout_ticks=10, view_timeout_ticks_max=80, retransmit_ticks=3)
    f = c.config.faults
    made = 0
    for _ in range(700):
        r = rng.random()
        if r < 0.05:
            i = rng.randrange(n)
            if i not in c.crashed:
                c.propose(i, b"val-%d" % made)
                made += 1
        elif r < 0.07 and len(c.crashed) < f:
            c.crash(rng.randrange(n))
        elif r < 0.09 and c.crashed:
            c.restart(rng.choice(sorted(c.crashed)))
        elif r < 0.25:
            for i in c.live():
                c.nodes[i].now += 1
                c.step(i, Tick(c.nodes[i].now))
        elif c.network:
            env = c.network.pop(rng.randrange(len(c.network)))
            if env.dst in c.crashed or rng.random() < 0.15:
                continue
            if rng.random() < 0.05:
                c.network.append(env)
            c.step(env.dst, Receive(NodeId(env.src), env.msg))
        c.assert_agreement()
    for i in sorted(c.crashed):
        c.restart(i)
    c.propose(0, b"final-a")
    c.propose(1, b"final-b")
    run_until(c, lambda: all_have(c, [b"final-a", b"final-b"]), ticks=400)
    c.assert_agreement()


@pytest.mark.parametrize("n", [1, 2, 3])
def test_tiny_clusters_without_fault_tolerance_still_order_values(n: int) -> None:
    c = Cluster(n, checkpoint_interval=2)
    values = [b"v%d" % k for k in range(5)]
    for k, v in enumerate(values):
        c.propose(k % n, v)
    run_until(c, lambda: all_have(c, values), ticks=20)
    assert all(c.delivered(i) == c.delivered(0) for i in range(n))
    assert c.replica(0).statistics().stable_checkpoint == 4


def test_ed25519_cluster_delivers_with_verifiable_certificates() -> None:
    c = Cluster(4, kind="ed25519")
    for k in range(3):
        c.propose(0, b"v%d" % k)
    c.deliver_all()
    assert all(c.delivered(i) == [b"v0", b"v1", b"v2"] for i in range(4))
    d = c.deliveries(2)[0]
    assert c.replica(1).verify_certificate(d.certificate, c.config.digest_of(d.value))


@pytest.mark.parametrize("n", [4, 7])
def test_a_primary_telling_each_backup_one_value_is_exposed_by_the_backups(n: int) -> None:
    """The realistic equivocation: each backup hears only one of the two values, so none
    holds two pre-prepares. Backups that see a vote for the other digest forward the
    pre-prepare they accepted (it carries the primary's signature), and the backups that
    then hold both report the primary."""
    c = _split_by_primary(n, 8, tell_both=False)
    c.deliver_all()
    for i in range(1, n):
        assert [(e.offender, e.kind) for e in c.evidence(i)] == [(0, "equivocation")], i
        assert c.replica(i).pre_prepares_shown >= 1
    # Honest runs never forward a pre-prepare.
    calm = Cluster(n)
    calm.propose(0, b"v")
    calm.deliver_all()
    assert all(calm.replica(i).pre_prepares_shown == 0 for i in range(n))
    assert all(calm.delivered(i) == [b"v"] for i in range(n))
