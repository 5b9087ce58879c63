"""p2p: Trio networking for Phalanx nodes; carries opaque payloads.

Length-prefixed frames (:mod:`p2p.framing`), an authenticated X25519/Ed25519 handshake
(:mod:`p2p.handshake`), ChaCha20-Poly1305 sessions (:mod:`p2p.session`), message envelopes
with Lamport timestamps (:mod:`p2p.messages`, :mod:`p2p.lamport`), the per-connection driver
(:mod:`p2p.transport`), the peer manager (:mod:`p2p.peers`, policy in :mod:`p2p.policy`),
transaction gossip (:mod:`p2p.gossip` core, :mod:`p2p.gossip_service` driver), heartbeats
(:mod:`p2p.heartbeat`), vector clocks (:mod:`p2p.clocks`) and sans-IO broadcast cores
(:mod:`p2p.broadcast`; its message kind is re-exported as ``BroadcastKind``). Imports nothing from chain, consensus or node.

How a node wires it (one root nursery)::

    book = [PeerInfo(PeerId(i), pubkey_i, host_i, port_i) for each validator i]
    peers = PeerManager(PeerId(me), my_seed, book, P2PConfig(network=chain_id_tag, ...))
    consensus_in = peers.subscribe(Kind.CONSENSUS)          # back-pressure, never dropped
    gossip = GossipService(peers, TxGossip(GossipConfig(relay=False), tx_hash))
    beats = HeartbeatService(peers, status=lambda: encode(height, view))
    port = await nursery.start(peers.run)                   # listener bound first
    await nursery.start(gossip.run); await nursery.start(beats.run)
    ...
    await peers.send(PeerId(2), Kind.CONSENSUS, msg)        # or: await peers.broadcast(...)
    async for peer, kind, lamport, payload in consensus_in: ...
    async for peer, tx in gossip.delivered: validate; await gossip.submit(tx, origin=peer)
    async for hb in beats.received: failure_detector.observe(hb.peer, hb.status)

Messages of kinds nobody subscribed to arrive on ``peers.inbound``; subscribe every kind the
node handles, since an unread ``inbound`` channel holds up the readers.
"""

from p2p.broadcast import (
    BestEffortBroadcast,
    BrachaBroadcast,
    BroadcastMessage,
    BroadcastOutput,
    BroadcastStatistics,
    CausalBroadcast,
    CausalMessage,
    Delivered,
    Incoming,
    InvalidBroadcastMessage,
    Originate,
    PlainMessage,
    decode_broadcast_message,
)
from p2p.broadcast import Kind as BroadcastKind
from p2p.clocks import (
    VECTOR_ENTRIES_MAX,
    InvalidVectorStamp,
    VectorClock,
    VectorStamp,
    decode_vector_stamp,
    merge_logs,
)
from p2p.config import P2PConfig
from p2p.errors import (
    ConnectionClosed,
    FrameTooLarge,
    HandshakeFailed,
    HandshakeTimeout,
    InvalidBatch,
    InvalidEnvelope,
    MessageTooLarge,
    P2PError,
    PeerBanned,
    PeerFlooding,
    QueueFull,
    SessionError,
    UnknownPeer,
)
from p2p.gossip import GossipConfig, GossipOutput, TxGossip
from p2p.gossip_service import GossipService
from p2p.handshake import Handshake, Identity, Role
from p2p.heartbeat import Heartbeat, HeartbeatService, HeartbeatTracker
from p2p.lamport import LamportClock
from p2p.messages import Envelope, Inbound, Kind, PeerId
from p2p.peers import PeerInfo, PeerManager, PeerStatistics
from p2p.session import Session

__all__ = [
    "VECTOR_ENTRIES_MAX",
    "BestEffortBroadcast",
    "BrachaBroadcast",
    "BroadcastKind",
    "BroadcastMessage",
    "BroadcastOutput",
    "BroadcastStatistics",
    "CausalBroadcast",
    "CausalMessage",
    "ConnectionClosed",
    "Delivered",
    "Envelope",
    "FrameTooLarge",
    "GossipConfig",
    "GossipOutput",
    "GossipService",
    "Handshake",
    "HandshakeFailed",
    "HandshakeTimeout",
    "Heartbeat",
    "HeartbeatService",
    "HeartbeatTracker",
    "Identity",
    "Inbound",
    "Incoming",
    "InvalidBatch",
    "InvalidBroadcastMessage",
    "InvalidEnvelope",
    "InvalidVectorStamp",
    "Kind",
    "LamportClock",
    "MessageTooLarge",
    "Originate",
    "P2PConfig",
    "P2PError",
    "PeerBanned",
    "PeerFlooding",
    "PeerId",
    "PeerInfo",
    "PeerManager",
    "PeerStatistics",
    "PlainMessage",
    "QueueFull",
    "Role",
    "Session",
    "SessionError",
    "TxGossip",
    "UnknownPeer",
    "VectorClock",
    "VectorStamp",
    "decode_broadcast_message",
    "decode_vector_stamp",
    "merge_logs",
]
