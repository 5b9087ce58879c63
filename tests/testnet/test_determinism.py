"""Same seed, same trace digest; different seeds, different digests."""

from __future__ import annotations

import pytest

from testnet.sim.runner import SimConfig, run

CASES = [
    SimConfig(engine="toy", nodes=4, ticks=120),
    SimConfig(engine="toy", nodes=4, byzantine=("twins",), faults="twins", ticks=120),
    SimConfig(engine="pbft", nodes=4, byzantine=("equivocate",), ticks=120),
    SimConfig(engine="pbft", nodes=4, byzantine=("flood",), ticks=120, faults="lossy"),
    SimConfig(engine="paxos", nodes=3, ticks=120, faults="crash"),
]


@pytest.mark.parametrize("cfg", CASES, ids=lambda c: f"{c.engine}-{'-'.join(c.byzantine)}")
def test_same_seed_same_digest_and_other_seeds_differ(cfg: SimConfig) -> None:
    runs = [run(SimConfig(**{**cfg.__dict__, "seed": seed})) for seed in (11, 11, 12)]
    a, b, c = runs
    assert a.digest == b.digest
    assert a.heights == b.heights and a.counts == b.counts and a.status == b.status
    assert a.faults == b.faults
    assert a.digest != c.digest
    assert a.counts["trace_events"] > 100
