"""Trio driver for one connection: secure handshake, then a reader and a writer task.

Theory of operation
-------------------
:func:`secure_handshake` runs the sans-IO :class:`~p2p.handshake.Handshake` over any Trio
stream (TCP in the node, ``memory_stream_pair`` in tests) under ``trio.fail_after``; every
failure, including the deadline and a stream closing early, becomes
:class:`~p2p.errors.HandshakeFailed`. It returns a :class:`SecureLink` whose frame decoder
still holds any bytes that arrived right behind the handshake.

:class:`Connection` then runs two tasks until either ends:

* the reader pulls chunks, cuts frames, opens each with the session, decodes the envelope
  and awaits the ``on_message`` callback (so a slow consumer slows the reader, and TCP slows
  the peer: back-pressure end to end); with ``idle_timeout_seconds`` set it also closes a
  connection that received nothing for that long;
* the writer takes plaintext envelopes from a :class:`SendQueue` (the per-peer send queue,
  bounded in frames and bytes, owned by the caller so it outlives one connection), drains whatever else is already
  queued up to ``send_batch_bytes_max``, seals each, and writes them all with one
  ``send_all`` -- one syscall for many frames.

``run()`` returns why the connection closed, as a :class:`~p2p.errors.P2PError`: a peer's
fault (``FrameTooLarge``, ``SessionError``, ``InvalidEnvelope``, ``PeerFlooding``) or a plain
``ConnectionClosed``. It never raises them: the caller (``p2p.peers``) decides on scores.

Used by ``p2p.peers`` and the benchmark.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

import trio

from p2p.config import P2PConfig
from p2p.errors import ConnectionClosed, HandshakeFailed, HandshakeTimeout, P2PError
from p2p.framing import FrameDecoder, encode_frame
from p2p.handshake import HANDSHAKE_FRAME_BYTES_MAX, Handshake, Identity, Role
from p2p.messages import Envelope
from p2p.session import Session

__all__ = ["Connection", "SecureLink", "SendQueue", "TrafficCounters", "secure_handshake"]

RandomBytes = Callable[[int], bytes]
_STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


@dataclass(slots=True)
class TrafficCounters:
    """Running totals shared by a node's connections (read by ``statistics()``)."""

    bytes_in: int = 0
    bytes_out: int = 0
    frames_in: int = 0
    frames_out: int = 0


class SendQueue:
    """A peer's bounded send queue with two lanes: urgent and bulk.

    Bounds: at most ``frames_max`` items *and* ``bytes_max`` bytes in all (counting frames
    alone would let a peer that never reads make us hold ``frames_max`` frames of up to
    ``frame_bytes_max`` each); the bulk lane (transaction gossip) may use only half of each,
    so consensus traffic always finds room. The writer takes urgent items first. One item
    larger than the byte bound is still accepted into an empty queue, so any frame-sized
    message can be sent.

    Args:
        frames_max: bound on queued items.
        bytes_max: bound on queued bytes.
    """

    def __init__(self, frames_max: int, bytes_max: int) -> None:
        if frames_max < 1 or bytes_max < 1:
            raise ValueError("queue bounds must be at least 1")
        self._frames_max = frames_max
        self._bytes_max = bytes_max
        self._urgent: deque[bytes] = deque()
        self._bulk: deque[bytes] = deque()
        self.queued_bytes = 0
        self._bulk_bytes = 0
        self._room = trio.Event()
        self._ready = trio.Event()

    @property
    def depth(self) -> int:
        """Items queued (both lanes)."""
        return len(self._urgent) + len(self._bulk)

    def put_nowait(self, data: bytes, *, bulk: bool = False) -> None:
        """Queue ``data`` or raise ``trio.WouldBlock`` if a bound would be exceeded."""
        n = len(data)
        if self.depth >= self._frames_max or (
            self.queued_bytes and self.queued_bytes + n > self._bytes_max
        ):
            raise trio.WouldBlock
        if bulk:
            if len(self._bulk) >= max(1, self._frames_max // 2) or (
                self._bulk_bytes and self._bulk_bytes + n > self._bytes_max // 2
            ):
                raise trio.WouldBlock
            self._bulk.append(data)
            self._bulk_bytes += n
        else:
            self._urgent.append(data)
        self.queued_bytes += n
        self._ready.set()

    async def put(self, data: bytes, *, bulk: bool = False) -> None:
        """Queue ``data``, waiting for room."""
        while True:
            try:
                self.put_nowait(data, bulk=bulk)
            except trio.WouldBlock:
                await self._room.wait()
            else:
                await trio.lowlevel.checkpoint()
                return

    async def get(self) -> bytes:
        """Take the next item (urgent first), waiting for one."""
        if self.depth:
            await trio.lowlevel.checkpoint()
        while not self.depth:
            if self._ready.is_set():
                self._ready = trio.Event()
            await self._ready.wait()
        return self.get_nowait()

    def get_nowait(self) -> bytes:
        """Take the next item (urgent first) or raise ``trio.WouldBlock``."""
        if self._urgent:
            data = self._urgent.popleft()
        elif self._bulk:
            data = self._bulk.popleft()
            self._bulk_bytes -= len(data)
        else:
            raise trio.WouldBlock
        self.queued_bytes -= len(data)
        self._room.set()
        self._room = trio.Event()
        return data


