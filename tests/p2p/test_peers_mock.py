"""PeerManager over in-memory streams and the autojump clock: backoff, re-dial, bans, API."""

from __future__ import annotations

import itertools
import random

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from p2p.config import P2PConfig
from p2p.errors import MessageTooLarge, QueueFull, UnknownPeer
from p2p.framing import encode_frame
from p2p.handshake import Role
from p2p.messages import Envelope, Kind, PeerId
from p2p.peers import PeerInfo, PeerManager
from p2p.transport import SecureLink, secure_handshake

from .helpers import identity, seed

ME, PEER = PeerId(0), PeerId(1)
CFG = P2PConfig(
    network=b"net", listen=False, dial_backoff_seconds_min=1.0, dial_backoff_seconds_max=60.0,
    reverse_dial_grace_seconds=0.0, send_queue_frames_max=4, frame_bytes_max=4096,
)


def _manager(cfg: P2PConfig = CFG) -> PeerManager:
    book = [PeerInfo(PEER, identity(1).public_key, "peer-1.invalid", 1)]
    return PeerManager(ME, seed(0), book, cfg, rng=random.Random(5),
                       open_stream=_Dialer.current.open)


class _Dialer:
    """An ``open_stream`` that refuses the first ``failures`` dials, then hands out the
    near end of a memory stream whose far end a fake peer (``behave``) serves."""

    current: _Dialer

    def __init__(self, nursery: trio.Nursery, failures: int, behave: object) -> None:
        self.nursery = nursery
        self.failures = failures
        self.behave = behave
        self.attempts: list[float] = []
        _Dialer.current = self

    async def open(self, host: str, port: int) -> trio.abc.Stream:
        self.attempts.append(trio.current_time())
        if len(self.attempts) <= self.failures:
            raise OSError("connection refused")
        near, far = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self._serve, far, len(self.attempts))
        return near

    async def _serve(self, far: trio.abc.Stream, attempt: int) -> None:
        link = await secure_handshake(far, identity=identity(1), role=Role.RESPONDER, config=CFG,
                                      allowed={identity(0).public_key})
        await self.behave(link, attempt)  # type: ignore[operator]


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


async def test_dials_with_exponential_backoff_and_redials_after_a_drop(
    autojump_clock: MockClock,
) -> None:
    async def drop_first_session(link: SecureLink, attempt: int) -> None:
        if attempt == 4:
            await trio.sleep(3)
            await link.stream.aclose()  # the peer goes away: we must re-dial
        else:
            await trio.sleep_forever()

    async with trio.open_nursery() as n:
        dialer = _Dialer(n, failures=3, behave=drop_first_session)
        mgr = _manager()
        await n.start(mgr.run)
        with trio.fail_after(100):
            await mgr.wait_connected()
            while len(dialer.attempts) < 5:
                await trio.sleep(0.1)
            await mgr.wait_connected()
        n.cancel_scope.cancel()
    gaps = _gaps(dialer.attempts)
    # three refusals: 1 s, 2 s, 4 s bases with jitter in [0.5, 1] of the base
    for gap, base in zip(gaps[:3], [1.0, 2.0, 4.0], strict=True):
        assert base * 0.5 <= gap <= base + 1e-6
    # after a connection that worked, the backoff starts over (3 s session + <= 1 s)
    assert 3.0 + 0.5 <= gaps[3] <= 3.0 + 1.0 + 1e-6


async def test_peer_sending_bad_frames_is_banned_and_not_redialled_until_the_ban_ends(
    autojump_clock: MockClock,
) -> None:
    cfg = P2PConfig(network=b"net", listen=False, dial_backoff_seconds_min=1.0,
                    reverse_dial_grace_seconds=0.0, penalty_bad_frame=50, score_start=100,
                    score_recover_per_tick=0.0, ban_ticks=3000, tick_seconds=0.01)

    async def send_tampered(link: SecureLink, attempt: int) -> None:
        ct = bytearray(link.session.seal(Envelope(Kind.CONSENSUS, 1, b"x").encode()))
        ct[0] ^= 1
        await link.stream.send_all(encode_frame(bytes(ct), 4096))
        await trio.sleep_forever()

    async with trio.open_nursery() as n:
        dialer = _Dialer(n, failures=0, behave=send_tampered)
        mgr = _manager(cfg)
        await n.start(mgr.run)
        with trio.fail_after(100):
            while not mgr.statistics().bans:
                await trio.sleep(0.1)
            bans = mgr.statistics().bans
            while len(dialer.attempts) < 3:
                await trio.sleep(0.1)
            assert mgr.statistics().bans == ()  # the ban expired before the re-dial
        n.cancel_scope.cancel()
    assert [b.key for b in bans] == [PEER]
    assert "failed authentication" in bans[0].reason
    gaps = _gaps(dialer.attempts)
    assert gaps[0] <= 1.0 + 1e-6  # first offence: a normal re-dial
    assert gaps[1] >= 30.0  # second offence banned it for 3000 ticks of 10 ms


