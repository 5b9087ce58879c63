"""Phi-accrual detector: the phi formula, detection, adaptation to jitter, API parity."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.contract import NodeId, Receive, Tick
from consensus.failure_detector import Heartbeat, HeartbeatFailureDetector, Suspect, Trust
from consensus.phi_detector import PhiAccrualFailureDetector, phi

A, B = NodeId(0), NodeId(1)


def test_phi_grows_with_silence_and_matches_the_normal_tail() -> None:
    levels = [phi(t, 10.0, 2.0) for t in range(0, 30)]
    assert levels == sorted(levels)
    assert phi(10.0, 10.0, 2.0) == pytest.approx(0.301, abs=0.01)     # P(later) = 1/2
    assert phi(14.0, 10.0, 2.0) == pytest.approx(1.65, abs=0.1)       # 2 sigma: ~2.3 %
    assert phi(10_000.0, 10.0, 1.0) > 50         # saturates, never overflows
    assert phi(-10_000.0, 10.0, 1e-9) == pytest.approx(0.0, abs=1e-9)


def _feed(det: PhiAccrualFailureDetector, arrivals: list[int], until: int) -> list[object]:
    events: list[object] = []
    seq = 0
    pending = sorted(arrivals)
    for now in range(until + 1):
        events += det.step(Tick(now)).events
        while pending and pending[0] == now:
            pending.pop(0)
            seq += 1
            events += det.step(Receive(B, Heartbeat(B, 0, seq))).events
    return events


def test_a_silent_peer_is_suspected_and_trusted_again_when_it_returns() -> None:
    det = PhiAccrualFailureDetector(A, [B], heartbeat_ticks=5, threshold=3.0)
    events = _feed(det, list(range(5, 100, 5)), until=140)
    assert events == [Suspect(B)]
    assert det.suspected() == {B} and det.alive() == frozenset()
    suspected_at = None
    det2 = PhiAccrualFailureDetector(A, [B], heartbeat_ticks=5, threshold=3.0)
    for now in range(141):
        det2.step(Tick(now))
        if now < 100 and now % 5 == 0 and now:
            det2.step(Receive(B, Heartbeat(B, 0, now)))
        if det2.suspected() and suspected_at is None:
            suspected_at = now
    assert suspected_at is not None and 95 + 5 < suspected_at <= 95 + det.timeout_of(B) + 1
    out = det.step(Receive(B, Heartbeat(B, 0, 999)))
    assert out.events == [Trust(B)] and det.statistics().false_suspicions == 1


def test_jittery_link_gets_a_longer_effective_timeout_than_a_steady_one() -> None:
    rng = random.Random(7)
    steady = PhiAccrualFailureDetector(A, [B], heartbeat_ticks=5, threshold=4.0)
    jitter = PhiAccrualFailureDetector(A, [B], heartbeat_ticks=5, threshold=4.0)
    _feed(steady, list(range(5, 300, 5)), until=300)
    t, arrivals = 0, []
    while t < 290:
        t += rng.choice([1, 3, 5, 7, 9])
        arrivals.append(t)
    _feed(jitter, sorted(set(arrivals)), until=300)
    assert jitter.timeout_of(B) > steady.timeout_of(B)
    assert steady.statistics().timeouts[B] == steady.timeout_of(B)


def test_window_is_bounded_and_stale_or_foreign_heartbeats_are_ignored() -> None:
    det = PhiAccrualFailureDetector(A, [B], heartbeat_ticks=2, threshold=3.0, window_max=4)
    _feed(det, list(range(2, 50, 2)), until=50)
    assert len(det._intervals[B]) == 4
    before = det.statistics().heartbeats_ignored
    det.step(Receive(B, Heartbeat(B, 0, 1)))          # old seq
    det.step(Receive(B, Heartbeat(A, 0, 999)))        # sender mismatch
    det.step(Receive(NodeId(9), Heartbeat(NodeId(9), 0, 1)))   # unknown peer
    det.step(Receive(B, "junk"))
    assert det.statistics().heartbeats_ignored == before + 4


def test_same_heartbeat_output_as_the_heartbeat_detector() -> None:
    phi_det = PhiAccrualFailureDetector(A, [B], heartbeat_ticks=3)
    hb_det = HeartbeatFailureDetector(A, [B], heartbeat_ticks=3, timeout_ticks=9,
                                      timeout_ticks_max=90)
    for now in range(10):
        assert phi_det.step(Tick(now)).send == hb_det.step(Tick(now)).send


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError):
        PhiAccrualFailureDetector(A, [B], heartbeat_ticks=0)
    with pytest.raises(ValueError):
        PhiAccrualFailureDetector(A, [B], heartbeat_ticks=1, threshold=0)


@settings(max_examples=60, deadline=None)
@given(gaps=st.lists(st.integers(1, 40), min_size=1, max_size=30), window=st.integers(2, 8))
def test_running_fit_matches_a_naive_mean_and_deviation(gaps: list[int], window: int) -> None:
    det = PhiAccrualFailureDetector(A, [B], heartbeat_ticks=5, window_max=window,
                                    std_ticks_min=1e-9)
    now = 0
    det.step(Tick(0))
    for seq, gap in enumerate(gaps, start=1):
        now += gap
        det.step(Tick(now))
        det.step(Receive(B, Heartbeat(B, 0, seq)))
    naive = list(det._intervals[B])
    mean, std = det._fit(B)
    assert mean == pytest.approx(statistics.fmean(naive))
    assert std == pytest.approx(max(statistics.pstdev(naive), 1e-9), abs=1e-6)
