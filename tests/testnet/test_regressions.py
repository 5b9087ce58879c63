"""Pinned seeds: scenarios that once mattered, replayed exactly as ``phalanx sim`` prints them.

Each row is the replay command of a seed worth keeping, with what must happen:

* rare paths that must keep working (a replica lagging behind a stable checkpoint asks for
  state, the simulator installs it and the replica resumes; the primary crashes and
  restarts from its records);
* the first unsafe seeds of the negative controls (so the checkers' power is pinned, not
  only re-discovered by the sweeps).

When a sweep finds an engine bug, its seed goes here once fixed, expecting ``pass``.
No engine bug has been found by the sweeps so far; see the module history.
"""

from __future__ import annotations

import shlex

import pytest

from cli.main import main
from testnet.sim.runner import SimConfig, run

PINNED = [
    # (replay command, expected status, what else must hold)
    ("phalanx sim --engine pbft --nodes 4 --seed 11 --ticks 60 --faults heavy",
     "pass", "state-installed"),
    ("phalanx sim --engine pbft --nodes 4 --seed 19 --ticks 60 --faults heavy",
     "pass", "state-installed"),
    ("phalanx sim --engine pbft --nodes 4 --byzantine twins,twins --seed 13 --ticks 60 "
     "--faults twins", "safety", "agreement"),
    ("phalanx sim --engine pbft --nodes 3 --byzantine equivocate --seed 9 --ticks 60 "
     "--faults twins --f 1", "safety", "forged-value-delivered"),
    ("phalanx sim --engine paxos --nodes 3 --byzantine twins --seed 9 --ticks 60 "
     "--faults twins", "safety", "agreement"),
]


def _config(cmd: str) -> SimConfig:
    args = shlex.split(cmd)[2:]
    opts = dict(zip(args[::2], args[1::2], strict=True))
    return SimConfig(engine=opts["--engine"], nodes=int(opts["--nodes"]),
                     byzantine=tuple(k for k in opts.get("--byzantine", "").split(",") if k),
                     seed=int(opts["--seed"]), ticks=int(opts["--ticks"]),
                     faults=opts.get("--faults", "default"),
                     f=int(opts["--f"]) if "--f" in opts else None)


@pytest.mark.parametrize(("cmd", "status", "check"), PINNED, ids=[c for _, _, c in PINNED])
def test_pinned_seed_replays(cmd: str, status: str, check: str) -> None:
    result = run(_config(cmd))
    assert result.replay == cmd
    assert result.status == status, (result.violation, result.crash, result.liveness_detail)
    if check == "state-installed":
        assert result.counts["wants_served"] >= 1
        assert any(f.startswith(("crash", "partition", "oneway")) for f in result.faults)
    elif check == "agreement":
        v = result.violation
        assert v is not None and v.prop == "agreement" and v.first_value != v.second_value
    elif check == "forged-value-delivered":
        v = result.violation
        assert v is not None and v.prop == "agreement"
        assert b"forged" in v.first_value + v.second_value


def test_pinned_seed_replays_through_the_cli_with_the_same_exit_code(
        capsys: pytest.CaptureFixture[str]) -> None:
    cmd = PINNED[2][0]
    assert main(shlex.split(cmd)[1:]) == 3
    out = capsys.readouterr().out
    assert "property: agreement" in out and f"replay: {cmd}" in out
