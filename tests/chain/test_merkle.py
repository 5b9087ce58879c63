"""Merkle trees: known roots, proofs for every index, and every kind of tampering fails."""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.errors import ChainError, DecodeError
from chain.merkle import (
    EMPTY_ROOT,
    PROOF_PATH_MAX,
    MerkleProof,
    decode_proof,
    encode_proof,
    hash_leaf,
    hash_node,
    merkle_proof,
    merkle_root,
    verify_proof,
)


def _sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def _naive_root(leaves: list[bytes]) -> bytes:
    """The definition, written recursively: split at the largest power of two below n.

    With "promote the odd node" levels, the tree over n leaves is exactly the tree whose
    left subtree is the complete tree over the first 2^k leaves (2^k < n <= 2^(k+1)).
    """
    if not leaves:
        return _sha(b"")
    if len(leaves) == 1:
        return _sha(b"\x00" + leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return _sha(b"\x01" + _naive_root(leaves[:k]) + _naive_root(leaves[k:]))


def test_small_trees_by_hand() -> None:
    a, b, c = b"a", b"b", b"c"
    la, lb, lc = _sha(b"\x00a"), _sha(b"\x00b"), _sha(b"\x00c")
    assert merkle_root([]) == EMPTY_ROOT == _sha(b"")
    assert merkle_root([a]) == la
    assert merkle_root([a, b]) == _sha(b"\x01" + la + lb)
    # odd node promoted, not duplicated
    assert merkle_root([a, b, c]) == _sha(b"\x01" + _sha(b"\x01" + la + lb) + lc)
    assert hash_leaf(a) == la and hash_node(la, lb) == merkle_root([a, b])


@given(st.lists(st.binary(max_size=40), max_size=70))
@settings(max_examples=300, deadline=None)
def test_root_matches_the_recursive_definition(leaves: list[bytes]) -> None:
    assert merkle_root(leaves) == _naive_root(leaves)


def test_duplicating_the_last_leaf_changes_the_root() -> None:
    # The Bitcoin CVE-2012-2459 shape: [a, b, c] vs [a, b, c, c].
    assert merkle_root([b"a", b"b", b"c"]) != merkle_root([b"a", b"b", b"c", b"c"])


def test_inner_node_cannot_pose_as_a_leaf() -> None:
    leaves = [b"x", b"y", b"z", b"w"]
    root = merkle_root(leaves)
    # A second preimage attempt: present the two level-1 nodes as if they were leaves.
    fake = [
        hash_node(hash_leaf(b"x"), hash_leaf(b"y")),
        hash_node(hash_leaf(b"z"), hash_leaf(b"w")),
    ]
    assert merkle_root(fake) != root
    inner = fake[0]
    forged = MerkleProof(index=0, total=2, path=(fake[1],))
    assert not verify_proof(root, inner, forged)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 33])
def test_every_index_proves_and_every_tampering_fails(n: int) -> None:
    rng = random.Random(n)
    leaves = [rng.randbytes(rng.randrange(0, 48)) for _ in range(n)]
    root = merkle_root(leaves)
    for i, leaf in enumerate(leaves):
        proof = merkle_proof(leaves, i)
        assert proof.index == i and proof.total == n
        assert verify_proof(root, leaf, proof)
        # tampered leaf
        assert not verify_proof(root, leaf + b"!", proof)
        # tampered root
        assert not verify_proof(_sha(root), leaf, proof)
        # wrong index (same path)
        for j in {i - 1, i + 1, i ^ 1} - {i}:
            if 0 <= j < n and leaves[j] != leaf:
                assert not verify_proof(root, leaf, replace(proof, index=j))
        assert not verify_proof(root, leaf, replace(proof, index=n))
        assert not verify_proof(root, leaf, replace(proof, index=-1))
        # wrong total, when the verifier knows the real one
        assert verify_proof(root, leaf, proof, total=n)
        for t in (n - 1, n + 1, 2 * n):
            assert not verify_proof(root, leaf, replace(proof, total=t), total=n)
            assert not verify_proof(root, leaf, proof, total=t)
        # tampered sibling, path too long / too short
        for k in range(len(proof.path)):
            bad = list(proof.path)
            bad[k] = _sha(bad[k])
            assert not verify_proof(root, leaf, replace(proof, path=tuple(bad)))
        assert not verify_proof(root, leaf, replace(proof, path=(*proof.path, root)))
        if proof.path:
            assert not verify_proof(root, leaf, replace(proof, path=proof.path[:-1]))
            short = (proof.path[0][:31], *proof.path[1:])
            assert not verify_proof(root, leaf, replace(proof, path=short))


