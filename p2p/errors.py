"""The p2p package's exception hierarchy.

Every error raised on purpose by ``p2p`` derives from :class:`P2PError`. Most of them mean
*a peer is wrong* (bad bytes, a failed handshake, a flood): the connection that carried the
bad input is closed, the peer's score drops, and the node keeps running. A few mean *the
caller is wrong* (:class:`UnknownPeer` on ``send``, :class:`MessageTooLarge`); those are
raised straight to the caller. Bugs in our own code are assertions, not ``P2PError``.
"""

from __future__ import annotations

__all__ = [
    "ConnectionClosed",
    "FrameTooLarge",
    "HandshakeFailed",
    "HandshakeTimeout",
    "InvalidBatch",
    "InvalidEnvelope",
    "MessageTooLarge",
    "P2PError",
    "PeerBanned",
    "PeerFlooding",
    "QueueFull",
    "SessionError",
    "UnknownPeer",
]


class P2PError(Exception):
    """Base of every deliberate error raised by the p2p package."""


class FrameTooLarge(P2PError):
    """Raised when a frame header announces more than ``frame_bytes_max`` bytes.

    The decoder raises as soon as it has read the 4-byte length, without buffering the body,
    and stays failed afterwards: the connection must be closed.
    """


class HandshakeFailed(P2PError):
    """Raised when the authenticated key exchange deviates in any way.

    Malformed or oversized handshake messages, a wrong network tag or protocol version, a
    bad signature, a reflected key, a connection to ourselves, a peer presenting another
    identity than the one we dialled, or the stream closing early.
    """


class UnknownPeer(HandshakeFailed):
    """Raised when a peer's identity key is not in the allowed set (a stranger).

    Also raised by ``PeerManager.send`` for a peer id that is not in the address book.
    """


class HandshakeTimeout(HandshakeFailed):
    """Raised by the Trio driver when the handshake does not finish within its deadline."""


class SessionError(P2PError):
    """Raised when an encrypted frame fails to open (tampered, replayed or reordered).

    The session is poisoned afterwards: every later ``open`` raises too.
    """


class InvalidEnvelope(P2PError):
    """Raised when decrypted bytes are not the canonical RLP of a valid message envelope."""


class InvalidBatch(P2PError):
    """Raised when a transaction gossip batch is malformed, non-canonical or over its bounds."""


class MessageTooLarge(P2PError):
    """Raised to a caller that tries to send a payload that cannot fit in one frame."""


class QueueFull(P2PError):
    """Raised by ``send_nowait`` when the peer's bounded send queue has no room."""


class PeerBanned(P2PError):
    """Raised when a banned peer connects (it is refused until the ban expires)."""


class PeerFlooding(P2PError):
    """Raised when a peer exceeds its inbound message rate by more than the allowed burst."""


class ConnectionClosed(P2PError):
    """Raised when the underlying stream closes or breaks (not the peer's fault by itself)."""
