"""Configuration of the p2p layer: every bound and timing in one frozen dataclass.

Sizes are bytes, counts are items, durations are seconds for the Trio drivers and ticks for
the sans-IO policy (``tick_seconds`` converts). Built by the node from ``config.toml``; tests
build it directly with small values.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2p.handshake import NETWORK_BYTES_MAX
from p2p.messages import ENVELOPE_OVERHEAD_BYTES_MAX
from p2p.session import TAG_BYTES

__all__ = ["P2PConfig"]


@dataclass(frozen=True, slots=True)
class P2PConfig:
    """Bounds and timings of the p2p layer.

    Attributes:
        network: network tag (chain id); peers on another network are refused.
        listen_host: address the listener binds (``127.0.0.1`` for local testnets).
        listen_port: port to bind; 0 picks a free one (reported by ``PeerManager.run``).
        listen: whether to accept inbound connections at all.
        frame_bytes_max: largest encrypted frame on the wire (payload + envelope + tag).
        recv_chunk_bytes: bytes asked of the stream per read.
        send_batch_bytes_max: the writer coalesces queued frames up to this many bytes into
            one ``send_all``.
        send_queue_frames_max / send_queue_bytes_max: bounds of each peer's send queue (the
            back-pressure point); a peer that stops reading costs at most this much memory.
        inbound_queue_max: bound of each inbound channel handed to the node.
        handshake_timeout_seconds: deadline for the whole handshake.
        idle_timeout_seconds: close a connection that received nothing for this long (None:
            never). Set it a few heartbeat intervals long when heartbeats run, so a peer
            whose host vanished without closing TCP is noticed and re-dialled.
        dial_backoff_seconds_min / dial_backoff_seconds_max: exponential re-dial backoff.
        reverse_dial_grace_seconds: a node waits this long before dialling a peer with a
            lower id (which is expected to dial it), so that normally one connection forms.
        tick_seconds: length of one policy tick.
        score_start: a peer's score when first seen or after a ban ends.
        score_recover_per_tick: points regained per tick, up to ``score_start``.
        ban_ticks: how long a peer whose score fell to zero is refused.
        penalty_bad_frame / penalty_handshake / penalty_flood: score lost per offence.
        flood_msgs_per_tick / flood_burst_msgs: inbound token bucket per peer.
        tracked_peers_max: bound on score/ban records (strangers included).
        handshakes_inflight_max: inbound connections still handshaking; more are refused.
    """

    network: bytes = b"phalanx/local"
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    listen: bool = True
    frame_bytes_max: int = 4 * 1024 * 1024
    recv_chunk_bytes: int = 256 * 1024
    send_batch_bytes_max: int = 256 * 1024
    send_queue_frames_max: int = 4096
    send_queue_bytes_max: int = 32 * 1024 * 1024
    inbound_queue_max: int = 4096
    handshake_timeout_seconds: float = 5.0
    idle_timeout_seconds: float | None = None
    dial_backoff_seconds_min: float = 0.05
    dial_backoff_seconds_max: float = 5.0
    reverse_dial_grace_seconds: float = 1.0
    tick_seconds: float = 0.01
    score_start: int = 100
    score_recover_per_tick: float = 0.01
    ban_ticks: int = 6000
    penalty_bad_frame: int = 50
    penalty_handshake: int = 20
    penalty_flood: int = 5
    flood_msgs_per_tick: float = 500.0
    flood_burst_msgs: int = 50_000
    tracked_peers_max: int = 4096
    handshakes_inflight_max: int = 64

    def __post_init__(self) -> None:
        if len(self.network) > NETWORK_BYTES_MAX:
            raise ValueError(f"network tag longer than {NETWORK_BYTES_MAX} bytes")
        if self.frame_bytes_max <= TAG_BYTES + ENVELOPE_OVERHEAD_BYTES_MAX:
            raise ValueError("frame_bytes_max too small")
        if self.send_queue_frames_max < 1 or self.inbound_queue_max < 1:
            raise ValueError("queue bounds must be at least 1")
        if not 0 < self.dial_backoff_seconds_min <= self.dial_backoff_seconds_max:
            raise ValueError("need 0 < dial_backoff_seconds_min <= dial_backoff_seconds_max")
        if self.idle_timeout_seconds is not None and self.idle_timeout_seconds <= 0:
            raise ValueError("idle_timeout_seconds must be positive or None")
        if self.tick_seconds <= 0:
            raise ValueError("tick_seconds must be positive")

    @property
    def payload_bytes_max(self) -> int:
        """Largest payload one message can carry."""
        return self.frame_bytes_max - TAG_BYTES - ENVELOPE_OVERHEAD_BYTES_MAX
