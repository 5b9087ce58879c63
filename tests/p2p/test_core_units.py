"""Envelope codec, Lamport clock and peer policy (backoff, scores, bans, de-duplication)."""

from __future__ import annotations

import random

import pytest
import rlp

from p2p.config import P2PConfig
from p2p.errors import InvalidEnvelope
from p2p.lamport import LAMPORT_MAX, LAMPORT_OBSERVE_MAX, LamportClock
from p2p.messages import Envelope, Kind, PeerId
from p2p.policy import Backoff, ScoreBook, keep_new_connection

ENVELOPE_TABLE = [
    (Envelope(Kind.TX_BATCH, 0, b""), bytes.fromhex("c3018080")),
    (Envelope(Kind.CONSENSUS, 5, b"abc"), bytes.fromhex("c6020583616263")),
    (Envelope(Kind.HEARTBEAT, 256, b"\x01"), bytes.fromhex("c5038201" "0001")),
]


@pytest.mark.parametrize(("env", "wire"), ENVELOPE_TABLE)
def test_envelope_round_trips(env: Envelope, wire: bytes) -> None:
    assert env.encode() == wire
    assert Envelope.decode(wire) == env


NON_CANONICAL = [
    b"",
    bytes.fromhex("c0"),
    rlp.encode([9, 1, b""]),  # unknown kind
    rlp.encode([0, 1, b""]),  # kind 0 is no kind
    rlp.encode([1, 1, b"", b""]),  # extra field
    bytes.fromhex("c50182000180"),  # lamport 1 written as 0x0001
    bytes.fromhex("c402058161"),  # single byte 'a' as long form
    rlp.encode([1, LAMPORT_MAX + 1, b""]),
    rlp.encode([1, 1, [b"x"]]),  # payload is a list
    rlp.encode([1, 1, b"x"]) + b"\x00",  # trailing byte
]


@pytest.mark.parametrize("wire", NON_CANONICAL)
def test_envelope_rejects_non_canonical_or_invalid(wire: bytes) -> None:
    with pytest.raises(InvalidEnvelope):
        Envelope.decode(wire)


def test_envelope_cannot_be_built_invalid() -> None:
    with pytest.raises(ValueError):
        Envelope(Kind.CONSENSUS, -1, b"")
    with pytest.raises(TypeError):
        Envelope(2, 1, b"")  # type: ignore[arg-type]


def test_lamport_ticks_on_send_and_takes_max_plus_one_on_receive() -> None:
    c = LamportClock()
    assert c.tick() == 1
    assert c.tick() == 2
    assert c.observe(10) == 11
    assert c.observe(3) == 12
    assert c.tick() == 13
    with pytest.raises(ValueError):
        c.observe(LAMPORT_MAX + 1)
    assert LamportClock(LAMPORT_MAX).observe(LAMPORT_MAX) == LAMPORT_MAX


def test_a_peer_timestamp_at_the_bound_leaves_room_to_send() -> None:
    """A (Byzantine) peer stamping LAMPORT_MAX used to leave our clock at the bound, so the
    next send's tick raised OverflowError; the clock adopts at most LAMPORT_OBSERVE_MAX."""
    c = LamportClock(5)
    top = c.observe(LAMPORT_MAX)
    assert 5 < top <= LAMPORT_OBSERVE_MAX + 1
    sent = [c.tick() for _ in range(3)]
    assert sent == [top + 1, top + 2, top + 3]
    assert c.observe(LAMPORT_OBSERVE_MAX - 1) == top + 4  # below the local time: max + 1


def test_backoff_doubles_up_to_the_cap_with_jitter_and_resets() -> None:
    b = Backoff(0.1, 1.0, random.Random(3))
    delays = [b.next_delay() for _ in range(6)]
    bases = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    for d, base in zip(delays, bases, strict=True):
        assert base * 0.5 <= d <= base
    b.reset()
    assert b.next_delay() <= 0.1