@dataclass(frozen=True, slots=True)
class SecureLink:
    """An authenticated, encrypted stream ready for a :class:`Connection`."""

    stream: trio.abc.Stream
    peer_identity: bytes
    session: Session
    decoder: FrameDecoder


async def secure_handshake(
    stream: trio.abc.Stream,
    *,
    identity: Identity,
    role: Role,
    config: P2PConfig,
    allowed: Collection[bytes],
    expected_peer: bytes | None = None,
    random_bytes: RandomBytes = os.urandom,
) -> SecureLink:
    """Run the handshake over ``stream`` within ``config.handshake_timeout_seconds``.

    Args:
        stream: a fresh bidirectional stream.
        identity: our identity.
        role: ``INITIATOR`` if we dialled.
        config: network tag, timeout, frame bound.
        allowed: identity keys we accept.
        expected_peer: the identity we dialled, if any.
        random_bytes: source of the ephemeral secret and nonce.

    Returns:
        The link, with the peer's proven identity and the session.

    Raises:
        HandshakeFailed: any deviation (``UnknownPeer`` for a stranger,
            ``HandshakeTimeout`` when the deadline passes). The stream is left open; the
            caller closes it.
    """
    hs = Handshake(
        identity=identity,
        role=role,
        network=config.network,
        allowed=allowed,
        ephemeral_secret=random_bytes(32),
        nonce=random_bytes(32),
        expected_peer=expected_peer,
    )
    decoder = FrameDecoder(HANDSHAKE_FRAME_BYTES_MAX)
    try:
        with trio.fail_after(config.handshake_timeout_seconds):
            await stream.send_all(_frames(hs.start(), HANDSHAKE_FRAME_BYTES_MAX))
            while not hs.done:
                frame = decoder.next_frame()
                if frame is None:
                    data = await stream.receive_some(HANDSHAKE_FRAME_BYTES_MAX * 2)
                    if not data:
                        raise HandshakeFailed("connection closed during handshake")
                    decoder.feed(data)
                    continue
                out = hs.receive(frame)
                if out:
                    await stream.send_all(_frames(out, HANDSHAKE_FRAME_BYTES_MAX))
    except trio.TooSlowError as e:
        raise HandshakeTimeout(
            f"handshake not finished within {config.handshake_timeout_seconds} s"
        ) from e
    except HandshakeFailed:
        raise
    except P2PError as e:
        raise HandshakeFailed(str(e)) from e
    except _STREAM_ERRORS as e:
        raise HandshakeFailed(f"stream failed during handshake: {e!r}") from e
    result = hs.result()
    decoder.frame_bytes_max = config.frame_bytes_max
    return SecureLink(stream, result.peer_identity, result.session, decoder)