async def test_send_api_errors_and_bounded_queue_while_disconnected(
    autojump_clock: MockClock,
) -> None:
    async def never(link: SecureLink, attempt: int) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as n:
        _Dialer(n, failures=10**9, behave=never)
        mgr = _manager()
        with pytest.raises(UnknownPeer):
            await mgr.send(PeerId(9), Kind.CONSENSUS, b"x")
        with pytest.raises(MessageTooLarge):
            mgr.send_nowait(PEER, Kind.CONSENSUS, b"x" * 5000)
        for _ in range(CFG.send_queue_frames_max):
            mgr.send_nowait(PEER, Kind.CONSENSUS, b"queued")
        with pytest.raises(QueueFull):
            mgr.send_nowait(PEER, Kind.CONSENSUS, b"one too many")
        assert mgr.statistics().queue_depths == ((PEER, CFG.send_queue_frames_max),)
        assert await mgr.broadcast(Kind.CONSENSUS, b"nobody connected") == ()
        # one tick per send event, including the refused one and the empty broadcast
        assert mgr.statistics().lamport == CFG.send_queue_frames_max + 2
        n.cancel_scope.cancel()


async def test_queued_messages_flow_once_the_peer_connects(autojump_clock: MockClock) -> None:
    received: list[Envelope] = []

    async def read_all(link: SecureLink, attempt: int) -> None:
        while data := await link.stream.receive_some(65536):
            link.decoder.feed(data)
            while (frame := link.decoder.next_frame()) is not None:
                received.append(Envelope.decode(link.session.open(frame)))

    async with trio.open_nursery() as n:
        _Dialer(n, failures=2, behave=read_all)
        mgr = _manager()
        for i in range(3):
            mgr.send_nowait(PEER, Kind.REQUEST, b"r%d" % i)
        await n.start(mgr.run)
        with trio.fail_after(100):
            while len(received) < 3:
                await trio.sleep(0.1)
        n.cancel_scope.cancel()
    assert [e.payload for e in received] == [b"r0", b"r1", b"r2"]
    assert [e.lamport for e in received] == [1, 2, 3]


async def test_flooding_peer_loses_messages_then_is_banned_and_cut_off(
    autojump_clock: MockClock,
) -> None:
    cfg = P2PConfig(network=b"net", listen=False, reverse_dial_grace_seconds=0.0,
                    flood_burst_msgs=10, flood_msgs_per_tick=0.0, penalty_flood=25,
                    score_start=100, score_recover_per_tick=0.0, ban_ticks=10**6)
    cut_off = trio.Event()

    async def flood(link: SecureLink, attempt: int) -> None:
        frames = b"".join(
            encode_frame(link.session.seal(Envelope(Kind.TX_BATCH, i + 1, b"spam").encode()),
                         4096)
            for i in range(30)
        )
        await link.stream.send_all(frames)
        while await link.stream.receive_some(4096):  # until the manager hangs up
            pass
        cut_off.set()

    async with trio.open_nursery() as n:
        _Dialer(n, failures=0, behave=flood)
        mgr = _manager(cfg)
        await n.start(mgr.run)
        with trio.fail_after(100):
            await cut_off.wait()
        await trio.testing.wait_all_tasks_blocked()
        got = []
        while True:
            try:
                got.append(mgr.inbound.receive_nowait())
            except trio.WouldBlock:
                break
        stats = mgr.statistics()
        n.cancel_scope.cancel()
    assert len(got) == 10  # the burst got through, the rest was dropped
    assert stats.frames_dropped == 4  # four drops cost 100 points: banned, connection closed
    assert [b.key for b in stats.bans] == [PEER] and stats.bans[0].reason == "flood"
    assert stats.peers_connected == 0


