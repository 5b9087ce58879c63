"""Gossip core ``resend``: past the seen-cache, batched like a flush, cheap for receivers."""

from __future__ import annotations

import hashlib

import pytest

from p2p.errors import MessageTooLarge
from p2p.gossip import GossipConfig, TxGossip, decode_batch
from p2p.messages import PeerId

P1, P2, P3 = PeerId(1), PeerId(2), PeerId(3)


def h(tx: bytes) -> bytes:
    return hashlib.sha256(tx).digest()


def core(**kw: object) -> TxGossip:
    return TxGossip(GossipConfig(**kw), tx_hash=h)  # type: ignore[arg-type]


def test_resend_goes_past_the_seen_cache_every_time() -> None:
    g = core(batch_ticks_max=1)
    g.submit(b"x", now=0, peers=[P1, P2])
    assert len(g.tick(1, [P1, P2]).send) == 2           # the one normal forward
    assert g.submit(b"x", now=2, peers=[P1, P2]).send == () and g.tick(3, [P1, P2]).send == ()
    for _ in range(2):                                  # no dedup: each call sends again
        out = g.resend([b"x"], [P2, P1])
        assert [(p, decode_batch(b, 256, 1 << 16)) for p, b in out.send] == [
            (P1, [b"x"]), (P2, [b"x"])
        ]
    stats = g.statistics()
    assert stats.resent == 2 and stats.batches_sent == 6 and stats.pending == 0


def test_resend_batches_by_count_and_bytes_in_the_given_order() -> None:
    g = core(tx_bytes_max=40, batch_bytes_max=100, batch_count_max=3)
    txs = [bytes([i]) * 40 for i in range(5)] + [b"a", b"b", b"c", b"d"]
    out = g.resend(txs, [P1])
    batches = [decode_batch(b, 3, 40) for _, b in out.send]
    assert [len(b) for b in batches] == [2, 2, 3, 2]       # 2 big per 100 bytes, then 3 small
    assert [tx for b in batches for tx in b] == txs
    assert all(len(b) <= 100 for _, b in out.send)


def test_resend_leaves_the_seen_cache_and_the_pending_batch_alone() -> None:
    g = core(batch_ticks_max=5)
    g.submit(b"p", now=0, peers=[P1])
    g.resend([b"r"], [P1])
    assert g.statistics().seen == 1 and g.statistics().pending == 1
    [(_, batch)] = g.tick(5, [P1]).send
    assert decode_batch(batch, 256, 1 << 16) == [b"p"]   # the resent one was not queued


def test_with_no_peer_or_no_tx_nothing_is_sent_or_counted() -> None:
    g = core()
    assert g.resend([b"x"], []).send == ()
    assert g.resend([], [P1]).send == ()
    assert g.statistics().resent == 0 and g.statistics().batches_sent == 0


def test_oversized_transaction_is_refused_to_the_caller() -> None:
    g = core(tx_bytes_max=10, batch_bytes_max=100)
    with pytest.raises(MessageTooLarge):
        g.resend([b"ok", b"x" * 11], [P1])
    assert g.statistics().resent == 0


def test_receiver_drops_what_it_saw_and_delivers_what_it_lacks() -> None:
    sender, has_it, lacks_it = core(), core(relay=False), core(relay=False)
    has_it.receive(P1, _batch_of(sender, [b"old"]), now=0, peers=[P1])
    payload = _batch_of(sender, [b"old", b"new"])
    out = has_it.receive(P1, payload, now=1, peers=[P1])
    assert out.deliver == ((P1, b"new"),) and out.offenders == ()
    assert has_it.statistics().duplicates == 1
    out = lacks_it.receive(P1, payload, now=1, peers=[P1])
    assert out.deliver == ((P1, b"old"), (P1, b"new")) and out.offenders == ()


def test_a_bounded_resend_stays_within_the_receivers_rate_limit() -> None:
    sender, receiver = core(), core(rx_burst_txs=1000, rx_txs_per_tick=1.0)
    txs = [b"t%d" % i for i in range(1000)]
    delivered = 0
    for _p, batch in sender.resend(txs, [P1]).send:
        out = receiver.receive(P1, batch, now=0, peers=[P1])
        assert out.offenders == ()
        delivered += len(out.deliver)
    assert delivered == 1000
    # one more over the burst in the same tick is cut and names the sender
    out = receiver.receive(P1, sender.resend([b"extra"], [P1]).send[0][1], now=0, peers=[P1])
    assert out.deliver == () and out.offenders[0][0] == P1


def _batch_of(g: TxGossip, txs: list[bytes]) -> bytes:
    [(_, batch)] = g.resend(txs, [P2]).send
    return batch
