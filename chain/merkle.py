"""Binary Merkle trees over byte strings, with inclusion proofs.

Construction (domain-separated, so a leaf can never pose as an inner node):

* leaf hash  = SHA-256(0x00 || leaf)
* inner node = SHA-256(0x01 || left || right)
* a level with an odd number of nodes promotes its last node unchanged to the next level
  (no duplication, so the CVE-2012-2459 "duplicate last leaf" ambiguity cannot arise)
* the root of zero leaves is SHA-256(b"")

A :class:`MerkleProof` carries ``index``, ``total`` and the sibling path. The shape of the
path is fully determined by ``(index, total)``; :func:`verify_proof` recomputes that shape and
rejects a proof whose path is longer or shorter, whose index is out of range, or whose
siblings are not 32 bytes. The root does not commit to the leaf count: callers that know
it from a trusted source pass it to :func:`verify_proof` as ``total``.

Called by ``chain.block`` (the transaction root), the state engine (the state root over
sorted key/value leaves, up to ~100k leaves), receipts and the API (inclusion proofs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from rlp.sedes import List

from chain.encoding import CountableList, decode, encode, hash32, uint64
from chain.errors import ChainError, DecodeError

__all__ = [
    "EMPTY_ROOT",
    "PROOF_PATH_MAX",
    "MerkleProof",
    "decode_proof",
    "encode_proof",
    "hash_leaf",
    "hash_node",
    "merkle_proof",
    "merkle_root",
    "merkle_root_of_hashes",
    "verify_proof",
]

_LEAF = b"\x00"
_NODE = b"\x01"
_sha256 = hashlib.sha256

#: Root of an empty tree.
EMPTY_ROOT = _sha256(b"").digest()
#: The largest tree a proof may describe (bounds the work of :func:`verify_proof`).
PROOF_TOTAL_MAX = 1 << 48
#: The longest sibling path a proof may carry (enough for PROOF_TOTAL_MAX leaves).
PROOF_PATH_MAX = 48


def hash_leaf(leaf: bytes) -> bytes:
    """SHA-256(0x00 || leaf)."""
    return _sha256(_LEAF + leaf).digest()


def hash_node(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return _sha256(_NODE + left + right).digest()


def _next_level(level: list[bytes]) -> list[bytes]:
    sha = _sha256
    node = _NODE
    nxt = [sha(node + a + b).digest() for a, b in zip(level[0::2], level[1::2], strict=False)]
    if len(level) & 1:
        nxt.append(level[-1])
    return nxt


def merkle_root_of_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """Root over already-hashed leaves (each the output of :func:`hash_leaf`)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Return the Merkle root of ``leaves`` (in the given order).

    Args:
        leaves: the leaf byte strings; any length each.

    Returns:
        The 32-byte root; SHA-256(b"") when ``leaves`` is empty.
    """
    if not leaves:
        return EMPTY_ROOT
    sha = _sha256
    leaf = _LEAF
    return merkle_root_of_hashes([sha(leaf + x).digest() for x in leaves])


@dataclass(frozen=True, slots=True)
class MerkleProof:
    """An inclusion proof: the leaf at ``index`` of a tree of ``total`` leaves.

    Attributes:
        index: position of the leaf, ``0 <= index < total``.
        total: number of leaves in the tree.
        path: sibling hashes from the leaf level up to just below the root.
    """

    index: int
    total: int
    path: tuple[bytes, ...]


def merkle_proof(leaves: Sequence[bytes], index: int) -> MerkleProof:
    """Build the inclusion proof of ``leaves[index]``.

    Raises:
        ChainError: ``index`` is out of range.
    """
    total = len(leaves)
    if not 0 <= index < total:
        raise ChainError(f"merkle proof index {index} out of range for {total} leaves")
    level = [hash_leaf(x) for x in leaves]
    path: list[bytes] = []
    i = index
    while len(level) > 1:
        sibling = i ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        level = _next_level(level)
        i >>= 1
    return MerkleProof(index=index, total=total, path=tuple(path))


def verify_proof(root: bytes, leaf: bytes, proof: MerkleProof, *, total: int | None = None) -> bool:
    """Check that ``leaf`` sits at ``proof.index`` in the tree with root ``root``.

    The root alone does not commit to the number of leaves (a sibling is an opaque hash),
    so a verifier that knows the tree size from a trusted source (the transaction count of
    a block it holds, a signed header) should pass it as ``total``; the proof's own
    ``total`` is then required to match.

    Args:
        root: the trusted root.
        leaf: the leaf bytes (not hashed).
        proof: the proof to check.
        total: the trusted number of leaves, if known.

    Returns:
        True only when the path has exactly the shape implied by ``(index, total)`` and
        hashes up to ``root``; False for any malformed or wrong proof (never raises).
    """
    index, path = proof.index, proof.path
    if total is not None and total != proof.total:
        return False
    total = proof.total
    if (
        type(index) is not int
        or type(total) is not int
        or not 0 <= index < total <= PROOF_TOTAL_MAX
        or not isinstance(path, tuple)
        or not isinstance(leaf, bytes)
        or not isinstance(root, bytes)
    ):
        return False
    h = hash_leaf(leaf)
    i, n, used = index, total, 0
    while n > 1:
        sibling = i ^ 1
        if sibling < n:
            if used >= len(path):
                return False
            s = path[used]
            if not isinstance(s, bytes) or len(s) != 32:
                return False
            used += 1
            h = hash_node(s, h) if i & 1 else hash_node(h, s)
        i >>= 1
        n = (n + 1) >> 1
    return used == len(path) and h == root


_PROOF_LIST = List([uint64, uint64, CountableList(hash32, max_length=PROOF_PATH_MAX)])


def encode_proof(proof: MerkleProof) -> bytes:
    """RLP ``[index, total, [sibling, ...]]`` for the API and the wire."""
    return encode([proof.index, proof.total, list(proof.path)], _PROOF_LIST)


def decode_proof(data: bytes) -> MerkleProof:
    """Decode a proof strictly; its shape is checked later by :func:`verify_proof`.

    Raises:
        DecodeError: malformed or non-canonical bytes, a sibling not 32 bytes, a path longer
            than ``PROOF_PATH_MAX``, or ``index``/``total`` out of range.
    """
    index, total, path = decode(data, _PROOF_LIST, what="merkle proof")
    if not 0 <= index < total <= PROOF_TOTAL_MAX:
        raise DecodeError(f"merkle proof: index {index} / total {total} out of range")
    return MerkleProof(index=index, total=total, path=tuple(path))
