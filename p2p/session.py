"""An encrypted session: ChaCha20-Poly1305 frames with per-direction 64-bit counters.

Theory of operation
-------------------
The handshake (``p2p.handshake``) derives one 32-byte key per direction. Each direction
keeps a 64-bit counter starting at 0; frame ``i`` in a direction is sealed with the nonce
``0x00000000 || i`` (big-endian) under that direction's key. The receiver opens frames with
its own expected counter, so a replayed, reordered, dropped-then-later or tampered frame
fails authentication and raises :class:`~p2p.errors.SessionError`. After a failure the
session is poisoned: the connection must close (TCP already orders and delivers bytes; a
gap can only mean an attacker or a bug).

Sans-IO: no sockets, no clock. Used by ``p2p.handshake`` (to carry the encrypted
signatures) and then by ``p2p.transport`` for every frame.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from p2p.errors import SessionError

__all__ = ["KEY_BYTES", "TAG_BYTES", "Session"]

KEY_BYTES = 32
TAG_BYTES = 16
_COUNTER_LIMIT = 1 << 64
_NONCE_PREFIX = b"\x00\x00\x00\x00"


class Session:
    """One side of an encrypted session.

    Args:
        send_key: 32-byte key for frames we send.
        recv_key: 32-byte key for frames we receive (different from ``send_key``).
    """

    def __init__(self, send_key: bytes, recv_key: bytes) -> None:
        if len(send_key) != KEY_BYTES or len(recv_key) != KEY_BYTES:
            raise ValueError("session keys must be 32 bytes")
        if send_key == recv_key:
            raise ValueError("send and receive keys must differ")
        self._send = ChaCha20Poly1305(send_key)
        self._recv = ChaCha20Poly1305(recv_key)
        self.send_counter = 0
        self.recv_counter = 0
        self._failed: SessionError | None = None

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt and authenticate the next outgoing frame body.

        Raises:
            SessionError: the session has failed, or the 2**64 nonces are used up.
        """
        if self._failed is not None:
            raise self._failed
        n = self.send_counter
        if n >= _COUNTER_LIMIT:
            raise SessionError("send nonce space exhausted; reconnect")
        self.send_counter = n + 1
        return self._send.encrypt(_NONCE_PREFIX + n.to_bytes(8, "big"), plaintext, None)

    def open(self, ciphertext: bytes) -> bytes:
        """Authenticate and decrypt the next incoming frame body.

        Raises:
            SessionError: the frame is not the next frame the peer sealed (tampered,
                replayed, reordered, truncated), or the session already failed.
        """
        if self._failed is not None:
            raise self._failed
        n = self.recv_counter
        if n >= _COUNTER_LIMIT:
            self._failed = SessionError("receive nonce space exhausted")
            raise self._failed
        if len(ciphertext) < TAG_BYTES:
            self._failed = SessionError(f"frame {n}: {len(ciphertext)} bytes is shorter than a tag")
            raise self._failed
        try:
            plaintext = self._recv.decrypt(_NONCE_PREFIX + n.to_bytes(8, "big"), ciphertext, None)
        except InvalidTag:
            self._failed = SessionError(
                f"frame {n} failed authentication (tampered, replayed or reordered)"
            )
            raise self._failed from None
        self.recv_counter = n + 1
        return plaintext
