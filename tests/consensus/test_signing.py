"""Signers and verifiers: real Ed25519 and the simulator's keyed hash."""

from __future__ import annotations

import pytest

from consensus.contract import NodeId, Signer, Verifier
from consensus.signing import (
    SIGNATURE_BYTES,
    Ed25519Signer,
    Ed25519Verifier,
    HashSigner,
    HashVerifier,
    make_keyring,
)


@pytest.mark.parametrize("kind", ["hash", "ed25519"])
def test_keyring_signatures_verify_only_for_their_node_and_bytes(kind: str) -> None:
    signers, verifier = make_keyring(4, kind)  # type: ignore[arg-type]
    assert isinstance(verifier, Verifier)
    for i, signer in enumerate(signers):
        assert isinstance(signer, Signer) and signer.node_id == i
        sig = signer.sign(b"hello")
        assert len(sig) == SIGNATURE_BYTES
        assert sig == signer.sign(b"hello")  # deterministic
        assert verifier.verify(NodeId(i), b"hello", sig)
        assert not verifier.verify(NodeId((i + 1) % 4), b"hello", sig)
        assert not verifier.verify(NodeId(i), b"hello!", sig)
        flipped = bytes([sig[0] ^ 0x80]) + sig[1:]
        assert not verifier.verify(NodeId(i), b"hello", flipped)


@pytest.mark.parametrize("kind", ["hash", "ed25519"])
def test_verify_never_raises_on_garbage(kind: str) -> None:
    signers, verifier = make_keyring(2, kind)  # type: ignore[arg-type]
    sig = signers[0].sign(b"x")
    assert not verifier.verify(NodeId(7), b"x", sig)  # unknown node
    assert not verifier.verify(NodeId(0), b"x", sig[:63])
    assert not verifier.verify(NodeId(0), b"x", b"")
    assert not verifier.verify(NodeId(0), b"x", "not bytes")  # type: ignore[arg-type]
    assert not verifier.verify(NodeId(0), b"x", bytes(64))


def test_keyrings_are_deterministic_per_seed_and_differ_across_seeds() -> None:
    a, _ = make_keyring(3, "ed25519", seed=b"one")
    b, _ = make_keyring(3, "ed25519", seed=b"one")
    c, _ = make_keyring(3, "ed25519", seed=b"two")
    assert [s.sign(b"m") for s in a] == [s.sign(b"m") for s in b]
    assert a[0].sign(b"m") != c[0].sign(b"m")
    assert len({s.sign(b"m") for s in a}) == 3


def test_ed25519_verifier_built_from_public_keys() -> None:
    signer = Ed25519Signer(NodeId(5), bytes(range(32)))
    verifier = Ed25519Verifier({NodeId(5): signer.public_key})
    assert verifier.verify(NodeId(5), b"data", signer.sign(b"data"))
    with pytest.raises(ValueError):
        Ed25519Signer(NodeId(0), b"short")


def test_hash_signer_needs_the_secret() -> None:
    verifier = HashVerifier({NodeId(0): b"secret-0"})
    assert verifier.verify(NodeId(0), b"d", HashSigner(NodeId(0), b"secret-0").sign(b"d"))
    assert not verifier.verify(NodeId(0), b"d", HashSigner(NodeId(0), b"guess").sign(b"d"))


def test_make_keyring_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        make_keyring(0)
    with pytest.raises(ValueError):
        make_keyring(2, "rsa")  # type: ignore[arg-type]
