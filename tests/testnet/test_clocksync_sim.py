"""Clock-sync simulation: a seeded sweep converges within the bounds; the controls are flagged."""

from __future__ import annotations

import pytest

from cli.main import main
from testnet.sim.algos import CONTROLS, AlgoConfig, run_algo, sweep_algo
from testnet.sim.clocksync_sim import CONTROLS as SIM_CONTROLS
from testnet.sim.clocksync_sim import PRECISION_US


def test_sweep_converges_within_bounds_with_the_liar_dropped() -> None:
    report = sweep_algo(AlgoConfig("clocksync", nodes=5), range(30))
    assert report.count("pass") == 30, [r.detail for r in report.results if r.status != "pass"]
    for r in report.results:
        assert r.figures["cristian_err_over_half_rtt_max"] <= 1.0
        assert r.figures["precision_us_max"] <= PRECISION_US
        assert r.counts["liar_kept"] == 0 and r.counts["liar_dropped"] >= 1
        assert r.counts["estimates"] > 0


def test_no_outlier_rejection_is_flagged_by_the_bound_checker() -> None:
    report = sweep_algo(AlgoConfig("clocksync", control="no-outlier-rejection"), range(10))
    assert report.count("safety") == 10
    for r in report.results:
        assert r.counts["violations_accuracy"] >= 1 and r.counts["liar_kept"] >= 1
    assert CONTROLS["clocksync"] == SIM_CONTROLS


def test_same_seed_same_digest_and_too_few_nodes_rejected() -> None:
    a = run_algo(AlgoConfig("clocksync", seed=9))
    b = run_algo(AlgoConfig("clocksync", seed=9))
    assert a.digest == b.digest and a.figures == b.figures
    with pytest.raises(ValueError):
        run_algo(AlgoConfig("clocksync", nodes=2))


def test_cli_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--algo", "clocksync", "--seeds", "0..2"]) == 0
    assert "pass 3" in capsys.readouterr().out
    assert main(["sim", "--algo", "clocksync", "--seed", "0",
                 "--control", "no-outlier-rejection"]) == 3
    assert "accuracy" in capsys.readouterr().out
