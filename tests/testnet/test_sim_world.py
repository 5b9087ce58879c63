"""The simulator's world, network and fault plan, driven through the toy engine."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from consensus.contract import ConsensusBug, Output, Receive
from testnet.sim import engines as engines_mod
from testnet.sim.engines import ENGINES, EngineSpec
from testnet.sim.faults import FAULT_PRESETS, FaultConfig, draw_plan
from testnet.sim.network import LinkProfile, Network
from testnet.sim.runner import SimConfig, run
from testnet.sim.toy import ToyOrder


def test_toy_cluster_without_faults_agrees_and_progresses() -> None:
    r = run(SimConfig(engine="toy", nodes=4, seed=7, ticks=60, faults="none"))
    assert r.status == "pass", r.violation or r.crash or r.liveness_detail
    assert min(r.heights.values()) >= 15
    assert r.counts["committed_seqs"] == max(r.heights.values())
    assert r.counts["decode_errors"] == 0


def test_faults_are_drawn_and_applied_yet_the_toy_stays_safe() -> None:
    seen_cuts = seen_drops = seen_crash = 0
    for seed in range(12):
        r = run(SimConfig(engine="toy", nodes=4, seed=seed, ticks=120))
        assert r.status in ("pass", "liveness"), (seed, r.violation, r.crash)
        seen_cuts += r.counts["cut_losses"]
        seen_drops += r.counts["dropped"]
        seen_crash += any(f.startswith("crash") for f in r.faults)
    assert seen_cuts and seen_drops and seen_crash


def test_crashed_replica_restarts_from_its_records_and_catches_up() -> None:
    for seed in range(40):
        r = run(SimConfig(engine="toy", nodes=3, seed=seed, ticks=100, faults="crash"))
        if any(f.startswith("crash e0") for f in r.faults):   # the sequencer itself crashed
            assert r.status == "pass", (seed, r.violation, r.crash, r.liveness_detail)
            assert r.counts["lost_to_down"] > 0
            return
    pytest.fail("no seed crashed the sequencer")


def test_twins_of_the_toy_sequencer_fork_and_the_checker_shows_both_values() -> None:
    # the toy trusts its sequencer (node 0): twins of node 0 split by a partition fork it
    statuses = []
    for seed in range(40):
        r = run(SimConfig(engine="toy", nodes=4, byzantine=("twins",), seed=seed, ticks=80,
                          faults="twins"))
        statuses.append(r.status)
        if r.status == "safety":
            break
    assert r.status == "safety", statuses
    assert r.endpoints[4][0] == 0     # the twin is the sequencer
    v = r.violation
    assert v is not None and v.prop == "agreement"
    assert v.first_value != v.second_value and v.first_value and v.second_value
    assert "--byzantine twins" in r.replay and f"--seed {r.config.seed}" in r.replay


class _Exploding:
    """Wraps a toy engine and raises ConsensusBug on the 50th step."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.node_id = inner.node_id  # type: ignore[attr-defined]
        self.steps = 0

    def restore(self, records: object) -> None:
        self.inner.restore(records)  # type: ignore[attr-defined]

    def statistics(self) -> object:
        return {}

    def step(self, event: object) -> Output:
        self.steps += 1
        if self.steps == 50 and self.node_id == 1:
            raise ConsensusBug("invariant broke")
        return self.inner.step(event)  # type: ignore[attr-defined,no-any-return]


def test_an_engine_exception_is_a_crash_with_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    toy = ENGINES["toy"]
    spec = EngineSpec("boom", False, lambda s: _Exploding(toy.build(s)), toy.decode,
                      toy.make_verify)
    monkeypatch.setitem(engines_mod.ENGINES, "boom", spec)
    r = run(SimConfig(engine="boom", nodes=3, seed=1, ticks=50, faults="none"))
    assert r.status == "crash" and r.exit_code == 1
    assert r.crash is not None and r.crash.endpoint == 1
    assert "ConsensusBug: invariant broke" in r.crash.error
    assert "invariant broke" in r.crash.traceback


def test_a_codec_that_does_not_round_trip_is_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    toy = ENGINES["toy"]

    def sloppy_decode(data: bytes) -> object:
        msg = toy.decode(data)
        if isinstance(msg, ToyOrder):
            return replace(msg, seq=msg.seq + 1)
        return msg

    monkeypatch.setitem(engines_mod.ENGINES, "sloppy",
                        EngineSpec("sloppy", False, toy.build, sloppy_decode, toy.make_verify))
    r = run(SimConfig(engine="sloppy", nodes=3, seed=1, ticks=30, faults="none"))
    assert r.status == "crash"
    assert r.crash is not None and "round trip" in r.crash.event


def test_a_certificate_the_engine_rejects_is_a_safety_violation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    toy = ENGINES["toy"]

    def strict(setup: object) -> object:
        check = toy.make_verify(setup)  # type: ignore[arg-type]
        return lambda d: check(d) and d.seq < 5

    monkeypatch.setitem(engines_mod.ENGINES, "strict",
                        EngineSpec("strict", False, toy.build, toy.decode, strict))  # type: ignore[arg-type]
    r = run(SimConfig(engine="strict", nodes=3, seed=2, ticks=60, faults="none"))
    assert r.status == "safety" and r.exit_code == 3
    assert r.violation is not None and r.violation.prop == "certificate"
    assert r.violation.seq == 5


