"""The failure-detection study: completeness, adaptive accuracy, and the fixed-timeout control."""

from __future__ import annotations

from testnet.sim.algos import CONTROLS, AlgoConfig, run_algo
from testnet.sim.fd_study import CONTROLS as STUDY_CONTROLS
from testnet.sim.fd_study import SCENARIOS, VARIANTS

_TICKS = 60    # 360 simulated ticks per scenario keeps the study quick


def test_study_passes_and_fixed_timeout_false_suspicions_exceed_adaptive_under_heavy_delay(
) -> None:
    r = run_algo(AlgoConfig("fd-study", seed=3, ticks=_TICKS))
    assert r.status == "pass", r.detail
    f = r.figures
    # The measured comparison (counts, not wall time): the fixed timeout keeps suspecting
    # live nodes under heavy delay and loss; the adaptive and phi-8 detectors mostly don't.
    assert f["heavy_fixed-10_false"] > 3 * f["heavy_adaptive_false"]
    assert f["heavy_fixed-10_false"] > 3 * f["heavy_phi-8_false"]
    # ... and pay for it with a slower detection.
    assert f["heavy_adaptive_detect"] > f["heavy_fixed-10_detect"]
    # Gossip with an f+1 quorum confirms fewer live nodes than one observer suspects.
    assert f["heavy_fixed-10_false_conf"] < f["heavy_fixed-10_false"]
    table = r.line().splitlines()
    rows = [ln for ln in table if ln.startswith("  ") and ln.split()[0] in SCENARIOS]
    assert len(rows) == len(SCENARIOS) * len(VARIANTS)


def test_fixed_timeout_control_is_flagged_by_the_accuracy_checker() -> None:
    r = run_algo(AlgoConfig("fd-study", seed=3, ticks=_TICKS, control="fixed-timeout"))
    assert r.status == "liveness"
    assert r.detail.startswith("accuracy: fixed-10")
    assert r.counts.get("violations_accuracy", 0) >= 1
    assert "violations_completeness" not in r.counts
    assert CONTROLS["fd-study"] == STUDY_CONTROLS


def test_same_seed_same_figures() -> None:
    a = run_algo(AlgoConfig("fd-study", seed=5, ticks=30))
    b = run_algo(AlgoConfig("fd-study", seed=5, ticks=30))
    assert a.figures == b.figures and a.line() == b.line()
    assert a.digest and a.digest == b.digest
    assert a.summary()["table_columns"][2] == "detect_med"
    assert all(len(row) == 9 for row in a.summary()["table"])
