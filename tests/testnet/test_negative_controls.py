"""Negative controls: past the fault threshold the checkers MUST see a violation.

If these sweeps found nothing, the safety sweeps would prove nothing: a checker that cannot
fail is no checker. Each control prints the first seed that broke safety and its replay.
"""

from __future__ import annotations

import pytest

from testnet.sim.runner import SimConfig, run
from testnet.sim.sweep import SweepReport, sweep

TICKS = 60


def _first_unsafe(report: SweepReport, capsys: pytest.CaptureFixture[str]) -> None:
    unsafe = report.failures("safety")
    with capsys.disabled():
        print(f"\nnegative control {report.name}: {len(unsafe)}/{len(report.outcomes)} seeds "
              f"unsafe" + (f"; first seed {unsafe[0].seed}: {unsafe[0].text}; replay: "
                           f"{unsafe[0].replay}" if unsafe else ""))
    assert unsafe, f"{report.name}: no safety violation detected in {len(report.outcomes)} seeds"
    first = unsafe[0]
    assert "agreement violated" in first.text and "delivered" in first.text
    # the printed replay reproduces it exactly
    again = run(_from_replay(first.replay))
    assert again.status == "safety" and again.digest == first.digest


def _from_replay(cmd: str) -> SimConfig:
    args = cmd.split()[2:]
    opts = dict(zip(args[::2], args[1::2], strict=True))
    return SimConfig(engine=opts["--engine"], nodes=int(opts["--nodes"]),
                     byzantine=tuple(opts.get("--byzantine", "").split(",")),
                     seed=int(opts["--seed"]), ticks=int(opts["--ticks"]),
                     faults=opts.get("--faults", "default"),
                     f=int(opts["--f"]) if "--f" in opts else None)


def test_pbft_n4_with_two_twins_forks(capsys: pytest.CaptureFixture[str]) -> None:
    base = SimConfig(engine="pbft", nodes=4, byzantine=("twins", "twins"), ticks=TICKS,
                     faults="twins")
    _first_unsafe(sweep("pbft n=4 two twins", base, range(30)), capsys)


def test_pbft_n3_with_f1_forced_and_one_byzantine_forks(capsys: pytest.CaptureFixture[str]) -> None:
    base = SimConfig(engine="pbft", nodes=3, f=1, byzantine=("twins",), ticks=TICKS,
                     faults="twins")
    _first_unsafe(sweep("pbft n=3 f=1 twins", base, range(30)), capsys)


def test_pbft_n3_with_f1_forced_and_an_equivocating_primary_forks(
        capsys: pytest.CaptureFixture[str]) -> None:
    base = SimConfig(engine="pbft", nodes=3, f=1, byzantine=("equivocate",), ticks=TICKS,
                     faults="twins")
    _first_unsafe(sweep("pbft n=3 f=1 equivocate", base, range(60)), capsys)


def test_paxos_with_one_byzantine_replica_forks(capsys: pytest.CaptureFixture[str]) -> None:
    base = SimConfig(engine="paxos", nodes=3, byzantine=("twins",), ticks=TICKS,
                     faults="twins")
    _first_unsafe(sweep("paxos n=3 twins", base, range(30)), capsys)


def test_paxos_twin_conflicting_decisions_are_dropped_not_fatal() -> None:
    """Beyond the crash-only model a twin can produce two quorum certificates for one slot.

    The honest replica that already learned one value drops the other (and counts it) rather
    than raising: the run ends as a *safety* finding for the checker, never a crash.
    """
    base = SimConfig(engine="paxos", nodes=3, byzantine=("twins",), ticks=TICKS,
                     faults="twins")
    report = sweep("paxos n=3 twins", base, range(30))
    assert not report.failures("crash"), [o.text for o in report.failures("crash")]
    assert report.failures("safety")
