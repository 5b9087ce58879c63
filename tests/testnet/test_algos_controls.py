"""Negative controls: with one assumption broken, each algorithm's checker flags the run."""

from __future__ import annotations

import json

import pytest

from cli.main import main
from testnet.sim.algos import AlgoConfig, run_algo, sweep_algo

CONTROLS = [
    ("lamport", "no-merge", 4, "safety", "clock"),
    ("vector", "no-merge", 4, "safety", "vector"),
    ("bracha", "over-f", 4, "safety", "agreement"),
    ("bracha", "over-f", 7, "safety", "agreement"),
    ("causal", "no-holdback", 4, "safety", "causal"),
    ("ricart-agrawala", "dropped-reply", 4, "liveness", "progress"),
    ("ricart-agrawala", "greedy", 4, "safety", "mutual-exclusion"),
    ("lamport-mutex", "dropped-reply", 4, "liveness", "progress"),
    ("lamport-mutex", "greedy", 4, "safety", "mutual-exclusion"),
    ("ring", "lost-token", 5, "liveness", "stabilise"),
]


@pytest.mark.parametrize(("algo", "control", "n", "status", "prop"), CONTROLS,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CONTROLS])
def test_control_is_flagged_on_every_seed(algo: str, control: str, n: int, status: str,
                                          prop: str) -> None:
    seeds = 2 if algo in ("lamport", "vector") else 5     # the clock checks are O(events^2)
    report = sweep_algo(AlgoConfig(algo, nodes=n, control=control), range(seeds))
    print(report.line())
    assert report.count(status) == seeds, report.line()
    for r in report.results:
        assert r.counts.get(f"violations_{prop}", 0) > 0, r.line()
        assert "--control " + control in r.replay


def test_over_f_bracha_splits_the_equivocated_instance() -> None:
    r = run_algo(AlgoConfig("bracha", nodes=7, control="over-f", seed=2))
    assert r.counts["byzantine"] == 3
    assert "agreement" in r.line() and r.counts["equivocated_delivered_by"] == 4


def test_cli_exit_codes_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--algo", "ring", "--nodes", "5", "--seeds", "0..2"]) == 0
    out = capsys.readouterr().out
    assert "sweep ring n=5 seeds 0..2: 3 runs, pass 3" in out
    assert main(["sim", "--algo", "ring", "--nodes", "5", "--control", "lost-token"]) == 2
    out = capsys.readouterr().out
    assert "FAILED (liveness)" in out
    assert "replay: phalanx sim --algo ring --nodes 5 --seed 0 --control lost-token" in out
    code = main(["sim", "--algo", "ricart-agrawala", "--control", "greedy", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 3 and doc["status"] == "safety" and doc["control"] == "greedy"


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown algorithm"):
        run_algo(AlgoConfig("paxos-mutex"))
    with pytest.raises(ValueError, match="unknown control"):
        run_algo(AlgoConfig("bully", control="lost-token"))


def test_a_core_exception_is_a_crash_with_exit_code_1(monkeypatch: pytest.MonkeyPatch) -> None:
    from testnet.sim import algos

    def boom(cfg: AlgoConfig) -> algos.AlgoResult:
        raise RuntimeError("invariant broke")

    monkeypatch.setitem(algos.ALGOS, "ring", boom)
    r = run_algo(AlgoConfig("ring"))
    assert r.status == "crash" and r.exit_code == 1 and "invariant broke" in r.detail
