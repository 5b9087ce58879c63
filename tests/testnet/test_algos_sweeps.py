"""Seeded sweeps of the classic algorithms: every checker holds, with the figures printed."""

from __future__ import annotations

import pytest

from testnet.sim.algos import AlgoConfig, sweep_algo

# (algo, node counts, seeds per node count)
SWEEPS = [
    ("lamport", (3, 5), 2),
    ("vector", (3, 5), 2),
    ("bracha", (4, 7), 5),
    ("causal", (3, 5), 6),
    ("ricart-agrawala", (3, 5), 8),
    ("lamport-mutex", (3, 5), 8),
    ("ring", (4, 7), 12),
    ("bully", (4, 7), 12),
]


@pytest.mark.parametrize(("algo", "sizes", "seeds"), SWEEPS, ids=[s[0] for s in SWEEPS])
def test_sweep_has_no_violations(algo: str, sizes: tuple[int, ...], seeds: int) -> None:
    for n in sizes:
        report = sweep_algo(AlgoConfig(algo, nodes=n), range(seeds))
        print(report.line())
        failed = [r.line() for r in report.results if r.status != "pass"]
        assert not failed, "\n".join(failed)
        assert report.total("messages") > 0


def test_clock_sweep_checks_many_ordered_and_concurrent_pairs() -> None:
    report = sweep_algo(AlgoConfig("vector", nodes=4), range(1))
    assert report.count("pass") == 1
    assert report.total("ordered_pairs") > 1000 and report.total("concurrent_pairs") > 100
    assert report.total("vector_violations") == 0 and report.total("clock_violations") == 0
    # Lamport time orders concurrent events too: it cannot tell them apart
    assert report.total("concurrent_ordered_by_lamport") > 0


def test_bracha_sweep_met_an_equivocating_sender() -> None:
    report = sweep_algo(AlgoConfig("bracha", nodes=7), range(2))
    assert report.count("pass") == 2
    assert report.total("byzantine") == 2 * 2
    for r in report.results:
        assert r.figures["messages_per_broadcast"] == r.figures["textbook_per_broadcast"]


@pytest.mark.parametrize(("algo", "per_entry"), [("ricart-agrawala", 2), ("lamport-mutex", 3)])
def test_mutex_costs_the_textbook_messages_per_entry(algo: str, per_entry: int) -> None:
    for n in (3, 5):
        report = sweep_algo(AlgoConfig(algo, nodes=n), range(3))
        assert report.count("pass") == 3
        assert report.median("messages_per_entry") == per_entry * (n - 1)
        assert report.total("out_of_order_grants") == 0


def test_ring_messages_stay_within_the_all_initiate_bound() -> None:
    report = sweep_algo(AlgoConfig("ring", nodes=7), range(8))
    for r in report.results:
        for phase in ("phase1", "phase2"):
            if f"{phase}_messages" in r.counts:
                assert (r.counts[f"{phase}_messages"]
                        <= r.figures[f"{phase}_textbook_all_initiate"])


def test_same_seed_same_digest() -> None:
    for algo in ("bracha", "causal", "ring", "ricart-agrawala"):
        a = sweep_algo(AlgoConfig(algo, nodes=4), [5]).results[0]
        b = sweep_algo(AlgoConfig(algo, nodes=4), [5]).results[0]
        c = sweep_algo(AlgoConfig(algo, nodes=4), [6]).results[0]
        assert a.digest == b.digest and a.counts == b.counts
        assert a.digest != c.digest


def test_ring_of_nine_with_slow_laps_settles() -> None:
    # seed 1 once restarted elections that were only slow (timeout shorter than two laps)
    report = sweep_algo(AlgoConfig("ring", nodes=9), [1])
    assert report.count("pass") == 1, report.results[0].line()
    assert report.results[0].counts["sent_RingElected"] == 9 + 8    # one lap per phase