def _frames(bodies: list[bytes], frame_bytes_max: int) -> bytes:
    return b"".join(encode_frame(b, frame_bytes_max) for b in bodies)


class Connection:
    """Reader and writer tasks over one secure link.

    Args:
        link: the result of :func:`secure_handshake`.
        config: frame and batching bounds.
        outbound: the peer's send queue (encoded envelopes); may outlive this connection.
        on_message: awaited for every inbound envelope; raising a ``P2PError`` closes the
            connection with that reason.
        counters: traffic totals to add to.
    """

    def __init__(
        self,
        link: SecureLink,
        *,
        config: P2PConfig,
        outbound: SendQueue,
        on_message: Callable[[Envelope], Awaitable[None]],
        counters: TrafficCounters,
    ) -> None:
        self.link = link
        self._cfg = config
        self._outbound = outbound
        self._on_message = on_message
        self._counters = counters
        self._scope: trio.CancelScope | None = None
        self._close_requested = False
        self.close_reason: P2PError | None = None

    def close(self, reason: P2PError) -> None:
        """Ask the connection to stop (from another task); ``run`` returns ``reason``."""
        if self.close_reason is None:
            self.close_reason = reason
        self._close_requested = True
        if self._scope is not None:
            self._scope.cancel()

    async def run(self) -> P2PError:
        """Run until the stream closes, the peer misbehaves or :meth:`close` is called.

        Returns:
            Why the connection closed.
        """
        try:
            if not self._close_requested:
                async with trio.open_nursery() as nursery:
                    self._scope = nursery.cancel_scope
                    nursery.start_soon(self._guard, self._reader, nursery)
                    nursery.start_soon(self._guard, self._writer, nursery)
        finally:
            await trio.aclose_forcefully(self.link.stream)
        return self.close_reason or ConnectionClosed("connection closed")

    async def _guard(self, fn: Callable[[], Awaitable[None]], nursery: trio.Nursery) -> None:
        try:
            await fn()
        except P2PError as e:
            if self.close_reason is None:
                self.close_reason = e
        except _STREAM_ERRORS as e:
            if self.close_reason is None:
                self.close_reason = ConnectionClosed(f"stream failed: {e!r}")
        finally:
            nursery.cancel_scope.cancel()

    async def _reader(self) -> None:
        stream, session, decoder = self.link.stream, self.link.session, self.link.decoder
        counters, chunk = self._counters, self._cfg.recv_chunk_bytes
        idle = self._cfg.idle_timeout_seconds
        while True:
            while (frame := decoder.next_frame()) is not None:
                envelope = Envelope.decode(session.open(frame))
                counters.frames_in += 1
                await self._on_message(envelope)
            if idle is None:
                data = await stream.receive_some(chunk)
            else:
                try:
                    with trio.fail_after(idle):
                        data = await stream.receive_some(chunk)
                except trio.TooSlowError:
                    raise ConnectionClosed(f"nothing received for {idle} s") from None
            if not data:
                raise ConnectionClosed("peer closed the connection")
            counters.bytes_in += len(data)
            decoder.feed(data)

    async def _writer(self) -> None:
        stream, session, outbound = self.link.stream, self.link.session, self._outbound
        counters, batch_max, frame_max = self._counters, self._cfg.send_batch_bytes_max, self._cfg.frame_bytes_max
        while True:
            first = await outbound.get()
            parts = [encode_frame(session.seal(first), frame_max)]
            size = len(parts[0])
            while size < batch_max:
                try:
                    item = outbound.get_nowait()
                except trio.WouldBlock:
                    break
                frame = encode_frame(session.seal(item), frame_max)
                parts.append(frame)
                size += len(frame)
            await stream.send_all(b"".join(parts))
            counters.frames_out += len(parts)
            counters.bytes_out += size
