"""PeerManager: the node's Trio driver for all peer connections.

Theory of operation
-------------------
The manager knows an address book (peer id -> public key and, optionally, host:port); the
public keys form the allowed set, so only configured peers get past the handshake. Under one
nursery it runs a TCP listener (bound before ``run`` reports ready through
``task_status.started(port)``) and one dial loop per peer, which dials once the peer has an
address (given in the book, or later through ``set_address``).

* **One connection per peer.** Each peer has one send queue (bounded in frames and bytes)
  that outlives connections; the live connection's writer drains it. A peer with a *lower*
  id is expected to dial us, so we wait ``reverse_dial_grace_seconds`` before dialling it
  ourselves. When two connections of a simultaneous dial meet anyway, the one dialled by
  the lower id survives on both ends; a new connection meeting one older than the
  handshake timeout replaces it (the peer would not dial if its end were alive;
  :func:`p2p.policy.keep_new_connection`).
  Frames in flight on a losing connection may be lost, as on any dropped TCP connection.
* **Re-dial on drop** with exponential backoff and jitter (:class:`p2p.policy.Backoff`).
* **Scores and bans** (:class:`p2p.policy.ScoreBook`): bad frames, failed handshakes and
  floods cost points; a peer at zero is banned for ``ban_ticks`` (refused inbound, not
  dialled). A stranger is refused in the handshake and logged.
* **Inbound** messages go to a per-kind channel if someone ``subscribe``-d to that kind,
  otherwise to ``inbound``. All are bounded: a slow consumer slows the readers, except for
  kinds subscribed with ``drop_when_full`` (gossip, heartbeats), which are dropped instead
  so that they never hold up consensus traffic from the same peer.
* **Outbound**: transaction batches go in the bulk lane of the peer's send queue, behind
  every other kind and limited to half its room, so gossip never delays or crowds out
  consensus. ``send`` waits for room (back-pressure), ``send_nowait`` raises
  ``QueueFull``, ``broadcast`` never waits: a peer whose queue is full misses that message
  (counted in ``frames_dropped``) so that one slow peer cannot stall the others.
* Every message gets a Lamport timestamp (one tick per send or broadcast event), merged on
  receipt; log lines show it.

Errors a peer causes are handled here (logged at warning, scored, connection closed); our own
bugs propagate and crash the nursery. Called by the node (``node/``), the gossip and
heartbeat services, and tests.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from functools import partial

import trio

from p2p.config import P2PConfig
from p2p.errors import (
    ConnectionClosed,
    FrameTooLarge,
    HandshakeFailed,
    InvalidEnvelope,
    MessageTooLarge,
    PeerBanned,
    PeerFlooding,
    QueueFull,
    SessionError,
    UnknownPeer,
)
from p2p.handshake import Identity, Role, short_key
from p2p.lamport import LamportClock
from p2p.messages import Envelope, Inbound, Kind, PeerId
from p2p.policy import Backoff, BanRecord, ScoreBook, keep_new_connection
from p2p.transport import Connection, SendQueue, TrafficCounters, secure_handshake

__all__ = ["OpenStream", "PeerInfo", "PeerManager", "PeerStatistics"]

log = logging.getLogger("phalanx.p2p.peers")

#: How the manager opens outbound streams (``trio.open_tcp_stream`` unless a test injects one).
OpenStream = Callable[[str, int], Awaitable[trio.abc.Stream]]

_BAD_FRAME_ERRORS = (FrameTooLarge, SessionError, InvalidEnvelope)
#: Kinds queued in the bulk lane of a peer's send queue (behind everything else, half the room).
_BULK_KINDS = frozenset({Kind.TX_BATCH})


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """One address book entry: a peer's id, identity key and (optional) dial address."""

    peer_id: PeerId
    public_key: bytes
    host: str | None = None
    port: int | None = None

    def __post_init__(self) -> None:
        if len(self.public_key) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        if (self.host is None) != (self.port is None):
            raise ValueError("give both host and port, or neither")


