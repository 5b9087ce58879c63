"""Gossip core: seen-cache, batching by count and ticks, no echo, rate limits, a sans-IO mesh."""

from __future__ import annotations

import hashlib

import pytest

from p2p.errors import MessageTooLarge
from p2p.gossip import GossipConfig, TxGossip, decode_batch, encode_batch
from p2p.messages import PeerId

P1, P2, P3 = PeerId(1), PeerId(2), PeerId(3)


def h(tx: bytes) -> bytes:
    return hashlib.sha256(tx).digest()


def core(**kw: object) -> TxGossip:
    return TxGossip(GossipConfig(**kw), tx_hash=h)  # type: ignore[arg-type]


def test_local_tx_is_batched_until_the_tick_deadline() -> None:
    g = core(batch_ticks_max=5, batch_count_max=100)
    assert g.submit(b"t1", now=0, peers=[P1, P2]).send == ()
    assert g.tick(4, [P1, P2]).send == ()
    out = g.tick(5, [P1, P2])
    assert [(p, decode_batch(b, 100, 1 << 16)) for p, b in out.send] == [
        (P1, [b"t1"]), (P2, [b"t1"])
    ]
    assert g.tick(20, [P1, P2]).send == ()


def test_batch_flushes_when_count_reached() -> None:
    g = core(batch_count_max=3, batch_ticks_max=1000)
    g.submit(b"a", now=0, peers=[P1])
    g.submit(b"b", now=0, peers=[P1])
    out = g.submit(b"c", now=0, peers=[P1])
    assert [decode_batch(b, 3, 1 << 16) for _, b in out.send] == [[b"a", b"b", b"c"]]


def test_received_tx_is_delivered_once_and_not_echoed_to_its_sender() -> None:
    g = core(batch_ticks_max=1)
    out = g.receive(P1, encode_batch([b"x", b"y"]), now=0, peers=[P1, P2, P3])
    assert out.deliver == ((P1, b"x"), (P1, b"y"))
    again = g.receive(P2, encode_batch([b"x"]), now=0, peers=[P1, P2, P3])
    assert again.deliver == ()
    flushed = g.tick(1, [P1, P2, P3])
    sent = {p: decode_batch(b, 256, 1 << 16) for p, b in flushed.send}
    assert P1 not in sent  # sender of both
    assert sent[P2] == [b"y"]  # P2 already sent us x
    assert sent[P3] == [b"x", b"y"]
    assert g.statistics().duplicates == 1


def test_duplicate_local_submit_is_ignored() -> None:
    g = core(batch_ticks_max=1)
    g.submit(b"x", now=0, peers=[P1])
    g.submit(b"x", now=0, peers=[P1])
    [(_, batch)] = g.tick(1, [P1]).send
    assert decode_batch(batch, 256, 1 << 16) == [b"x"]


def test_without_relay_the_node_forwards_after_validation() -> None:
    g = core(batch_ticks_max=1, relay=False)
    out = g.receive(P1, encode_batch([b"x"]), now=0, peers=[P1, P2])
    assert out.deliver == ((P1, b"x"),)
    assert g.tick(5, [P1, P2]).send == ()  # nothing relayed yet
    g.submit(b"x", now=5, peers=[P1, P2], origin=P1)
    assert [p for p, _ in g.tick(6, [P1, P2]).send] == [P2]


def test_seen_cache_is_bounded_lru() -> None:
    g = core(seen_max=3, batch_ticks_max=1)
    for tx in (b"a", b"b", b"c", b"d"):
        g.receive(P1, encode_batch([tx]), now=0, peers=[])
    assert g.statistics().seen == 3
    # "a" was evicted, so it is new again; "d" is still known.
    assert g.receive(P2, encode_batch([b"a", b"d"]), now=0, peers=[]).deliver == ((P2, b"a"),)


def test_peer_over_its_rate_is_cut_and_named() -> None:
    g = core(rx_burst_txs=2, rx_txs_per_tick=1.0)
    out = g.receive(P1, encode_batch([b"1", b"2", b"3"]), now=0, peers=[])
    assert [tx for _, tx in out.deliver] == [b"1", b"2"]
    assert out.offenders and out.offenders[0][0] == P1
    out = g.receive(P1, encode_batch([b"4"]), now=1, peers=[])
    assert [tx for _, tx in out.deliver] == [b"4"] and out.offenders == ()
    assert g.statistics().dropped_rate == 1


@pytest.mark.parametrize(
    "payload",
    [b"\x01", b"\xc1\xc0", encode_batch([b"x" * 20]), encode_batch([b"a"] * 5)],
)
def test_malformed_or_oversized_batches_are_dropped_whole(payload: bytes) -> None:
    g = core(tx_bytes_max=10, batch_bytes_max=100, batch_count_max=4)
    out = g.receive(P1, payload, now=0, peers=[P2])
    assert out.deliver == () and out.offenders[0][0] == P1


def test_flush_splits_batches_by_bytes() -> None:
    g = core(tx_bytes_max=40, batch_bytes_max=100, batch_ticks_max=1)
    for i in range(5):
        g.submit(bytes([i]) * 40, now=0, peers=[P1])
    out = g.tick(1, [P1])
    batches = [decode_batch(b, 256, 40) for _, b in out.send]
    assert [len(b) for b in batches] == [2, 2, 1]
    assert all(len(b) <= 100 for _, b in out.send)


def test_sans_io_full_mesh_delivers_each_tx_once_per_node_with_no_echo() -> None:
    ids = [PeerId(i) for i in range(4)]
    nodes = {i: core(batch_ticks_max=1) for i in ids}
    delivered: dict[PeerId, list[bytes]] = {i: [] for i in ids}
    received_by_origin = 0
    queue = []
    for n in range(10):
        out = nodes[ids[0]].submit(b"tx%d" % n, now=0, peers=ids[1:])
        queue += [(ids[0], p, b) for p, b in out.send]
    for now in range(1, 10):
        for i in ids:
            out = nodes[i].tick(now, [p for p in ids if p != i])
            queue += [(i, p, b) for p, b in out.send]
        while queue:
            src, dst, batch = queue.pop(0)
            if dst == ids[0]:
                received_by_origin += 1
            out = nodes[dst].receive(src, batch, now=now, peers=[p for p in ids if p != dst])
            delivered[dst] += [tx for _, tx in out.deliver]
            queue += [(dst, p, b) for p, b in out.send]
    for i in ids[1:]:
        assert sorted(delivered[i]) == sorted(b"tx%d" % n for n in range(10))
    assert delivered[ids[0]] == []
    assert received_by_origin == 0


def test_with_no_peer_connected_the_newest_batch_waits_for_the_first_peer() -> None:
    g = core(batch_count_max=3, batch_ticks_max=1)
    for i in range(5):
        g.submit(b"t%d" % i, now=0, peers=[])
    assert g.tick(5, []).send == ()
    [(peer, batch)] = g.tick(6, [P1]).send
    assert peer == P1 and decode_batch(batch, 3, 1 << 16) == [b"t2", b"t3", b"t4"]
    assert g.statistics().dropped_no_peers == 2


def test_local_transaction_over_the_size_bound_is_refused_to_the_caller() -> None:
    g = core(tx_bytes_max=10, batch_bytes_max=100)
    with pytest.raises(MessageTooLarge):
        g.submit(b"x" * 11, now=0, peers=[P1])