async def test_restarted_peer_redialling_replaces_our_stale_connection(
    autojump_clock: MockClock,
) -> None:
    stale_closed = trio.Event()
    received: list[bytes] = []

    async def hold_then_notice_close(link: SecureLink, attempt: int) -> None:
        while await link.stream.receive_some(4096):
            pass
        stale_closed.set()

    async with trio.open_nursery() as n:
        _Dialer(n, failures=0, behave=hold_then_notice_close)
        mgr = _manager()  # we are 0, the lower id: our dial would win a simultaneous race
        await n.start(mgr.run)
        await mgr.wait_connected()
        await trio.sleep(60)  # the old connection is well past the twin window
        near, far = trio.testing.memory_stream_pair()

        async def restarted_peer() -> None:
            link = await secure_handshake(far, identity=identity(1), role=Role.INITIATOR,
                                          config=CFG, allowed={identity(0).public_key})
            while data := await link.stream.receive_some(4096):
                link.decoder.feed(data)
                while (frame := link.decoder.next_frame()) is not None:
                    received.append(Envelope.decode(link.session.open(frame)).payload)

        n.start_soon(restarted_peer)
        n.start_soon(mgr.accept, near)
        with trio.fail_after(10):
            await stale_closed.wait()
            await mgr.send(PEER, Kind.CONSENSUS, b"to the new connection")
            while not received:
                await trio.sleep(0.1)
        assert mgr.connected_peers() == (PEER,)
        assert mgr.disconnect(PEER, "test")
        n.cancel_scope.cancel()
    assert received == [b"to the new connection"]


async def test_node_report_can_ban_a_peer_and_close_its_connection(
    autojump_clock: MockClock,
) -> None:
    closed = trio.Event()

    async def wait_for_close(link: SecureLink, attempt: int) -> None:
        while await link.stream.receive_some(4096):
            pass
        closed.set()

    async with trio.open_nursery() as n:
        dialer = _Dialer(n, failures=0, behave=wait_for_close)
        mgr = _manager()
        await n.start(mgr.run)
        await mgr.wait_connected()
        assert not mgr.report(PEER, 10, "one invalid vote")
        assert mgr.is_connected(PEER)
        assert mgr.report(PEER, 1000, "forged signatures")
        with trio.fail_after(10):
            await closed.wait()
        await trio.sleep(5)
        assert not mgr.is_connected(PEER) and len(dialer.attempts) == 1  # not re-dialled
        assert mgr.statistics().bans[0].reason == "forged signatures"
        n.cancel_scope.cancel()


async def test_inbound_handshakes_beyond_the_bound_are_refused(autojump_clock: MockClock) -> None:
    cfg = P2PConfig(network=b"net", listen=False, handshakes_inflight_max=1)
    mgr = PeerManager(ME, seed(0), [PeerInfo(PEER, identity(1).public_key)], cfg)
    first, _first_far = trio.testing.memory_stream_pair()
    second, second_far = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as n:
        n.start_soon(mgr.accept, first)  # a silent client holds the only slot
        await trio.testing.wait_all_tasks_blocked()
        await mgr.accept(second)  # refused at once
        assert await second_far.receive_some(100) == b""  # closed without even a hello
        assert mgr.statistics().connections_refused == 1
    # the silent one ran into the handshake timeout
    assert mgr.statistics().handshake_failures == 1


def test_each_kind_has_at_most_one_subscriber() -> None:
    mgr = PeerManager(ME, seed(0), [], CFG)
    mgr.subscribe(Kind.CONSENSUS)
    with pytest.raises(ValueError):
        mgr.subscribe(Kind.CONSENSUS)


async def test_unread_gossip_is_dropped_and_never_holds_up_consensus(
    autojump_clock: MockClock,
) -> None:
    cfg = P2PConfig(network=b"net", listen=False, reverse_dial_grace_seconds=0.0,
                    inbound_queue_max=8)

    async def gossip_then_vote(link: SecureLink, attempt: int) -> None:
        envs = [Envelope(Kind.TX_BATCH, i + 1, b"txs") for i in range(50)]
        envs.append(Envelope(Kind.CONSENSUS, 51, b"vote"))
        await link.stream.send_all(b"".join(
            encode_frame(link.session.seal(e.encode()), 4096) for e in envs))
        await trio.sleep_forever()

    async with trio.open_nursery() as n:
        _Dialer(n, failures=0, behave=gossip_then_vote)
        mgr = _manager(cfg)
        gossip = mgr.subscribe(Kind.TX_BATCH, 4, drop_when_full=True)  # nobody reads it
        await n.start(mgr.run)
        with trio.fail_after(10):
            vote = await mgr.inbound.receive()
        assert (vote.kind, vote.payload, vote.lamport) == (Kind.CONSENSUS, b"vote", 51)
        assert gossip.statistics().current_buffer_used == 4
        assert mgr.statistics().frames_dropped == 46
        n.cancel_scope.cancel()
