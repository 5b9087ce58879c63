"""Signers and verifiers for consensus messages.

Two families implement the :class:`consensus.contract.Signer` / ``Verifier`` protocols:

* :class:`Ed25519Signer` / :class:`Ed25519Verifier` -- real signatures (pynacl). Nodes use
  these. Ed25519 is deterministic, so signing the same bytes twice gives the same signature.
* :class:`HashSigner` / :class:`HashVerifier` -- a keyed hash (HMAC-SHA256, repeated to 64
  bytes) standing in for a signature. **For the simulator and tests only**: anyone holding
  the verifier holds every secret and can forge any replica's "signature". It exists because
  the simulator runs thousands of seeds and an Ed25519 verification costs ~60 µs.

Invariants: ``verify`` never raises for a bad signature, an unknown node or a malformed
signature; it returns ``False``. Every signature is exactly :data:`SIGNATURE_BYTES` long.

Used by the PBFT and Paxos engines (through the protocols), by the simulator and by the node's
wiring (which builds an :class:`Ed25519Verifier` from the validator set in genesis).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Literal

import nacl.exceptions
import nacl.signing

from consensus.contract import NodeId, Signer, Verifier

__all__ = [
    "SIGNATURE_BYTES",
    "Ed25519Signer",
    "Ed25519Verifier",
    "HashSigner",
    "HashVerifier",
    "make_keyring",
]

#: Length of every signature produced here (Ed25519 and the simulator's keyed hash).
SIGNATURE_BYTES = 64


class Ed25519Signer:
    """Signs with an Ed25519 key derived from a 32-byte seed.

    Args:
        node_id: the replica this key belongs to.
        seed32: the 32-byte private seed.

    Raises:
        ValueError: the seed is not 32 bytes.
    """

    __slots__ = ("_key", "_node_id")

    def __init__(self, node_id: NodeId, seed32: bytes) -> None:
        if len(seed32) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._node_id = node_id
        self._key = nacl.signing.SigningKey(bytes(seed32))

    @property
    def node_id(self) -> NodeId:
        return self._node_id

    @property
    def public_key(self) -> bytes:
        """The 32-byte public key that verifies this signer's signatures."""
        return bytes(self._key.verify_key)

    def sign(self, data: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``data``."""
        return bytes(self._key.sign(data).signature)


class Ed25519Verifier:
    """Checks Ed25519 signatures against a fixed map of replica public keys.

    Args:
        public_keys: 32-byte public key per replica.
    """

    __slots__ = ("_keys",)

    def __init__(self, public_keys: Mapping[NodeId, bytes]) -> None:
        self._keys = {NodeId(int(node)): nacl.signing.VerifyKey(bytes(pk)) for node, pk in public_keys.items()}

    def verify(self, node: NodeId, data: bytes, signature: bytes) -> bool:
        """True iff ``signature`` is ``node``'s valid signature of ``data``; never raises."""
        key = self._keys.get(node)
        if key is None or not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
            return False
        try:
            key.verify(data, signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, TypeError, ValueError):
            return False
        return True


def _keyed_hash(secret: bytes, data: bytes) -> bytes:
    mac = hmac.digest(secret, data, "sha256")
    return mac + mac  # padded to the 64 bytes of a real signature


class HashSigner:
    """A cheap deterministic keyed-hash "signature" -- SIMULATOR ONLY, not a real signature.

    Args:
        node_id: the replica this secret belongs to.
        secret: the replica's secret (shared with :class:`HashVerifier`).
    """

    __slots__ = ("_node_id", "_secret")

    def __init__(self, node_id: NodeId, secret: bytes) -> None:
        self._node_id = node_id
        self._secret = bytes(secret)

    @property
    def node_id(self) -> NodeId:
        return self._node_id

    def sign(self, data: bytes) -> bytes:
        """Return HMAC-SHA256(secret, data) repeated to 64 bytes."""
        return _keyed_hash(self._secret, data)


class HashVerifier:
    """Checks :class:`HashSigner` signatures; holds every replica's secret (simulator only)."""

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Mapping[NodeId, bytes]) -> None:
        self._secrets = {NodeId(int(node)): bytes(s) for node, s in secrets.items()}

    def verify(self, node: NodeId, data: bytes, signature: bytes) -> bool:
        """True iff ``signature`` is ``node``'s keyed hash of ``data``; never raises."""
        secret = self._secrets.get(node)
        if secret is None or not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
            return False
        return hmac.compare_digest(_keyed_hash(secret, data), signature)


def make_keyring(
    n: int, kind: Literal["hash", "ed25519"] = "hash", seed: bytes = b"phalanx-test-keys"
) -> tuple[Sequence[Signer], Verifier]:
    """Build deterministic keys for replicas ``0..n-1`` (tests, simulator, local testnets).

    Args:
        n: number of replicas.
        kind: ``"hash"`` for the simulator's keyed hash, ``"ed25519"`` for real signatures.
        seed: master seed; each replica's key is SHA-256(seed || node id).

    Returns:
        ``(signers, verifier)`` where ``signers[i].node_id == i``.

    Raises:
        ValueError: ``n < 1`` or an unknown ``kind``.
    """
    if n < 1:
        raise ValueError("need at least one replica")
    seeds = {NodeId(i): hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(n)}
    if kind == "hash":
        hash_signers = [HashSigner(node, s) for node, s in seeds.items()]
        return hash_signers, HashVerifier(seeds)
    if kind == "ed25519":
        ed_signers = [Ed25519Signer(node, s) for node, s in seeds.items()]
        return ed_signers, Ed25519Verifier({s.node_id: s.public_key for s in ed_signers})
    raise ValueError(f"unknown key kind {kind!r}")
