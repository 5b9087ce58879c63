"""Shared helpers for the p2p tests: deterministic keys and a pair of handshakes."""

from __future__ import annotations

import random

from p2p.handshake import Handshake, HandshakeResult, Identity, Role


def seed(i: int) -> bytes:
    """A deterministic 32-byte identity seed for node ``i``."""
    return random.Random(f"p2p-test-seed-{i}").randbytes(32)


def identity(i: int) -> Identity:
    return Identity(seed(i))


def make_pair(
    i_ident: Identity,
    r_ident: Identity,
    *,
    allowed_by_i: set[bytes] | None = None,
    allowed_by_r: set[bytes] | None = None,
    expected_by_i: bytes | None = None,
    network_i: bytes = b"net",
    network_r: bytes = b"net",
    rng: random.Random | None = None,
) -> tuple[Handshake, Handshake]:
    rng = rng or random.Random(7)
    hi = Handshake(
        identity=i_ident, role=Role.INITIATOR, network=network_i,
        allowed=allowed_by_i if allowed_by_i is not None else {r_ident.public_key},
        ephemeral_secret=rng.randbytes(32), nonce=rng.randbytes(32), expected_peer=expected_by_i,
    )
    hr = Handshake(
        identity=r_ident, role=Role.RESPONDER, network=network_r,
        allowed=allowed_by_r if allowed_by_r is not None else {i_ident.public_key},
        ephemeral_secret=rng.randbytes(32), nonce=rng.randbytes(32),
    )
    return hi, hr


def run_pair(hi: Handshake, hr: Handshake) -> tuple[HandshakeResult, HandshakeResult]:
    """Move messages between two sans-IO handshakes until both finish."""
    to_r = hi.start()
    to_i = hr.start()
    while to_r or to_i:
        nxt_i: list[bytes] = []
        nxt_r: list[bytes] = []
        for m in to_r:
            nxt_i += hr.receive(m)
        for m in to_i:
            nxt_r += hi.receive(m)
        to_r, to_i = nxt_r, nxt_i
    return hi.result(), hr.result()
