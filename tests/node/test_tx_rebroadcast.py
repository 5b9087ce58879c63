"""TxRebroadcast: long-pending transactions are re-gossiped once per period, bounded per round."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

from node.app import ChainApp, LedgerStateView
from node.config import ConfigError, load_config
from node.metrics import NodeMetrics
from node.tx_rebroadcast import REBROADCAST_TXS_MAX, TxRebroadcast
from p2p import GossipConfig, P2PConfig
from tests.node.cluster import lone_app_and_transfers


class FakeGossip:
    """The GossipService surface the task uses: ``resend`` to ``peers`` connected peers."""

    def __init__(self, peers: int = 3) -> None:
        self.peers = peers
        self.rounds: list[list[bytes]] = []

    async def resend(self, txs: Sequence[bytes]) -> int:
        if self.peers and txs:
            self.rounds.append(list(txs))
            return self.peers
        return 0


def _task(app: ChainApp, gossip: FakeGossip, **kw: int) -> TxRebroadcast:
    return TxRebroadcast(app.mempool, gossip, NodeMetrics(), period_s=5.0, **kw)


def _counter(task: TxRebroadcast) -> float:
    value = task.metrics.registry.get_sample_value("phalanx_mempool_tx_rebroadcast_total")
    assert value is not None
    return value


async def test_young_ones_wait_a_full_period_then_go_once_per_round() -> None:
    app, txs = lone_app_and_transfers(3, nonce_gap_max=64)
    gossip = FakeGossip()
    task = _task(app, gossip)
    app.admit(txs[0])
    assert await task.round() == 0                    # first seen now: not a period old yet
    app.admit(txs[1])
    assert await task.round() == 1                    # txs[0] pending a full period
    app.admit(txs[2])
    assert await task.round() == 2                    # txs[1] now old enough, txs[0] again
    # never re-sent before re-sent ones, so a backlog over the bound rotates (next test)
    assert gossip.rounds == [[txs[0].encoded], [txs[1].encoded, txs[0].encoded]]
    assert task.statistics()["rebroadcast"] == 3 and _counter(task) == 3


async def test_committed_ones_are_forgotten_and_not_resent() -> None:
    app, txs = lone_app_and_transfers(2, nonce_gap_max=64)
    gossip = FakeGossip()
    task = _task(app, gossip)
    app.admit(txs[0])
    app.admit(txs[1])
    await task.round()
    app.mempool.update([txs[0]], LedgerStateView(app.ledger))    # txs[0] got committed
    assert await task.round() == 1
    assert gossip.rounds == [[txs[1].encoded]]
    assert task.statistics()["tracked"] == 1
    app.mempool.update([txs[1]], LedgerStateView(app.ledger))
    assert await task.round() == 0 and task.statistics()["tracked"] == 0


async def test_bound_per_round_oldest_first_then_rotates() -> None:
    app, txs = lone_app_and_transfers(25, nonce_gap_max=64)
    gossip = FakeGossip()
    task = _task(app, gossip, txs_max=10)
    for tx in txs:
        app.admit(tx)
    await task.round()
    for _ in range(4):
        await task.round()
    raw = [tx.encoded for tx in txs]
    assert [len(r) for r in gossip.rounds] == [10, 10, 10, 10]
    assert gossip.rounds[0] == raw[:10] and gossip.rounds[1] == raw[10:20]
    # the last five, then the five re-sent longest ago: none starves, none twice a round
    assert gossip.rounds[2] == raw[20:25] + raw[:5]
    assert gossip.rounds[3] == raw[5:15]
    assert all(len(set(r)) == len(r) for r in gossip.rounds)


async def test_with_no_peer_connected_nothing_is_marked_and_the_next_round_sends() -> None:
    app, txs = lone_app_and_transfers(2, nonce_gap_max=64)
    gossip = FakeGossip(peers=0)
    task = _task(app, gossip, txs_max=1)
    app.admit(txs[0])
    app.admit(txs[1])
    await task.round()
    assert await task.round() == 0 and task.statistics()["rounds_no_peers"] == 1
    gossip.peers = 3
    assert await task.round() == 1
    assert gossip.rounds == [[txs[0].encoded]]          # still the oldest first
    assert task.statistics()["rebroadcast"] == 1


async def test_run_sends_once_per_period_by_the_clock(
        autojump_clock: trio.testing.MockClock) -> None:
    app, txs = lone_app_and_transfers(1, nonce_gap_max=64)
    gossip = FakeGossip()
    task = _task(app, gossip)
    app.admit(txs[0])
    counts: list[int] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(task.run)
        for _ in range(4):                 # sample in the middle of each period
            await trio.sleep(5.0 if counts else 7.5)
            counts.append(len(gossip.rounds))
        nursery.cancel_scope.cancel()
    assert counts == [0, 1, 2, 3]        # seen at 5 s, re-sent at 10 s, 15 s, 20 s


async def test_period_zero_is_off(autojump_clock: trio.testing.MockClock) -> None:
    app, txs = lone_app_and_transfers(1, nonce_gap_max=64)
    gossip = FakeGossip()
    task = TxRebroadcast(app.mempool, gossip, NodeMetrics(), period_s=0)
    app.admit(txs[0])
    async with trio.open_nursery() as nursery:
        await nursery.start(task.run)
        await trio.sleep(60)
    assert gossip.rounds == [] and task.statistics()["tracked"] == 0


def test_the_round_bound_is_well_under_the_receivers_gossip_burst() -> None:
    gossip = GossipConfig()
    assert gossip.rx_burst_txs >= 5 * REBROADCAST_TXS_MAX
    # and the receivers' bucket refills more than a round in one default period (5 s)
    ticks_per_period = 5.0 / P2PConfig(network=b"x").tick_seconds
    assert gossip.rx_txs_per_tick * ticks_per_period >= 5 * REBROADCAST_TXS_MAX


def test_config_key_defaults_to_five_seconds_and_refuses_negatives(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[mempool]\nrebroadcast_ms = -1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"mempool\.rebroadcast_ms"):
        load_config(tmp_path)
    (tmp_path / "config.toml").write_text("[mempool]\n", encoding="utf-8")
    assert load_config(tmp_path).mempool.rebroadcast_ms == 5000
    (tmp_path / "config.toml").write_text("[mempool]\nrebroadcast_ms = 0\n", encoding="utf-8")
    assert load_config(tmp_path).mempool.rebroadcast_ms == 0
