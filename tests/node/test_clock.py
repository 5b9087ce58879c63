"""The node's clocks and the block timestamp rule: unit, app-level and a 4-node cluster."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.block import EMPTY_CERTIFICATE, build_block, decode_block
from node.app import ChainApp
from node.clock import CLOCK_SKEW_MS_MAX, MedianTime, NodeClock, quorum_times, timestamp_problem
from node.config import ConfigError, NodeConfig, load_config, parse_config, write_config
from tests.node.cluster import (
    CHAIN_ID,
    GENESIS_TIME,
    build_driver,
    make_cluster,
    now_ms,
    start_node,
    wait_height,
)

BOUND = 10_000


def test_node_clock_shifts_every_reading_by_the_skew_and_bounds_it() -> None:
    clock = NodeClock(skew_ms=-2_500, wall_us=lambda: 1_000_000_000_123)
    assert clock.now_us() == 1_000_000_000_123 - 2_500_000
    assert clock.now_ms() == 999_997_500
    with pytest.raises(ValueError):
        NodeClock(skew_ms=CLOCK_SKEW_MS_MAX + 1)


def test_median_time_uses_the_validators_median_and_falls_back_to_our_clock() -> None:
    clock = NodeClock(skew_ms=30_000, wall_us=lambda: 5_000_000_000)
    offsets: dict[str, float | None] = {"median": None}
    asked: list[int] = []

    def median_offset_us(times_min: int) -> float | None:
        asked.append(times_min)
        return offsets["median"]

    median = MedianTime(clock, median_offset_us, times_min=quorum_times(4))
    assert median.now_ms() == 5_030_000 and median.status()["median_time_source"] == "local-clock"
    offsets["median"] = -30_000_250.0  # the others are 30 s behind us: the median is real time
    assert median.now_ms() == 5_000_000
    assert median.status()["median_time_offset_ms"] == -30_000.25
    assert asked and set(asked) == {3}
    assert [quorum_times(n) for n in (1, 2, 3, 4, 7)] == [1, 2, 3, 3, 5]


@settings(max_examples=200, deadline=None)
@given(median=st.integers(10**6, 10**13), parent_back=st.integers(1, 10**7),
       age=st.integers(0, 10**9), ahead=st.integers(0, 2 * BOUND))
def test_timestamp_rule_refuses_only_the_future_and_the_non_monotonic(
        median: int, parent_back: int, age: int, ahead: int) -> None:
    # An old value built on its parent (a re-proposal after view changes of any length) passes.
    parent = median - parent_back - age
    old = max(median - age, parent + 1)
    assert timestamp_problem(old, median_ms=median, bound_ms=BOUND, parent_timestamp_ms=parent) == ""
    assert timestamp_problem(old, median_ms=median, bound_ms=BOUND, parent_timestamp_ms=None) == ""
    verdict = timestamp_problem(median + ahead, median_ms=median, bound_ms=BOUND,
                                parent_timestamp_ms=parent)
    assert (verdict == "") == (ahead <= BOUND)
    assert "not after its parent" in timestamp_problem(
        parent, median_ms=median, bound_ms=BOUND, parent_timestamp_ms=parent)


def _foreign_block(app: ChainApp, proposer: bytes, ts: int) -> bytes:
    head = app.ledger.head
    return bytes(build_block(
        chain_id=CHAIN_ID, height=head.height + 1, parent_hash=head.block_hash, timestamp=ts,
        proposer=proposer, state_root=head.state_root, transactions=(),
        last_commit=EMPTY_CERTIFICATE,
    ).encoded)


async def test_proposals_are_judged_against_the_median_not_our_own_clock(
        autojump_clock: trio.testing.MockClock) -> None:
    c = make_cluster(4)
    skewed = build_driver(c, 0).app
    honest = build_driver(c, 1).app
    skew = 60_000
    skewed.now_ms = lambda: now_ms() + skew   # its clock is a minute ahead...
    skewed.median_time_ms = now_ms            # ...and it measured the others' real time
    await trio.sleep(5)
    # Its own block carries its skewed clock: it trusts it, the honest node refuses it.
    own = skewed.build_proposal()
    assert decode_block(own).header.timestamp == now_ms() + skew
    assert skewed.check_proposal(own)
    assert not honest.check_proposal(own)
    assert "ahead of the validators' median time" in honest.last_invalid_reason
    assert honest.timestamp_rejections == 1
    # A block 20 s ahead of the median is refused by the skewed node too, although its
    # own clock says it is 40 s in the past: the median decides, not the local clock.
    other = c.keys[2].address
    assert not skewed.check_proposal(_foreign_block(skewed, other, now_ms() + 20_000))
    assert skewed.timestamp_rejections == 1
    assert skewed.check_proposal(_foreign_block(skewed, other, now_ms() + 2_000))
    # A value built long ago and re-proposed after view changes stays acceptable.
    old = _foreign_block(honest, other, now_ms())
    await trio.sleep(600)
    assert honest.check_proposal(old)


async def test_a_primary_with_a_skewed_clock_is_passed_by_a_view_change_and_never_committed(
        autojump_clock: trio.testing.MockClock) -> None:
    c = make_cluster(4)
    skew = 120_000
    async with trio.open_nursery() as nursery:
        drivers = [await start_node(c, nursery, i) for i in range(4)]
        # Validator 0, the primary of view 0, stamps its blocks two minutes ahead.
        drivers[0].app.now_ms = lambda: now_ms() + skew
        await wait_height(c, 3, timeout=300)
        nursery.cancel_scope.cancel()
    assert all(d.kit.view() >= 1 for d in drivers[1:])
    assert sum(d.app.timestamp_rejections for d in drivers[1:]) >= 2
    h = min(led.height for led in c.ledgers)
    for height in range(1, h + 1):
        header = c.ledgers[1].block(height).header
        assert header.timestamp < now_ms() + BOUND, height
        assert header.proposer != c.keys[0].address or header.timestamp <= now_ms()
    assert c.ledgers[1].block(1).header.timestamp > GENESIS_TIME


def test_clock_skew_is_refused_unless_the_config_says_test_network_only(tmp_path: Path) -> None:
    def parse(doc: dict[str, Any]) -> NodeConfig:
        return parse_config(doc, tmp_path)

    with pytest.raises(ConfigError, match=r"testing\.clock_skew_ms: a test-network fault"):
        parse({"testing": {"clock_skew_ms": 30_000}})
    config = parse({"testing": {"clock_skew_ms": -30_000, "test_network_only": True}})
    assert config.testing.clock_skew_ms == -30_000
    with pytest.raises(ConfigError, match=r"testing\.clock_skew_ms: at most"):
        parse({"testing": {"clock_skew_ms": CLOCK_SKEW_MS_MAX + 1, "test_network_only": True}})
    with pytest.raises(ConfigError, match=r"consensus\.tick_ms: expected a non-negative"):
        parse({"consensus": {"tick_ms": -1}})  # only the skew may be negative
    with pytest.raises(ConfigError, match=r"consensus\.timestamp_drift_ms_max: must be positive"):
        parse({"consensus": {"timestamp_drift_ms_max": 0}})
    with pytest.raises(ConfigError, match=r"p2p\.clock_sync_ms: must be positive"):
        parse({"p2p": {"clock_sync_ms": 0}})
    # A normal config file has no [testing] section; a skewed one round-trips.
    write_config(NodeConfig(home=tmp_path))
    assert "testing" not in (tmp_path / "config.toml").read_text()
    write_config(dataclasses.replace(config, home=tmp_path))
    assert load_config(tmp_path).testing == config.testing


def test_clock_sync_renders_peer_offsets_and_moves_the_rejection_counters(tmp_path: Path) -> None:
    from chain.keys import PrivateKey
    from node.clock_sync import build_clock_sync
    from node.metrics import NodeMetrics
    from p2p.clocksync import OffsetEstimate
    from p2p.messages import PeerId
    from p2p.peers import PeerInfo, PeerManager

    keys = [PrivateKey.from_seed(bytes([i + 1]) * 32) for i in range(4)]
    book = [PeerInfo(PeerId(i), k.public_key.raw) for i, k in enumerate(keys)]
    peers = PeerManager(PeerId(0), keys[0].seed, book)
    config = parse_config({"testing": {"clock_skew_ms": 5, "test_network_only": True}}, tmp_path)
    clocks = build_clock_sync(config, NodeClock(5), 0, 4, peers)
    clocks.service._monotonic = lambda: 100.0
    assert clocks.status()["median_time_source"] == "local-clock"
    for peer, off in ((1, 40_000.0), (2, -20_000.0)):
        clocks.service.table.observe(OffsetEstimate(peer, off, 1_500.0, 3_000), now=99.5)
    info = clocks.net_info()
    assert info["peers"] == {
        "1": {"offset_ms": 40.0, "error_ms": 1.5, "rtt_ms": 3.0, "age_ms": 500},
        "2": {"offset_ms": -20.0, "error_ms": 1.5, "rtt_ms": 3.0, "age_ms": 500},
    }
    assert info["median_time_offset_ms"] == 0.0  # lower median of {-20, 0, 40} ms
    assert clocks.status()["median_time_source"] == "validators"
    assert clocks.status()["clock_skew_ms"] == 5
    metrics = NodeMetrics()
    clocks.update_metrics(metrics, timestamp_rejections=2, invalid_total=3)
    clocks.update_metrics(metrics, timestamp_rejections=5, invalid_total=6)
    text = metrics.render().decode()
    assert 'phalanx_proposals_rejected_total{reason="timestamp"} 5.0' in text
    assert 'phalanx_proposals_rejected_total{reason="other"} 1.0' in text
    assert 'phalanx_p2p_peer_clock_offset_seconds{peer="1"} 0.04' in text