def test_forged_bytes_are_dropped_as_undecodable_not_crashes() -> None:
    r = run(SimConfig(engine="toy", nodes=4, byzantine=("flood",), seed=3, ticks=60,
                      faults="none"))
    assert r.counts["decode_errors"] > 0
    assert r.status in ("pass", "liveness")


def test_unknown_names_are_rejected_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="pbft"):
        run(SimConfig(engine="nope"))
    with pytest.raises(ValueError, match="equivocate"):
        run(SimConfig(engine="toy", byzantine=("lying",)))
    with pytest.raises(ValueError, match="default"):
        run(SimConfig(engine="toy", faults="weird"))


# -- network --------------------------------------------------------------------------------

def test_network_delays_stay_within_the_link_profile() -> None:
    prof = LinkProfile(delay_kind="exponential", delay_ticks_min=2, delay_ticks_max=5,
                       delay_ticks_mean=3.0)
    net = Network(random.Random(1), [0, 1], {(0, 1): prof})
    arrivals = [a for _ in range(500) for a in net.transmit(0, 1, 100)]
    assert len(arrivals) == 500
    assert min(arrivals) >= 102 and max(arrivals) <= 105
    assert len(set(arrivals)) > 1


def test_network_drop_duplicate_and_one_way_cut() -> None:
    net = Network(random.Random(1), [0, 1, 2],
                  {(0, 1): LinkProfile(drop=1.0), (1, 0): LinkProfile(duplicate=1.0)})
    assert net.transmit(0, 1, 0) == []
    assert len(net.transmit(1, 0, 0)) == 2
    net.cut([(1, 2)])
    assert net.transmit(1, 2, 0) == [] and net.is_cut(1, 2)
    assert net.transmit(2, 1, 0) != []           # one way only
    net.cut([(1, 2)])
    net.mend([(1, 2)])
    assert net.is_cut(1, 2)                      # overlapping partitions nest
    net.heal()
    assert not net.is_cut(1, 2)
    assert len(net.transmit(0, 1, 0)) == 1       # reliable after heal


def test_fault_plan_is_a_function_of_the_seed() -> None:
    cfg = FaultConfig()
    a = draw_plan(random.Random(5), cfg, [0, 1, 2, 3], [0, 1, 2, 3], 200)
    b = draw_plan(random.Random(5), cfg, [0, 1, 2, 3], [0, 1, 2, 3], 200)
    c = draw_plan(random.Random(6), cfg, [0, 1, 2, 3], [0, 1, 2, 3], 200)
    assert a.describe() == b.describe() and a.faults == b.faults
    assert (a.faults, a.profiles) != (c.faults, c.profiles)
    for fault in a.faults:
        assert 0 <= fault.start <= fault.end <= 200


def test_fault_plan_partitions_can_separate_twins() -> None:
    separated = 0
    for seed in range(40):
        plan = draw_plan(random.Random(seed), FAULT_PRESETS["twins"], [0, 1, 2, 3, 4],
                         [1, 2, 3], 200, twins=[(0, 4)])
        for f in plan.faults:
            if f.kind == "partition":
                left, right = f.groups
                separated += (0 in left) != (4 in left)
                assert set(left) | set(right) == {0, 1, 2, 3, 4} and left and right
        assert all(f.endpoint in (1, 2, 3) for f in plan.faults if f.kind == "crash")
    assert separated > 0


def test_messages_reach_the_engine_decoded_from_bytes() -> None:
    seen: list[object] = []
    sent: list[object] = []
    toy = ENGINES["toy"]

    class Spy:
        def __init__(self, inner: object) -> None:
            self.inner = inner
            self.node_id = inner.node_id  # type: ignore[attr-defined]

        def restore(self, records: object) -> None:
            self.inner.restore(records)  # type: ignore[attr-defined]

        def statistics(self) -> object:
            return {}

        def step(self, event: object) -> Output:
            if isinstance(event, Receive):
                seen.append(event.message)
            out: Output = self.inner.step(event)  # type: ignore[attr-defined]
            sent.extend(m for _, m in out.send)
            return out

    spec = EngineSpec("spy", False, lambda s: Spy(toy.build(s)), toy.decode, toy.make_verify)
    engines_mod.ENGINES["spy"] = spec
    try:
        run(SimConfig(engine="spy", nodes=3, seed=1, ticks=10, liveness_ticks=0, faults="none"))
    finally:
        del engines_mod.ENGINES["spy"]
    orders = [m for m in seen if isinstance(m, ToyOrder)]
    assert orders
    # decoded from bytes, never the sender's own object (one decode per send, shared by its
    # recipients: the messages are immutable)
    sent_orders = [m for m in sent if isinstance(m, ToyOrder)]
    assert not {id(m) for m in orders} & {id(m) for m in sent_orders}
    assert all(any(m == s for s in sent_orders) for m in orders)
    assert len({id(m) for m in orders}) <= len(sent_orders) < len(orders)
