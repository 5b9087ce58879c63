"""Seeded sweeps: up to f Byzantine replicas under random faults, 0 violations, live after heal.

Each sweep prints ``sweep NAME: N seeds, 0 safety, 0 liveness, 0 crash`` to the terminal, so
CI logs carry the counts. Seeds run in ``PHALANX_SIM_JOBS`` processes (default: up to 2).
Sizes (seeds x ticks) are chosen so this file stays within its CI budget (~200 CPU-seconds
in all: about 2 minutes with ``PHALANX_SIM_JOBS=2`` on two free cores); a failing seed
replays with the printed ``phalanx sim ...`` command.
"""

from __future__ import annotations

import pytest

from consensus.byzantine import BEHAVIOURS, TWINS
from testnet.sim.runner import SimConfig
from testnet.sim.sweep import SweepReport, sweep

SEEDS = 200            # per PBFT behaviour, twins; run in two halves (per-test timeout)
HALVES = [range(0, SEEDS // 2), range(SEEDS // 2, SEEDS)]
TICKS = 40             # safety phase; liveness then needs 2 new deliveries per honest replica
PROPOSE_EVERY = 5
PBFT_KINDS = sorted(set(BEHAVIOURS) - {TWINS})
PAIRS_N7 = [("equivocate", "double-vote"), ("silent", "wrong-checkpoint"),
            ("view-change-spam", "replay"), ("flood", "bad-signature"),
            ("slow-primary", "twins")]
SEEDS_N7 = 50          # per pair (250 seeds with two Byzantine replicas)
SEEDS_PAXOS = {3: 100, 5: 80}


def _check(report: SweepReport, capsys: pytest.CaptureFixture[str], crashes: bool = True) -> None:
    with capsys.disabled():
        print("\n" + report.line())
    assert len(report.outcomes) > 0
    assert report.failures() == [], report.explain()
    # not vacuous: the seeds did crash and partition replicas and lose messages (the twins
    # preset partitions but never crashes: twins are the fault there)
    assert report.faulted("crash") > 0 or not crashes
    assert report.faulted("partition") > 0
    assert report.total("dropped") > 0


def _name(seeds: range) -> str:
    return f"seeds {seeds.start}..{seeds.stop - 1}"


@pytest.mark.parametrize("seeds", HALVES, ids=lambda r: f"s{r.start}-{r.stop - 1}")
@pytest.mark.parametrize("kind", PBFT_KINDS)
def test_pbft_n4_with_one_byzantine_replica_is_safe_and_live(
        kind: str, seeds: range, capsys: pytest.CaptureFixture[str]) -> None:
    base = SimConfig(engine="pbft", nodes=4, byzantine=(kind,), ticks=TICKS,
                     propose_every=PROPOSE_EVERY)
    _check(sweep(f"pbft n=4 {kind} {_name(seeds)}", base, seeds), capsys)


@pytest.mark.parametrize("seeds", HALVES, ids=lambda r: f"s{r.start}-{r.stop - 1}")
def test_pbft_n4_with_twins_is_safe_and_live(
        seeds: range, capsys: pytest.CaptureFixture[str]) -> None:
    base = SimConfig(engine="pbft", nodes=4, byzantine=(TWINS,), ticks=TICKS,
                     propose_every=PROPOSE_EVERY, faults="twins")
    _check(sweep(f"pbft n=4 twins {_name(seeds)}", base, seeds), capsys, crashes=False)


@pytest.mark.parametrize("pair", PAIRS_N7, ids="+".join)
def test_pbft_n7_with_two_byzantine_replicas_is_safe_and_live(
        pair: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    base = SimConfig(engine="pbft", nodes=7, byzantine=pair, ticks=TICKS,
                     propose_every=PROPOSE_EVERY, faults="heavy")
    _check(sweep(f"pbft n=7 {'+'.join(pair)}", base, range(SEEDS_N7)), capsys)


@pytest.mark.parametrize(("nodes", "faults"), [(3, "default"), (5, "heavy")])
def test_paxos_with_crashes_and_partitions_is_safe_and_live(
        nodes: int, faults: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = SimConfig(engine="paxos", nodes=nodes, ticks=TICKS, propose_every=PROPOSE_EVERY,
                     faults=faults)
    _check(sweep(f"paxos n={nodes} {faults}", base, range(SEEDS_PAXOS[nodes])), capsys)