def test_malformed_proofs_return_false_not_raise() -> None:
    root = merkle_root([b"a", b"b"])
    for proof in (
        MerkleProof(index=0, total=0, path=()),
        MerkleProof(index=True, total=2, path=(hash_leaf(b"b"),)),
        MerkleProof(index=0, total=2, path=[hash_leaf(b"b")]),  # type: ignore[arg-type]
        MerkleProof(index=0, total=2, path=("x" * 32,)),  # type: ignore[arg-type]
        MerkleProof(index=0, total=1 << 60, path=()),
    ):
        assert verify_proof(root, b"a", proof) is False


def test_proof_index_out_of_range_is_an_error() -> None:
    with pytest.raises(ChainError):
        merkle_proof([b"a"], 1)
    with pytest.raises(ChainError):
        merkle_proof([], 0)


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=40), st.data())
@settings(max_examples=200, deadline=None)
def test_random_trees_prove_any_index(leaves: list[bytes], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(leaves) - 1))
    proof = merkle_proof(leaves, i)
    assert verify_proof(merkle_root(leaves), leaves[i], proof)


def test_large_tree_matches_definition() -> None:
    leaves = [i.to_bytes(4, "big") for i in range(5_000)]
    assert merkle_root(leaves) == _naive_root(leaves)


def test_root_alone_does_not_bind_the_leaf_count() -> None:
    """Documented limitation: the last leaf of [a, b, c] also "proves" as index 1 of 2.

    That is why verify_proof takes the trusted leaf count as ``total``.
    """
    leaves = [b"a", b"b", b"c"]
    root = merkle_root(leaves)
    disguised = MerkleProof(index=1, total=2, path=(hash_node(hash_leaf(b"a"), hash_leaf(b"b")),))
    assert verify_proof(root, b"c", disguised)
    assert not verify_proof(root, b"c", disguised, total=3)
    assert verify_proof(root, b"c", merkle_proof(leaves, 2), total=3)


def test_proof_encoding_round_trip_by_hand() -> None:
    leaves = [b"a", b"b", b"c"]
    proof = merkle_proof(leaves, 2)
    (sibling,) = proof.path
    expected = bytes([0xE4, 0x02, 0x03, 0xE1, 0xA0]) + sibling  # [2, 3, [sibling]]
    assert encode_proof(proof) == expected
    assert decode_proof(expected) == proof
    assert verify_proof(merkle_root(leaves), b"c", decode_proof(expected), total=3)


REJECT_PROOFS = [
    (bytes([0xE4, 0x03, 0x03, 0xE1, 0xA0]) + b"\x00" * 32, "out of range"),  # index == total
    (bytes([0xC3, 0x80, 0x80, 0xC0]), "out of range"),  # total 0
    (bytes([0xE3, 0x02, 0x03, 0xE0, 0x9F]) + b"\x00" * 31, "merkle proof"),  # 31-byte sibling
    (bytes([0xC2, 0x02, 0x03]), "merkle proof"),  # two fields
    (bytes([0xC4, 0x82, 0x00, 0x02, 0x03, 0xC0]), "merkle proof"),  # leading zero index
]


@pytest.mark.parametrize(
    ("data", "reason"), REJECT_PROOFS, ids=[d.hex()[:12] for d, _ in REJECT_PROOFS]
)
def test_decode_proof_rejects(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_proof(data)


def test_decode_proof_bounds_the_path() -> None:
    data = rlp.encode([0, 2, [b"\x00" * 32] * (PROOF_PATH_MAX + 1)])
    with pytest.raises(DecodeError):
        decode_proof(data)