def test_score_falls_to_a_ban_that_expires_and_starts_afresh() -> None:
    cfg = P2PConfig(score_start=100, penalty_bad_frame=50, ban_ticks=10,
                    score_recover_per_tick=0.0)
    book = ScoreBook(cfg)
    peer = PeerId(3)
    assert not book.penalize(peer, 50, now=0, reason="bad frame")
    assert book.score(peer, 0) == 50
    assert book.penalize(peer, 50, now=1, reason="bad frame")
    assert book.is_banned(peer, 5)
    assert [b.key for b in book.bans(5)] == [peer]
    assert book.bans(5)[0].until_tick == 11
    assert not book.is_banned(peer, 11)
    assert book.score(peer, 11) == 100


def test_scores_recover_with_time() -> None:
    book = ScoreBook(P2PConfig(score_start=100, score_recover_per_tick=1.0))
    book.penalize(PeerId(1), 60, now=0, reason="x")
    assert book.score(PeerId(1), 30) == 70
    assert book.score(PeerId(1), 1000) == 100


def test_loopback_host_is_never_banned_but_others_are() -> None:
    cfg = P2PConfig(score_start=10)
    book = ScoreBook(cfg)
    assert not book.penalize("127.0.0.1", 100, now=0, reason="handshake")
    assert not book.is_banned("127.0.0.1", 0)
    assert book.penalize("10.0.0.9", 100, now=0, reason="handshake")
    assert book.is_banned("10.0.0.9", 0)


def test_flood_bucket_allows_a_burst_then_refills() -> None:
    book = ScoreBook(P2PConfig(flood_burst_msgs=3, flood_msgs_per_tick=1.0))
    p = PeerId(2)
    assert [book.allow_message(p, 0) for _ in range(4)] == [True, True, True, False]
    assert book.allow_message(p, 1)
    assert not book.allow_message(p, 1)


def test_score_records_are_bounded() -> None:
    book = ScoreBook(P2PConfig(tracked_peers_max=3))
    for i in range(10):
        book.penalize(f"10.0.0.{i}", 1, now=0, reason="x")
    assert len(book._records) == 3


@pytest.mark.parametrize(
    ("me", "peer", "existing", "new", "keep"),
    [
        (1, 2, 2, 1, True),  # mine was dialled by the lower id (me)
        (1, 2, 1, 2, False),
        (2, 1, 2, 1, True),  # the peer (1) is lower: its dial wins on both ends
        (2, 1, 1, 2, False),
        (1, 2, 1, 1, True),  # a re-dial by the same side replaces the old one
    ],
)
def test_duplicate_connections_keep_the_one_dialled_by_the_lower_id(
    me: int, peer: int, existing: int, new: int, keep: bool
) -> None:
    assert keep_new_connection(PeerId(me), PeerId(peer), PeerId(existing), PeerId(new)) is keep


def test_both_ends_agree_on_the_surviving_connection() -> None:
    a, b = PeerId(4), PeerId(7)
    # a sees a's dial first, then b's; b sees b's dial first, then a's.
    a_keeps_b_dial = keep_new_connection(a, b, existing_dialer=a, new_dialer=b)
    b_keeps_a_dial = keep_new_connection(b, a, existing_dialer=b, new_dialer=a)
    survivor_at_a = b if a_keeps_b_dial else a
    survivor_at_b = a if b_keeps_a_dial else b
    assert survivor_at_a == survivor_at_b == a


def test_new_connection_replaces_one_older_than_the_twin_window() -> None:
    # We (1) dialled the peer (2) long ago; the peer dials again: it must have lost its end.
    assert keep_new_connection(PeerId(1), PeerId(2), existing_dialer=PeerId(1),
                               new_dialer=PeerId(2), existing_age_seconds=30.0,
                               twin_window_seconds=5.0)
    # The same two connections meeting within the window are twins: the lower id's wins.
    assert not keep_new_connection(PeerId(1), PeerId(2), existing_dialer=PeerId(1),
                                   new_dialer=PeerId(2), existing_age_seconds=0.2,
                                   twin_window_seconds=5.0)
