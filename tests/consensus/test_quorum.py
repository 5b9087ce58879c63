"""Quorum arithmetic, checked against a naive search over replica subsets."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from consensus.contract import max_faulty, quorum_size
from consensus.pbft import PbftConfig


def naive_min_intersection(n: int, q: int) -> int:
    """Smallest overlap of two q-subsets of n replicas, by enumeration."""
    members = range(n)
    first = set(range(q))  # by symmetry one quorum can be fixed
    return min(len(first & set(other)) for other in itertools.combinations(members, q))


def naive_smallest_safe_quorum(n: int, f: int) -> int | None:
    """Smallest q whose quorums always share >= f+1 replicas, if any q <= n works."""
    for q in range(1, n + 1):
        if naive_min_intersection(n, q) >= f + 1:
            return q
    return None


@given(f=st.integers(min_value=0, max_value=3), extra=st.integers(min_value=0, max_value=3))
def test_quorums_intersect_in_an_honest_replica_when_n_at_least_3f_plus_1(f: int, extra: int) -> None:
    n = 3 * f + 1 + extra
    cfg = PbftConfig(n=n, f=f)
    assert cfg.is_safe
    assert cfg.quorum == n - f
    assert naive_min_intersection(n, cfg.quorum) >= f + 1
    assert cfg.quorum <= n - f  # live: the honest replicas alone form a quorum


@given(f=st.integers(min_value=1, max_value=3))
def test_counterexample_exists_when_n_is_3f(f: int) -> None:
    n = 3 * f
    cfg = PbftConfig(n=n, f=f)
    assert not cfg.is_safe
    # two quorums that share only f replicas, which may all be Byzantine
    assert naive_min_intersection(n, cfg.quorum) <= f
    # and no quorum that is still live (<= n - f) is safe
    safe = naive_smallest_safe_quorum(n, f)
    assert safe is None or safe > n - f


@given(n=st.integers(min_value=1, max_value=11))
def test_contract_quorum_size_is_the_smallest_safe_and_live_quorum(n: int) -> None:
    f = max_faulty(n)
    q = quorum_size(n)
    assert q == naive_smallest_safe_quorum(n, f)
    assert q <= n - f
    assert quorum_size(n, byzantine=False) == n // 2 + 1
    assert naive_min_intersection(n, quorum_size(n, byzantine=False)) >= 1


def test_default_f_and_the_negative_control_configuration() -> None:
    assert [PbftConfig(n=n).faults for n in (1, 3, 4, 7, 10)] == [0, 0, 1, 2, 3]
    control = PbftConfig(n=3, f=1)
    assert (control.quorum, control.weak_quorum, control.is_safe) == (2, 2, False)
