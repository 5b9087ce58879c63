"""Sans-IO handshake and session: success, refusals, tampering, replay and reordering."""

from __future__ import annotations

import random

import pytest

from p2p.errors import HandshakeFailed, SessionError, UnknownPeer
from p2p.handshake import Handshake, Hello, Identity, Role
from p2p.session import Session

from .helpers import identity, make_pair, run_pair


def test_two_sides_complete_and_talk_both_ways() -> None:
    a, b = identity(1), identity(2)
    ri, rr = run_pair(*make_pair(a, b))
    assert ri.peer_identity == b.public_key
    assert rr.peer_identity == a.public_key
    assert ri.transcript_hash == rr.transcript_hash
    for i in range(3):
        msg = f"ping {i}".encode()
        assert rr.session.open(ri.session.seal(msg)) == msg
        assert ri.session.open(rr.session.seal(msg * 2)) == msg * 2


def test_sessions_of_two_handshakes_differ() -> None:
    a, b = identity(1), identity(2)
    r1, _ = run_pair(*make_pair(a, b, rng=random.Random(1)))
    r2, _ = run_pair(*make_pair(a, b, rng=random.Random(2)))
    assert r1.transcript_hash != r2.transcript_hash
    assert r1.session.seal(b"x") != r2.session.seal(b"x")


def test_stranger_is_refused_with_its_key_in_the_reason() -> None:
    a, b, stranger = identity(1), identity(2), identity(99)
    hi, hr = make_pair(stranger, b, allowed_by_r={a.public_key})
    with pytest.raises(UnknownPeer, match="unknown peer identity 0x" + stranger.public_key[:8].hex()):
        run_pair(hi, hr)


def test_dialled_peer_presenting_another_allowed_identity_is_refused() -> None:
    a, b, c = identity(1), identity(2), identity(3)
    hi, hr = make_pair(a, c, allowed_by_i={b.public_key, c.public_key},
                       expected_by_i=b.public_key)
    with pytest.raises(HandshakeFailed, match="wrong peer identity"):
        run_pair(hi, hr)


def test_network_mismatch_is_refused() -> None:
    hi, hr = make_pair(identity(1), identity(2), network_r=b"other")
    with pytest.raises(HandshakeFailed, match="network mismatch"):
        run_pair(hi, hr)


def test_connection_to_self_is_refused() -> None:
    a = identity(1)
    hi, hr = make_pair(a, a, allowed_by_i={a.public_key}, allowed_by_r={a.public_key})
    with pytest.raises(HandshakeFailed, match="ourselves"):
        run_pair(hi, hr)


def test_reflected_hello_is_refused() -> None:
    hi, _ = make_pair(identity(1), identity(2))
    [hello] = hi.start()
    with pytest.raises(HandshakeFailed):
        hi.receive(hello)


def test_impostor_with_someone_elses_public_key_fails_the_signature() -> None:
    a, b = identity(1), identity(2)
    impostor = identity(50)
    impostor.public_key = a.public_key  # claims a's identity but holds another key
    hi, hr = make_pair(impostor, b, allowed_by_r={a.public_key})
    with pytest.raises(HandshakeFailed, match="bad handshake signature"):
        run_pair(hi, hr)


def test_tampered_auth_is_refused() -> None:
    hi, hr = make_pair(identity(1), identity(2))
    [hello_i] = hi.start()
    [hello_r] = hr.start()
    [auth_r] = hr.receive(hello_i)
    hi.receive(hello_r)
    bad = bytes([auth_r[0] ^ 1]) + auth_r[1:]
    with pytest.raises(HandshakeFailed):
        hi.receive(bad)
    assert not hi.done
    with pytest.raises(HandshakeFailed):  # stays failed
        hi.receive(auth_r)


def test_tampered_hello_changes_the_transcript_and_fails_auth() -> None:
    hi, hr = make_pair(identity(1), identity(2))
    [hello_i] = hi.start()
    [hello_r] = hr.start()
    h = Hello.decode(hello_r)
    forged = Hello(h.version, h.network, h.ephemeral, h.identity, bytes(32)).encode()
    [auth_i] = hi.receive(forged)  # the initiator sees a forged nonce
    [auth_r] = hr.receive(hello_i)
    with pytest.raises(HandshakeFailed):
        hi.receive(auth_r)
    with pytest.raises(HandshakeFailed):
        hr.receive(auth_i)


def test_messages_out_of_order_are_refused() -> None:
    hi, _hr = make_pair(identity(1), identity(2))
    hi.start()
    with pytest.raises(HandshakeFailed):
        hi.receive(b"\x00" * 80)  # an "auth" where a hello is due


def test_oversized_hello_is_refused() -> None:
    hi, _ = make_pair(identity(1), identity(2))
    hi.start()
    with pytest.raises(HandshakeFailed, match="too large"):
        hi.receive(b"\xc0" * 1000)


def test_non_canonical_hello_is_refused() -> None:
    hi, hr = make_pair(identity(1), identity(2))
    hi.start()
    [hello_r] = hr.start()
    # Re-encode the version (1) as a long-form string: same value, other bytes.
    payload = hello_r[2:]
    assert payload[0] == 1
    alt = b"\x81\x01" + payload[1:]
    bad = bytes([0xF8, len(alt)]) + alt if len(alt) > 55 else bytes([0xC0 + len(alt)]) + alt
    with pytest.raises(HandshakeFailed, match="malformed hello"):
        hi.receive(bad)


def _session_pair() -> tuple[Session, Session]:
    ri, rr = run_pair(*make_pair(identity(1), identity(2)))
    return ri.session, rr.session


def test_tampered_frame_fails_and_poisons_the_session() -> None:
    s, r = _session_pair()
    ct = bytearray(s.seal(b"payload"))
    ct[3] ^= 0x40
    with pytest.raises(SessionError, match="failed authentication"):
        r.open(bytes(ct))
    with pytest.raises(SessionError):
        r.open(s.seal(b"next"))


def test_replayed_frame_fails() -> None:
    s, r = _session_pair()
    ct = s.seal(b"once")
    assert r.open(ct) == b"once"
    with pytest.raises(SessionError):
        r.open(ct)


def test_reordered_frames_fail() -> None:
    s, r = _session_pair()
    first, second = s.seal(b"1"), s.seal(b"2")
    with pytest.raises(SessionError):
        r.open(second)
    del first


def test_frame_reflected_to_its_sender_fails() -> None:
    s, _ = _session_pair()
    with pytest.raises(SessionError):
        s.open(s.seal(b"mine"))


def test_truncated_frame_fails() -> None:
    s, r = _session_pair()
    with pytest.raises(SessionError, match="shorter than a tag"):
        r.open(s.seal(b"abc")[:10])


def test_identity_and_handshake_reject_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Identity(b"short")
    with pytest.raises(ValueError):
        Handshake(identity=identity(1), role=Role.INITIATOR, network=b"x" * 65, allowed=(),
                  ephemeral_secret=bytes(32), nonce=bytes(32))
    with pytest.raises(ValueError):
        Session(bytes(32), bytes(32))
