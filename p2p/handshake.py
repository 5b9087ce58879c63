"""Authenticated key exchange between two nodes (sans-IO).

Theory of operation
-------------------
Both sides send a :class:`Hello` at once (no need to wait for the other)::

    Hello = RLP[version, network, ephemeral X25519 public key, identity Ed25519 key, nonce]

On the peer's Hello a side checks version and network tag, refuses itself and reflected
keys, refuses an identity outside the allowed set (a stranger: :class:`UnknownPeer`) or
other than the one it dialled, and then derives the session keys::

    transcript = SHA-256(domain || RLP[hello_initiator, hello_responder])
    k_i2r || k_r2i = HKDF-SHA256(X25519(eph, peer_eph), salt=transcript, info=domain, 64)

It then sends its ``Auth``: an Ed25519 signature by its identity key over
``domain || role || transcript``, sealed as frame 0 of the new session (so identities are
proven only to the holder of the session keys, and a signature can't be reflected back as
the other role's). On the peer's Auth it opens it, verifies the signature against the
identity from the peer's Hello, and is done. State machine::

    START --start()--> AWAIT_HELLO --peer Hello / send Auth--> AWAIT_AUTH --peer Auth--> DONE
       any deviation from any state -------------------------------------------------> FAILED

Every handshake message is bounded (:data:`HANDSHAKE_FRAME_BYTES_MAX`), every deviation
raises :class:`~p2p.errors.HandshakeFailed` (or its subclass :class:`UnknownPeer`), and a
failed handshake stays failed. Randomness (ephemeral secret, nonce) is injected by the
driver. Used by ``p2p.transport.secure_handshake`` and tests.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Collection
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing
import rlp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from rlp.sedes import Binary, big_endian_int
from rlp.sedes import List as RlpList

from p2p.errors import HandshakeFailed, P2PError, UnknownPeer
from p2p.session import KEY_BYTES, Session

__all__ = [
    "HANDSHAKE_FRAME_BYTES_MAX",
    "NETWORK_BYTES_MAX",
    "PROTOCOL_VERSION",
    "Handshake",
    "HandshakeResult",
    "Hello",
    "Identity",
    "Role",
    "short_key",
]

PROTOCOL_VERSION = 1
NETWORK_BYTES_MAX = 64
#: Largest handshake frame (a Hello is < 180 bytes, an Auth 80).
HANDSHAKE_FRAME_BYTES_MAX = 256

_DOMAIN_TRANSCRIPT = b"phalanx/p2p/v1/transcript"
_DOMAIN_KEYS = b"phalanx/p2p/v1/session-keys"
_DOMAIN_AUTH = b"phalanx/p2p/v1/auth"
_SIGNATURE_BYTES = 64

_b32 = Binary.fixed_length(32)
_HELLO_SEDES = RlpList(
    [big_endian_int, Binary(max_length=NETWORK_BYTES_MAX), _b32, _b32, _b32], strict=True
)


def short_key(public_key: bytes) -> str:
    """A short printable form of a public key for logs and errors: ``0x`` + 8 bytes hex."""
    return "0x" + public_key[:8].hex() + ".."


class Identity:
    """A node's long-term Ed25519 identity.

    Args:
        seed: the 32-byte Ed25519 seed (private key) handed in by the caller.
    """

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._key = nacl.signing.SigningKey(seed)
        self.public_key: bytes = bytes(self._key.verify_key)

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        return bytes(self._key.sign(message).signature)


class Role(enum.Enum):
    """Which side opened the connection (fixes the key directions and transcript order)."""

    INITIATOR = "initiator"
    RESPONDER = "responder"


@dataclass(frozen=True, slots=True)
class Hello:
    """The first handshake message, sent in the clear."""

    version: int
    network: bytes
    ephemeral: bytes
    identity: bytes
    nonce: bytes

    def encode(self) -> bytes:
        """Return the canonical RLP bytes."""
        return rlp.encode(  # type: ignore[no-any-return]
            [self.version, self.network, self.ephemeral, self.identity, self.nonce],
            sedes=_HELLO_SEDES,
        )

    @classmethod
    def decode(cls, data: bytes) -> Hello:
        """Decode a Hello strictly.

        Raises:
            HandshakeFailed: not the canonical encoding of a Hello.
        """
        try:
            version, network, eph, ident, nonce = rlp.decode(data, sedes=_HELLO_SEDES, strict=True)
        except (rlp.DecodingError, rlp.DeserializationError, ValueError, TypeError) as e:
            raise HandshakeFailed(f"malformed hello: {e}") from e
        hello = cls(version, bytes(network), bytes(eph), bytes(ident), bytes(nonce))
        if hello.encode() != data:
            raise HandshakeFailed("malformed hello: non-canonical encoding")
        return hello


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """What a finished handshake yields: who the peer is and the session to talk to it."""

    peer_identity: bytes
    session: Session
    transcript_hash: bytes


class _State(enum.Enum):
    START = "start"
    AWAIT_HELLO = "await-hello"
    AWAIT_AUTH = "await-auth"
    DONE = "done"
    FAILED = "failed"


class Handshake:
    """One side of the handshake.

    Args:
        identity: our long-term identity.
        role: whether we dialled (``INITIATOR``) or accepted (``RESPONDER``).
        network: the network tag (chain id and network name); must match the peer's.
        allowed: the identity public keys we accept (validators / configured peers).
        ephemeral_secret: 32 random bytes for this handshake's X25519 key (injected).
        nonce: 32 random bytes (injected), mixed into the transcript.
        expected_peer: when dialling a known peer, the identity it must present.
    """

    def __init__(
        self,
        *,
        identity: Identity,
        role: Role,
        network: bytes,
        allowed: Collection[bytes],
        ephemeral_secret: bytes,
        nonce: bytes,
        expected_peer: bytes | None = None,
    ) -> None:
        if len(network) > NETWORK_BYTES_MAX:
            raise ValueError(f"network tag longer than {NETWORK_BYTES_MAX} bytes")
        if len(ephemeral_secret) != 32 or len(nonce) != 32:
            raise ValueError("ephemeral secret and nonce are 32 bytes each")
        self._identity = identity
        self.role = role
        self._network = network
        self._allowed = frozenset(allowed)
        self._expected = expected_peer
        self._eph = X25519PrivateKey.from_private_bytes(ephemeral_secret)
        self._hello = Hello(
            PROTOCOL_VERSION,
            network,
            self._eph.public_key().public_bytes_raw(),
            identity.public_key,
            nonce,
        )
        self._state = _State.START
        self._peer_hello: Hello | None = None
        self._session: Session | None = None
        self._transcript = b""
        self._result: HandshakeResult | None = None

    @property
    def done(self) -> bool:
        """True once the peer is authenticated and the session is ready."""
        return self._state is _State.DONE

    @property
    def peer_identity(self) -> bytes | None:
        """The identity the peer claimed in its Hello (proven only once ``done``)."""
        return self._peer_hello.identity if self._peer_hello is not None else None

    def result(self) -> HandshakeResult:
        """Return the outcome of a finished handshake."""
        if self._result is None:
            raise RuntimeError("handshake not finished")
        return self._result

    def start(self) -> list[bytes]:
        """Begin: return the frame bodies to send (our Hello)."""
        if self._state is not _State.START:
            raise RuntimeError("handshake already started")
        self._state = _State.AWAIT_HELLO
        return [self._hello.encode()]

    def receive(self, frame: bytes) -> list[bytes]:
        """Take one handshake frame body from the peer; return frame bodies to send.

        Raises:
            UnknownPeer: the peer's identity is not in the allowed set.
            HandshakeFailed: any other deviation; the handshake is failed for good.
        """
        try:
            if self._state is _State.AWAIT_HELLO:
                return self._on_hello(frame)
            if self._state is _State.AWAIT_AUTH:
                self._on_auth(frame)
                return []
            raise HandshakeFailed(f"unexpected handshake message in state {self._state.value}")
        except HandshakeFailed:
            self._state = _State.FAILED
            raise
        except P2PError as e:
            self._state = _State.FAILED
            raise HandshakeFailed(str(e)) from e

    def _on_hello(self, frame: bytes) -> list[bytes]:
        if len(frame) > HANDSHAKE_FRAME_BYTES_MAX:
            raise HandshakeFailed(f"hello of {len(frame)} bytes is too large")
        hello = Hello.decode(frame)
        if hello.version != PROTOCOL_VERSION:
            raise HandshakeFailed(f"protocol version {hello.version}, we speak {PROTOCOL_VERSION}")
        if hello.network != self._network:
            raise HandshakeFailed(
                f"network mismatch: peer is on {hello.network!r}, we are on {self._network!r}"
            )
        if hello.identity == self._identity.public_key:
            raise HandshakeFailed("connected to ourselves")
        if hello.ephemeral == self._hello.ephemeral or hello.nonce == self._hello.nonce:
            raise HandshakeFailed("reflected handshake (peer echoed our key or nonce)")
        if hello.identity not in self._allowed:
            raise UnknownPeer(f"unknown peer identity {short_key(hello.identity)}")
        if self._expected is not None and hello.identity != self._expected:
            raise HandshakeFailed(
                f"wrong peer identity: dialled {short_key(self._expected)}, "
                f"peer presented {short_key(hello.identity)}"
            )
        self._peer_hello = hello
        try:
            shared = self._eph.exchange(X25519PublicKey.from_public_bytes(hello.ephemeral))
        except ValueError as e:
            raise HandshakeFailed(f"bad ephemeral key: {e}") from e
        if self.role is Role.INITIATOR:
            first, second = self._hello.encode(), frame
        else:
            first, second = frame, self._hello.encode()
        self._transcript = hashlib.sha256(_DOMAIN_TRANSCRIPT + rlp.encode([first, second])).digest()
        okm = HKDF(
            algorithm=hashes.SHA256(), length=2 * KEY_BYTES, salt=self._transcript,
            info=_DOMAIN_KEYS,
        ).derive(shared)
        k_i2r, k_r2i = okm[:KEY_BYTES], okm[KEY_BYTES:]
        if self.role is Role.INITIATOR:
            self._session = Session(send_key=k_i2r, recv_key=k_r2i)
        else:
            self._session = Session(send_key=k_r2i, recv_key=k_i2r)
        signature = self._identity.sign(self._auth_message(self.role))
        self._state = _State.AWAIT_AUTH
        return [self._session.seal(signature)]

    def _on_auth(self, frame: bytes) -> None:
        assert self._session is not None and self._peer_hello is not None
        if len(frame) > HANDSHAKE_FRAME_BYTES_MAX:
            raise HandshakeFailed(f"auth of {len(frame)} bytes is too large")
        signature = self._session.open(frame)  # SessionError -> HandshakeFailed above
        if len(signature) != _SIGNATURE_BYTES:
            raise HandshakeFailed(f"auth signature of {len(signature)} bytes")
        peer_role = Role.RESPONDER if self.role is Role.INITIATOR else Role.INITIATOR
        try:
            nacl.signing.VerifyKey(self._peer_hello.identity).verify(
                self._auth_message(peer_role), signature
            )
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as e:
            raise HandshakeFailed(
                f"bad handshake signature from {short_key(self._peer_hello.identity)}"
            ) from e
        self._state = _State.DONE
        self._result = HandshakeResult(self._peer_hello.identity, self._session, self._transcript)

    def _auth_message(self, role: Role) -> bytes:
        return _DOMAIN_AUTH + role.value.encode() + self._transcript
