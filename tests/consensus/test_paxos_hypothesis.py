"""Random schedules: drops, duplicates, reordering, crashes and restarts never break agreement.

Hypothesis draws a schedule of operations over a 3- or 5-replica cluster. After every
operation, every slot delivered anywhere must hold one value with a valid certificate. At the
end the network heals, every replica restarts, and a fresh proposal must be delivered
everywhere (liveness after heal).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.contract import NodeId, Tick
from tests.consensus.paxos_cluster import Cluster

OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "deliver",
                "deliver",
                "deliver",
                "deliver",
                "drop",
                "dup",
                "tick",
                "tick",
                "propose",
                "crash",
                "restart",
                "partition",
                "heal",
            ]
        ),
        st.integers(min_value=0, max_value=1 << 16),
    ),
    min_size=20,
    max_size=160,
)


def run_schedule(n: int, seed: int, ops: list[tuple[str, int]]) -> None:
    c = Cluster(n, seed=seed, checkpoint_interval=4, window=8, batch_values_max=3)
    proposed = 0
    for op, arg in ops:
        node = NodeId(arg % n)
        if op in ("deliver", "drop", "dup") and c.queue:
            k = arg % len(c.queue)
            flight = c.queue.pop(k)  # any message, not only the oldest: reordering
            if op == "dup":
                c.queue.append(flight)
            if op != "drop":
                c.deliver(flight)
        elif op == "tick":
            c.now += 1
            for i in c.ids:
                if i not in c.crashed:
                    c.step(i, Tick(c.now))
        elif op == "propose" and node not in c.crashed:
            proposed += 1
            c.propose(node, b"v%d" % proposed)
        elif op == "crash" and len(c.crashed) < n - 1:
            c.crash(node)
        elif op == "restart" and node in c.crashed:
            c.restart(node)
        elif op == "partition":
            c.partition(
                [i for i in range(n) if (arg >> i) & 1], [i for i in range(n) if not (arg >> i) & 1]
            )
        elif op == "heal":
            c.heal()
        c.check_agreement()
    # Heal everything and require progress.
    c.heal()
    for i in list(c.crashed):
        c.restart(i)
    c.run_until(lambda: len(c.leaders()) == 1, ticks=200)
    c.propose(NodeId(0), b"final")
    c.run_until(lambda: any(b"final" in c.values(i) for i in c.ids), ticks=300)
    (h,) = {d.seq for i in c.ids for d in c.delivered[i] if d.value == b"final"}
    # Every replica reaches that height, from its log or by state transfer, with one state.
    c.run_until(lambda: all(c.apps[i].height >= h for i in c.ids), ticks=300)
    assert len({c.apps[i].roots[h] for i in c.ids}) == 1
    c.check_agreement()


@pytest.mark.parametrize("n", [3, 5])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=1000), ops=OPS)
def test_random_faults_keep_agreement_and_heal_restores_progress(
    n: int, seed: int, ops: list[tuple[str, int]]
) -> None:
    run_schedule(n, seed, ops)
