"""TxIntake: one sender's transactions gossiped in reverse nonce order are all admitted."""

from __future__ import annotations

import trio

from chain.keys import PrivateKey
from chain.mempool import MempoolRejected, RejectReason
from chain.tx import make_transaction
from node.app import LedgerStateView
from node.metrics import NodeMetrics
from node.tx_intake import TxIntake
from p2p import PeerId
from tests.node.cluster import CHAIN_ID, lone_app_and_transfers

COUNT = 24            # more than the mempool's default nonce_gap_max (16)


class FakeGossip:
    """The GossipService surface TxIntake uses: ``delivered`` and ``submit``."""

    def __init__(self) -> None:
        self.send, self.delivered = trio.open_memory_channel[tuple[PeerId, bytes]](1000)
        self.relayed: list[bytes] = []

    async def submit(self, raw: bytes, origin: PeerId | None = None) -> None:
        self.relayed.append(raw)


async def test_reverse_nonce_order_is_all_admitted_in_nonce_order() -> None:
    app, txs = lone_app_and_transfers(COUNT, nonce_gap_max=16)
    gossip = FakeGossip()
    intake = TxIntake(app, gossip, NodeMetrics(), relay_delay_s=0)  # type: ignore[arg-type]
    for tx in reversed(txs):
        gossip.send.send_nowait((PeerId(1), tx.encoded))
    # a forged signature (last byte flipped) from another sender, nonce 1: refused before
    # the hold-back, so it is never held waiting for a nonce 0
    bad = make_transaction(PrivateKey.from_seed(b"\x55" * 32), chain_id=CHAIN_ID, nonce=1,
                           to=b"\x42" * 20, amount=1, fee=1, gas_limit=21_000)
    gossip.send.send_nowait((PeerId(2), bad.encoded[:-1] + bytes([bad.encoded[-1] ^ 1])))
    async with trio.open_nursery() as nursery:
        await nursery.start(intake.run)
        with trio.fail_after(10):
            while len(app.mempool) < COUNT or len(gossip.relayed) < COUNT:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert [tx.nonce for tx in app.mempool.pending(txs[0].sender_address)] == list(range(COUNT))
    assert gossip.relayed == [tx.encoded for tx in txs]          # admitted in nonce order
    assert len(intake.fifo) == 0 and intake.statistics()["held_total"] == COUNT - 1


def test_without_the_intake_reverse_order_hits_the_gap_rule() -> None:
    """Negative control: the same arrival order straight into the mempool loses txs."""
    app, txs = lone_app_and_transfers(COUNT, nonce_gap_max=16)
    refused = []
    for tx in reversed(txs):
        try:
            app.admit(tx.encoded)
        except MempoolRejected as e:
            refused.append(e.reason)
    assert refused and set(refused) == {RejectReason.NONCE_GAP_TOO_LARGE}
    assert len(app.mempool) < COUNT


async def test_relay_waits_and_skips_what_was_committed_meanwhile(
        autojump_clock: trio.testing.MockClock) -> None:
    """The origin already reached every peer it could: relay only what is still pending."""
    app, txs = lone_app_and_transfers(COUNT, nonce_gap_max=16)
    gossip = FakeGossip()
    intake = TxIntake(app, gossip, NodeMetrics(), relay_delay_s=1.0)  # type: ignore[arg-type]
    for tx in txs[:2]:
        gossip.send.send_nowait((PeerId(1), tx.encoded))
    async with trio.open_nursery() as nursery:
        await nursery.start(intake.run)
        with trio.fail_after(0.5):
            while len(app.mempool) < 2:
                await trio.sleep(0.01)
        assert gossip.relayed == []                      # admitted, not relayed yet
        app.mempool.update([txs[0]], LedgerStateView(app.ledger))   # txs[0] got committed
        await trio.sleep(1.5)
        nursery.cancel_scope.cancel()
    assert gossip.relayed == [txs[1].encoded]            # only the one still pending
    stats = intake.statistics()
    assert stats["relayed"] == 1 and stats["relay_skipped"] == 1
