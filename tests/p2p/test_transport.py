"""The Trio connection driver over in-memory streams, with the autojump clock (no real time)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from p2p.config import P2PConfig
from p2p.errors import (
    ConnectionClosed,
    FrameTooLarge,
    HandshakeFailed,
    HandshakeTimeout,
    InvalidEnvelope,
    SessionError,
    UnknownPeer,
)
from p2p.framing import FrameDecoder, encode_frame
from p2p.handshake import Identity, Role
from p2p.messages import Envelope, Kind
from p2p.transport import Connection, SecureLink, SendQueue, TrafficCounters, secure_handshake

from .helpers import identity, make_pair, run_pair

CFG = P2PConfig(network=b"net", handshake_timeout_seconds=5.0, frame_bytes_max=1024)
A, B, STRANGER = identity(1), identity(2), identity(66)


async def _handshake_both(
    sa: trio.abc.Stream, sb: trio.abc.Stream
) -> tuple[SecureLink, SecureLink]:
    links: dict[str, SecureLink] = {}

    async def side(name: str, stream: trio.abc.Stream, role: Role, me: Identity,
                   peer: bytes) -> None:
        links[name] = await secure_handshake(stream, identity=me, role=role, config=CFG,
                                             allowed={peer})

    async with trio.open_nursery() as n:
        n.start_soon(side, "a", sa, Role.INITIATOR, A, B.public_key)
        n.start_soon(side, "b", sb, Role.RESPONDER, B, A.public_key)
    return links["a"], links["b"]


def _connection(link: SecureLink, sink: list[Envelope], queue_max: int = 16,
                bytes_max: int = 1 << 20) -> tuple[Connection, SendQueue]:
    queue = SendQueue(queue_max, bytes_max)

    async def on_message(env: Envelope) -> None:
        sink.append(env)

    return Connection(link, config=CFG, outbound=queue, on_message=on_message,
                      counters=TrafficCounters()), queue


async def test_handshake_over_memory_streams_then_messages_flow(autojump_clock: MockClock) -> None:
    sa, sb = trio.testing.memory_stream_pair()
    la, lb = await _handshake_both(sa, sb)
    assert la.peer_identity == B.public_key and lb.peer_identity == A.public_key
    got: list[Envelope] = []
    ca, txa = _connection(la, [])
    cb, _ = _connection(lb, got)
    async with trio.open_nursery() as n:
        n.start_soon(ca.run)
        n.start_soon(cb.run)
        for i in range(5):
            await txa.put(Envelope(Kind.CONSENSUS, i + 1, b"m%d" % i).encode())
        with trio.fail_after(1):
            while len(got) < 5:
                await trio.sleep(0.01)
        n.cancel_scope.cancel()
    assert [e.payload for e in got] == [b"m%d" % i for i in range(5)]


async def test_handshake_timeout_fires_without_real_time(autojump_clock: MockClock) -> None:
    sa, _silent = trio.testing.memory_stream_pair()
    start = trio.current_time()
    try:
        await secure_handshake(sa, identity=A, role=Role.INITIATOR, config=CFG,
                               allowed={B.public_key})
    except HandshakeTimeout as e:
        assert "5.0 s" in str(e)
    else:
        raise AssertionError("no timeout")
    assert trio.current_time() - start >= 5.0


async def test_stranger_refused_and_its_side_sees_the_close(autojump_clock: MockClock) -> None:
    sa, sb = trio.testing.memory_stream_pair()
    errors: dict[str, Exception] = {}

    async def responder() -> None:
        try:
            await secure_handshake(sb, identity=B, role=Role.RESPONDER, config=CFG,
                                   allowed={A.public_key})
        except HandshakeFailed as e:
            errors["b"] = e
            await sb.aclose()

    async def stranger() -> None:
        try:
            await secure_handshake(sa, identity=STRANGER, role=Role.INITIATOR, config=CFG,
                                   allowed={B.public_key})
        except HandshakeFailed as e:
            errors["s"] = e

    async with trio.open_nursery() as n:
        n.start_soon(responder)
        n.start_soon(stranger)
    assert isinstance(errors["b"], UnknownPeer)
    assert "unknown peer identity" in str(errors["b"])
    assert isinstance(errors["s"], HandshakeFailed)
    assert trio.current_time() < CFG.handshake_timeout_seconds  # refused at once, not by timeout


async def test_oversized_frame_during_handshake_fails_it(autojump_clock: MockClock) -> None:
    sa, sb = trio.testing.memory_stream_pair()
    await sb.send_all(b"\x00\x10\x00\x00")  # announces 1 MiB
    try:
        await secure_handshake(sa, identity=A, role=Role.INITIATOR, config=CFG,
                               allowed={B.public_key})
    except HandshakeFailed as e:
        assert "limit" in str(e)
    else:
        raise AssertionError("accepted an oversized handshake frame")


def _sans_io_links(sa: trio.abc.Stream, sb: trio.abc.Stream) -> tuple[SecureLink, SecureLink]:
    ri, rr = run_pair(*make_pair(A, B))
    return (SecureLink(sa, B.public_key, ri.session, FrameDecoder(CFG.frame_bytes_max)),
            SecureLink(sb, A.public_key, rr.session, FrameDecoder(CFG.frame_bytes_max)))


async def test_bounded_send_queue_applies_back_pressure(autojump_clock: MockClock) -> None:
    sa, sb = trio.testing.lockstep_stream_pair()  # send_all blocks until the peer reads
    la, lb = _sans_io_links(sa, sb)
    got: list[Envelope] = []
    ca, tx = _connection(la, [], queue_max=2)
    cb, _ = _connection(lb, got)
    msgs = [Envelope(Kind.CONSENSUS, i + 1, b"x%d" % i).encode() for i in range(4)]
    async with trio.open_nursery() as n:
        n.start_soon(ca.run)
        await tx.put(msgs[0])
        await trio.testing.wait_all_tasks_blocked()  # writer took it and is stuck in send_all
        tx.put_nowait(msgs[1])
        tx.put_nowait(msgs[2])
        try:
            tx.put_nowait(msgs[3])
        except trio.WouldBlock:
            pass
        else:
            raise AssertionError("queue is not bounded")
        with trio.move_on_after(30) as scope:
            await tx.put(msgs[3])
        assert scope.cancelled_caught  # send waited: the bound is the back-pressure
        n.start_soon(cb.run)  # the reader drains; everything flows again
        await tx.put(msgs[3])
        with trio.fail_after(1):
            while len(got) < 4:
                await trio.sleep(0.01)
        n.cancel_scope.cancel()
    assert [e.encode() for e in got] == msgs


async def _run_reader_against(make_bytes: Callable[[SecureLink], bytes]) -> Exception:
    """Write what ``make_bytes`` builds (with the sender's session) and run the reader."""
    sa, sb = trio.testing.memory_stream_pair()
    la, lb = _sans_io_links(sa, sb)
    cb, _ = _connection(lb, [])
    await sa.send_all(make_bytes(la))
    with trio.fail_after(5):
        return await cb.run()


async def test_tampered_frame_closes_the_connection(autojump_clock: MockClock) -> None:
    def tampered(la: SecureLink) -> bytes:
        ct = bytearray(la.session.seal(Envelope(Kind.CONSENSUS, 1, b"hello").encode()))
        ct[-1] ^= 1
        return encode_frame(bytes(ct), 1024)

    assert isinstance(await _run_reader_against(tampered), SessionError)


async def test_replayed_frame_closes_the_connection(autojump_clock: MockClock) -> None:
    def replayed(la: SecureLink) -> bytes:
        frame = encode_frame(la.session.seal(Envelope(Kind.CONSENSUS, 1, b"x").encode()), 1024)
        return frame + frame

    assert isinstance(await _run_reader_against(replayed), SessionError)


async def test_reordered_frames_close_the_connection(autojump_clock: MockClock) -> None:
    def reordered(la: SecureLink) -> bytes:
        f1 = encode_frame(la.session.seal(Envelope(Kind.CONSENSUS, 1, b"1").encode()), 1024)
        f2 = encode_frame(la.session.seal(Envelope(Kind.CONSENSUS, 2, b"2").encode()), 1024)
        return f2 + f1

    assert isinstance(await _run_reader_against(reordered), SessionError)


async def test_oversized_frame_closes_the_connection(autojump_clock: MockClock) -> None:
    assert isinstance(await _run_reader_against(lambda _: b"\x7f\xff\xff\xff"), FrameTooLarge)


async def test_authentic_garbage_envelope_closes_the_connection(autojump_clock: MockClock) -> None:
    def garbage(la: SecureLink) -> bytes:
        return encode_frame(la.session.seal(b"\x01\x02\x03"), 1024)

    assert isinstance(await _run_reader_against(garbage), InvalidEnvelope)


async def test_peer_closing_ends_the_connection_cleanly(autojump_clock: MockClock) -> None:
    sa, sb = trio.testing.memory_stream_pair()
    _, lb = _sans_io_links(sa, sb)
    cb, _ = _connection(lb, [])
    await sa.aclose()
    assert isinstance(await cb.run(), ConnectionClosed)


async def test_send_queue_is_bounded_in_bytes_as_well_as_frames(autojump_clock: MockClock) -> None:
    q = SendQueue(frames_max=100, bytes_max=1000)
    q.put_nowait(b"a" * 600)
    try:
        q.put_nowait(b"b" * 600)
    except trio.WouldBlock:
        pass
    else:
        raise AssertionError("byte bound not enforced")
    q.put_nowait(b"c" * 400)
    assert (q.depth, q.queued_bytes) == (2, 1000)
    async with trio.open_nursery() as n:
        n.start_soon(q.put, b"d" * 600)  # waits for room
        await trio.testing.wait_all_tasks_blocked()
        assert q.depth == 2
        assert await q.get() == b"a" * 600
    assert (q.depth, q.queued_bytes) == (2, 1000)
    empty = SendQueue(frames_max=4, bytes_max=10)
    empty.put_nowait(b"x" * 50)  # one oversized item still fits an empty queue
    assert empty.get_nowait() == b"x" * 50


async def test_urgent_frames_overtake_bulk_and_bulk_gets_half_the_room(
    autojump_clock: MockClock,
) -> None:
    q = SendQueue(frames_max=8, bytes_max=10_000)
    for i in range(4):
        q.put_nowait(b"gossip %d" % i, bulk=True)
    try:
        q.put_nowait(b"gossip 4", bulk=True)  # bulk may fill only half the frames
    except trio.WouldBlock:
        pass
    else:
        raise AssertionError("bulk lane not limited")
    for i in range(4):
        q.put_nowait(b"vote %d" % i)  # consensus still finds room
    order = [await q.get() for _ in range(8)]
    assert order == [b"vote %d" % i for i in range(4)] + [b"gossip %d" % i for i in range(4)]
    assert q.queued_bytes == 0
    half = SendQueue(frames_max=100, bytes_max=1000)
    half.put_nowait(b"x" * 400, bulk=True)
    with pytest.raises(trio.WouldBlock):
        half.put_nowait(b"y" * 200, bulk=True)  # bulk bytes capped at 500
    half.put_nowait(b"z" * 600)


async def test_idle_connection_is_closed_after_the_idle_timeout(autojump_clock: MockClock) -> None:
    sa, sb = trio.testing.memory_stream_pair()
    la, lb = _sans_io_links(sa, sb)
    queue = SendQueue(4, 4096)
    cfg = P2PConfig(network=b"net", frame_bytes_max=1024, idle_timeout_seconds=10.0)

    async def ignore(env: Envelope) -> None:
        return None

    conn = Connection(lb, config=cfg, outbound=queue, on_message=ignore,
                      counters=TrafficCounters())
    async with trio.open_nursery() as n:
        result: list[Exception] = []

        async def run() -> None:
            result.append(await conn.run())

        n.start_soon(run)
        await trio.sleep(8)
        await sa.send_all(encode_frame(la.session.seal(Envelope(Kind.HEARTBEAT, 1, b"").encode()),
                                       1024))  # traffic at t=8 restarts the idle clock
        await trio.sleep(9)
        assert not result
    assert isinstance(result[0], ConnectionClosed) and "nothing received" in str(result[0])
    assert 18.0 - 1e-6 <= trio.current_time() <= 18.0 + 1e-3