@dataclass(frozen=True, slots=True)
class PeerStatistics:
    """A snapshot of the manager's state (for ``net_info``, metrics and tests)."""

    peers_connected: int
    connected: tuple[PeerId, ...]
    queue_depths: tuple[tuple[PeerId, int], ...]
    bytes_in: int
    bytes_out: int
    frames_in: int
    frames_out: int
    frames_dropped: int
    handshake_failures: int
    handshakes_in_flight: int
    connections_refused: int
    bans: tuple[BanRecord, ...]
    lamport: int


class _Peer:
    def __init__(self, info: PeerInfo, config: P2PConfig) -> None:
        self.info = info
        self.queue = SendQueue(config.send_queue_frames_max, config.send_queue_bytes_max)
        self.connection: Connection | None = None
        self.dialer: PeerId | None = None
        self.connected_at = 0.0


class PeerManager:
    """All connections of one node.

    Args:
        self_id: our node id.
        identity_seed: our 32-byte Ed25519 seed.
        peers: the address book (entries for ``self_id`` are ignored).
        config: bounds and timings.
        rng: jitter source for backoff (seeded in tests).
        open_stream: outbound stream factory (tests inject memory streams).
        random_bytes: source of handshake randomness.
    """

    def __init__(
        self,
        self_id: PeerId,
        identity_seed: bytes,
        peers: Iterable[PeerInfo],
        config: P2PConfig | None = None,
        *,
        rng: random.Random | None = None,
        open_stream: OpenStream | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.self_id = self_id
        self.config = cfg = config or P2PConfig()
        self.identity = Identity(identity_seed)
        self._peers: dict[PeerId, _Peer] = {}
        self._by_key: dict[bytes, PeerId] = {}
        for info in peers:
            if info.peer_id == self_id:
                continue
            if info.peer_id in self._peers or info.public_key in self._by_key:
                raise ValueError(f"duplicate address book entry for peer {info.peer_id}")
            if info.public_key == self.identity.public_key:
                raise ValueError(f"peer {info.peer_id} has our own public key")
            self._peers[info.peer_id] = _Peer(info, cfg)
            self._by_key[info.public_key] = info.peer_id
        self._allowed = frozenset(self._by_key)
        self._book = tuple(self._peers[pid] for pid in sorted(self._peers))  # fixed at start
        self._rng = rng or random.Random()
        self._open_stream: OpenStream = open_stream or _open_tcp
        self._random_bytes = random_bytes
        self._inbound_tx, self.inbound = trio.open_memory_channel[Inbound](cfg.inbound_queue_max)
        self._routes: dict[Kind, trio.MemorySendChannel[Inbound]] = {}
        self._droppable: set[Kind] = set()
        self.clock = LamportClock()
        self.scores = ScoreBook(cfg)
        self._counters = TrafficCounters()
        self._frames_dropped = 0
        self._handshake_failures = 0
        self._connections_refused = 0
        self._handshakes = trio.CapacityLimiter(cfg.handshakes_inflight_max)
        self._changed = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.listen_port: int | None = None

    # ----------------------------------------------------------------- node-facing API

    @property
    def peer_ids(self) -> tuple[PeerId, ...]:
        """Every peer in the address book, sorted."""
        return tuple(sorted(self._peers))

    def subscribe(self, kind: Kind, queue_max: int | None = None, *,
                  drop_when_full: bool = False) -> trio.MemoryReceiveChannel[Inbound]:
        """Route inbound messages of ``kind`` to a new bounded channel (call before ``run``).

        Args:
            kind: the message kind.
            queue_max: the channel's bound (default ``inbound_queue_max``).
            drop_when_full: if True, a message that finds the channel full is dropped and
                counted in ``frames_dropped``; if False, the connection's reader waits for
                room (back-pressure to the peer, which also holds up that peer's other kinds).
                Use True for traffic that may be lost (gossip, heartbeats), so a slow
                consumer of it never delays consensus messages.

        Raises:
            ValueError: ``kind`` already has a subscriber.
        """
        if kind in self._routes:
            raise ValueError(f"{kind.name} already has a subscriber")
        tx, rx = trio.open_memory_channel[Inbound](queue_max or self.config.inbound_queue_max)
        self._routes[kind] = tx
        if drop_when_full:
            self._droppable.add(kind)
        return rx

    def connected_peers(self) -> tuple[PeerId, ...]:
        """Peers with a live authenticated connection, sorted."""
        return tuple(p.info.peer_id for p in self._book if p.connection is not None)

    def is_connected(self, peer: PeerId) -> bool:
        """True if ``peer`` has a live authenticated connection."""
        p = self._peers.get(peer)
        return p is not None and p.connection is not None

    async def wait_connected(self, peers: Collection[PeerId] | None = None) -> None:
        """Wait until every peer in ``peers`` (default: the whole book) is connected."""
        wanted = tuple(self._peers) if peers is None else tuple(peers)
        await self._wait_for(lambda: all(self.is_connected(p) for p in wanted))

    async def send(self, peer: PeerId, kind: Kind, payload: bytes) -> None:
        """Queue a message for ``peer``, waiting while its queue is full.

        Raises:
            UnknownPeer: ``peer`` is not in the address book.
            MessageTooLarge: ``payload`` can't fit in one frame.
        """
        p = self._peer(peer)
        await p.queue.put(self._encode(kind, payload), bulk=kind in _BULK_KINDS)

    def send_nowait(self, peer: PeerId, kind: Kind, payload: bytes) -> None:
        """Queue a message for ``peer`` without waiting.

        Raises:
            UnknownPeer: ``peer`` is not in the address book.
            MessageTooLarge: ``payload`` can't fit in one frame.
            QueueFull: the peer's send queue is full.
        """
        p = self._peer(peer)
        try:
            p.queue.put_nowait(self._encode(kind, payload), bulk=kind in _BULK_KINDS)
        except trio.WouldBlock:
            raise QueueFull(f"send queue of peer {peer} is full") from None

    async def broadcast(
        self, kind: Kind, payload: bytes, exclude: Collection[PeerId] = ()
    ) -> tuple[PeerId, ...]:
        """Queue one message (one Lamport tick) for every connected peer; never waits.

        Returns:
            The peers it was queued for (a full queue misses it; see ``frames_dropped``).

        Raises:
            MessageTooLarge: ``payload`` can't fit in one frame.
        """
        data = self._encode(kind, payload)
        bulk = kind in _BULK_KINDS
        sent = []
        for pid in self.connected_peers():
            if pid in exclude:
                continue
            try:
                self._peers[pid].queue.put_nowait(data, bulk=bulk)
                sent.append(pid)
            except trio.WouldBlock:
                self._frames_dropped += 1
                log.warning("send queue of peer %s full: %s dropped", pid, kind.name)
        await trio.lowlevel.checkpoint()
        return tuple(sent)

    def set_address(self, peer: PeerId, host: str, port: int) -> None:
        """Set or change where ``peer`` is dialled (e.g. once its port is known).

        Raises:
            UnknownPeer: ``peer`` is not in the address book.
        """
        p = self._peer(peer)
        p.info = PeerInfo(p.info.peer_id, p.info.public_key, host, port)
        self._notify()

    def disconnect(self, peer: PeerId, reason: str) -> bool:
        """Close the live connection to ``peer`` (e.g. the node's failure detector found it
        silent); the dial loops reconnect as usual.

        Returns:
            True if there was a connection to close.

        Raises:
            UnknownPeer: ``peer`` is not in the address book.
        """
        conn = self._peer(peer).connection
        if conn is None:
            return False
        conn.close(ConnectionClosed(f"closed by the node: {reason}"))
        return True

    def report(self, peer: PeerId, points: int, reason: str) -> bool:
        """Lower a peer's score for misbehaviour seen above p2p (e.g. invalid messages).

        Returns:
            True if the peer is now banned (its connection is closed).
        """
        self._peer(peer)
        banned = self.scores.penalize(peer, points, self._now(), reason)
        if banned:
            self._close_banned(peer, reason)
        return banned

    def statistics(self) -> PeerStatistics:
        """A snapshot of connections, queues, traffic, refusals and bans."""
        c = self._counters
        connected = self.connected_peers()
        return PeerStatistics(
            peers_connected=len(connected),
            connected=connected,
            queue_depths=tuple(
                (pid, self._peers[pid].queue.depth)
                for pid in sorted(self._peers)
            ),
            bytes_in=c.bytes_in,
            bytes_out=c.bytes_out,
            frames_in=c.frames_in,
            frames_out=c.frames_out,
            frames_dropped=self._frames_dropped,
            handshake_failures=self._handshake_failures,
            handshakes_in_flight=self._handshakes.borrowed_tokens,
            connections_refused=self._connections_refused,
            bans=self.scores.bans(self._now()),
            lamport=self.clock.time,
        )

    # ------------------------------------------------------------------------ driver

    async def run(self, *, task_status: trio.TaskStatus[int | None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, dial, and serve connections until cancelled.

        Reports the bound listen port (or None if not listening) through
        ``task_status.started`` once the listener accepts connections.
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self.config.listen:
                listeners = await trio.open_tcp_listeners(
                    self.config.listen_port, host=self.config.listen_host
                )
                self.listen_port = listeners[0].socket.getsockname()[1]
                await nursery.start(trio.serve_listeners, self._accept_tcp, listeners)
                log.info("peer %s listening on %s:%s", self.self_id, self.config.listen_host,
                         self.listen_port)
            for pid in sorted(self._peers):
                nursery.start_soon(self._dial_loop, self._peers[pid])
            task_status.started(self.listen_port)

    async def accept(self, stream: trio.abc.Stream, remote_host: str | None = None) -> None:
        """Serve one inbound stream (the listener calls this; tests may too)."""
        if self._handshakes.available_tokens < 1:
            self._connections_refused += 1
            log.warning("refused inbound connection from %s: too many handshakes in flight",
                        remote_host)
            await trio.aclose_forcefully(stream)
            return
        await self._serve(stream, Role.RESPONDER, None, remote_host)

    async def _accept_tcp(self, stream: trio.SocketStream) -> None:
        try:
            host = str(stream.socket.getpeername()[0])
        except OSError:
            host = None
        await self.accept(stream, host)

    async def _dial_loop(self, peer: _Peer) -> None:
        backoff = Backoff(self.config.dial_backoff_seconds_min,
                          self.config.dial_backoff_seconds_max, self._rng)
        while True:
            await self._wait_for(lambda: peer.connection is None and peer.info.host is not None)
            info = peer.info
            assert info.host is not None and info.port is not None
            now = self._now()
            ban_end = self.scores.ban_ends(info.peer_id, now)
            if ban_end is not None:
                await trio.sleep((ban_end - now) * self.config.tick_seconds)
                continue
            if info.peer_id < self.self_id:
                with trio.move_on_after(self.config.reverse_dial_grace_seconds):
                    await self._wait_for(lambda: peer.connection is not None)
                if peer.connection is not None:
                    continue
            try:
                with trio.fail_after(self.config.handshake_timeout_seconds):
                    stream = await self._open_stream(info.host, info.port)
            except (OSError, trio.TooSlowError) as e:
                delay = backoff.next_delay()
                log.info("dial peer %s at %s:%s failed (%r); retry in %.2f s", info.peer_id,
                         info.host, info.port, e, delay)
                await trio.sleep(delay)
                continue
            if await self._serve(stream, Role.INITIATOR, info, info.host):
                backoff.reset()
            await trio.sleep(backoff.next_delay())

    async def _serve(self, stream: trio.abc.Stream, role: Role, expected: PeerInfo | None,
                     remote_host: str | None) -> bool:
        """Handshake and run one connection; return True if the peer authenticated."""
        now = self._now()
        if remote_host is not None and self.scores.is_banned(remote_host, now):
            self._connections_refused += 1
            await trio.aclose_forcefully(stream)
            return False
        async with self._handshakes:
            try:
                link = await secure_handshake(
                    stream, identity=self.identity, role=role, config=self.config,
                    allowed=self._allowed,
                    expected_peer=expected.public_key if expected is not None else None,
                    random_bytes=self._random_bytes,
                )
            except HandshakeFailed as e:
                self._handshake_failures += 1
                log.warning("peer %s refused %s connection with %s: %s (lamport=%d)",
                            self.self_id, role.value, remote_host, e, self.clock.time)
                if remote_host is not None:
                    self.scores.penalize(remote_host, self.config.penalty_handshake,
                                         self._now(), f"handshake: {e}")
                await trio.aclose_forcefully(stream)
                return False
        pid = self._by_key[link.peer_identity]
        peer = self._peers[pid]
        if self.scores.is_banned(pid, self._now()):
            self._connections_refused += 1
            log.warning("peer %s refused banned peer %s", self.self_id, pid)
            await trio.aclose_forcefully(stream)
            return True
        dialer = self.self_id if role is Role.INITIATOR else pid
        if peer.connection is not None:
            assert peer.dialer is not None
            age = trio.current_time() - peer.connected_at
            if not keep_new_connection(self.self_id, pid, peer.dialer, dialer, age,
                                       self.config.handshake_timeout_seconds):
                log.info("peer %s: duplicate connection with %s closed (keeping the one "
                         "dialled by %s)", self.self_id, pid, peer.dialer)
                await trio.aclose_forcefully(stream)
                return True
            peer.connection.close(ConnectionClosed("superseded by a newer connection"))
        conn = Connection(link, config=self.config, outbound=peer.queue,
                          on_message=partial(self._on_message, pid), counters=self._counters)
        peer.connection, peer.dialer, peer.connected_at = conn, dialer, trio.current_time()
        self._notify()
        log.info("peer %s connected to %s (%s, key %s, lamport=%d)", self.self_id, pid,
                 role.value, short_key(link.peer_identity), self.clock.time)
        try:
            reason = await conn.run()
        finally:
            if peer.connection is conn:
                peer.connection, peer.dialer = None, None
                self._notify()
        if isinstance(reason, _BAD_FRAME_ERRORS):
            log.warning("peer %s dropped %s for a bad frame: %s", self.self_id, pid, reason)
            if self.scores.penalize(pid, self.config.penalty_bad_frame, self._now(), str(reason)):
                log.warning("peer %s banned %s: %s", self.self_id, pid, reason)
        else:
            log.info("peer %s disconnected from %s: %s (lamport=%d)", self.self_id, pid, reason,
                     self.clock.time)
        return True

    async def _on_message(self, pid: PeerId, envelope: Envelope) -> None:
        now = self._now()
        if not self.scores.allow_message(pid, now):
            self._frames_dropped += 1
            if self.scores.penalize(pid, self.config.penalty_flood, now, "flood"):
                raise PeerFlooding(f"peer {pid} exceeded its inbound message rate")
            return
        local = self.clock.observe(envelope.lamport)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("peer %s got %s from %s (%d bytes, lamport=%d, local=%d)", self.self_id,
                      envelope.kind.name, pid, len(envelope.payload), envelope.lamport, local)
        channel = self._routes.get(envelope.kind, self._inbound_tx)
        item = Inbound(pid, envelope.kind, envelope.lamport, envelope.payload)
        try:  # no schedule point per message while there is room; the reader yields per chunk
            channel.send_nowait(item)
        except trio.WouldBlock:
            if envelope.kind in self._droppable:
                self._frames_dropped += 1
                return
            await channel.send(item)

    # ----------------------------------------------------------------------- helpers

    def _peer(self, peer: PeerId) -> _Peer:
        p = self._peers.get(peer)
        if p is None:
            raise UnknownPeer(f"peer {peer} is not in the address book")
        return p

    def _encode(self, kind: Kind, payload: bytes) -> bytes:
        if len(payload) > self.config.payload_bytes_max:
            raise MessageTooLarge(
                f"payload of {len(payload)} bytes exceeds {self.config.payload_bytes_max}"
            )
        return Envelope(kind, self.clock.tick(), payload).encode()

    def _close_banned(self, peer: PeerId, reason: str) -> None:
        conn = self._peers[peer].connection
        if conn is not None:
            conn.close(PeerBanned(f"peer {peer} banned: {reason}"))

    def _now(self) -> int:
        return int(trio.current_time() / self.config.tick_seconds)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _wait_for(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()


async def _open_tcp(host: str, port: int) -> trio.abc.Stream:
    return await trio.open_tcp_stream(host, port)
