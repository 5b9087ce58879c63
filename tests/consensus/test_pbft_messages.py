"""PBFT wire codec: round trips, exact bytes, strict rejection, signatures bound to the instance."""

from __future__ import annotations

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.contract import InvalidMessage, NodeId
from consensus.pbft import (
    Checkpoint,
    CheckpointProof,
    Commit,
    CommittedProof,
    NewView,
    PbftConfig,
    Prepare,
    PrePrepare,
    Request,
    Status,
    decode_message,
    decode_record,
    sign_message,
    verify_message,
)
from consensus.pbft.messages import MESSAGE_BYTES_MAX
from tests.consensus.cluster import Keys

CFG = PbftConfig(n=4)
KEYS = Keys(CFG)
D = CFG.digest_of(b"v")


def all_messages() -> list[object]:
    cert = KEYS.prepared_cert(0, 1, b"v")
    cp = KEYS.checkpoint(2, b"\x01" * 32, 1)
    vc = KEYS.view_change(1, 2, prepared=[cert])
    return [
        KEYS.pre_prepare(0, 1, b"v"),
        KEYS.pre_prepare(0, 2, b""),
        KEYS.prepare(3, 9, b"v", 2),
        KEYS.commit(0, 1, b"v", 3),
        cp,
        vc,
        KEYS.sign(NewView(1, (vc,), (KEYS.pre_prepare(1, 1, b"v"),), NodeId(1))),
        KEYS.sign(Request(b"payload", NodeId(2))),
        KEYS.sign(Status(4, 17, 10, NodeId(3))),
        KEYS.sign(CommittedProof(1, b"v", tuple(KEYS.commit(0, 1, b"v", s) for s in (0, 1, 2)), NodeId(0))),
    ]


@pytest.mark.parametrize("msg", all_messages(), ids=lambda m: type(m).__name__)
def test_every_message_round_trips_and_verifies(msg: object) -> None:
    data = msg.encode()  # type: ignore[attr-defined]
    again = decode_message(data)
    assert again == msg
    assert again.encode() == data
    assert decode_record(data) == msg
    assert verify_message(again, KEYS.verifier, CFG.instance_tag)


def test_exact_bytes_of_a_prepare() -> None:
    p = Prepare(1, 2, b"\xaa" * 32, NodeId(3), b"\x55" * 64)
    expected = rlp.encode([b"\x02", [b"\x01", b"\x02", b"\xaa" * 32], b"\x03", b"\x55" * 64])
    assert p.encode() == expected
    assert p.signing_bytes(b"tag") == rlp.encode([b"tag", b"\x02", [b"\x01", b"\x02", b"\xaa" * 32], b"\x03"])


def test_records_round_trip() -> None:
    cert = KEYS.prepared_cert(0, 1, b"v")
    proof = CheckpointProof(2, b"\x01" * 32, tuple(KEYS.checkpoint(2, b"\x01" * 32, s) for s in (0, 1, 2)))
    assert decode_record(cert.encode()) == cert
    assert decode_record(proof.encode()) == proof
    with pytest.raises(InvalidMessage):
        decode_message(cert.encode())


GOOD = Prepare(1, 2, D, NodeId(3), b"\x55" * 64)
BODY = [b"\x01", b"\x02", D]

NON_CANONICAL = {
    "empty": b"",
    "not rlp": b"\xff\xff",
    "trailing bytes": GOOD.encode() + b"\x00",
    "leading zero view": rlp.encode([b"\x02", [b"\x00\x01", b"\x02", D], b"\x03", b"\x55" * 64]),
    "zero as 0x00": rlp.encode([b"\x02", [b"\x00", b"\x02", D], b"\x03", b"\x55" * 64]),
    "short digest": rlp.encode([b"\x02", [b"\x01", b"\x02", D[:31]], b"\x03", b"\x55" * 64]),
    "short signature": rlp.encode([b"\x02", BODY, b"\x03", b"\x55" * 63]),
    "unsigned": rlp.encode([b"\x02", BODY, b"\x03", b""]),
    "unknown kind": rlp.encode([b"\x63", BODY, b"\x03", b"\x55" * 64]),
    "missing field": rlp.encode([b"\x02", BODY[:2], b"\x03", b"\x55" * 64]),
    "extra field": rlp.encode([b"\x02", [*BODY, b"\x01"], b"\x03", b"\x55" * 64]),
    "list for int": rlp.encode([b"\x02", [[b"\x01"], b"\x02", D], b"\x03", b"\x55" * 64]),
    "huge int": rlp.encode([b"\x02", [b"\x01" * 9, b"\x02", D], b"\x03", b"\x55" * 64]),
    "sender too large": rlp.encode([b"\x02", BODY, b"\x01\x00\x00\x00\x00", b"\x55" * 64]),
    "a string, not a list": rlp.encode(b"hello"),
    "wrapped single byte": b"\x81\x05",
    "long form for short string": b"\xb8\x01\x01",
}


@pytest.mark.parametrize("data", NON_CANONICAL.values(), ids=NON_CANONICAL.keys())
def test_malformed_and_non_canonical_bytes_are_rejected(data: bytes) -> None:
    with pytest.raises(InvalidMessage):
        decode_message(data)


def test_oversized_input_is_rejected_before_decoding() -> None:
    with pytest.raises(InvalidMessage):
        decode_message(b"\x00" * (MESSAGE_BYTES_MAX + 1))


def test_signature_is_bound_to_instance_kind_and_sender() -> None:
    signed = KEYS.prepare(0, 1, b"v", 2)
    assert verify_message(signed, KEYS.verifier, CFG.instance_tag)
    assert not verify_message(signed, KEYS.verifier, b"another-chain")
    as_commit = Commit(signed.view, signed.seq, signed.digest, signed.sender, signed.signature)
    assert not verify_message(as_commit, KEYS.verifier, CFG.instance_tag)
    other_sender = Prepare(signed.view, signed.seq, signed.digest, NodeId(1), signed.signature)
    assert not verify_message(other_sender, KEYS.verifier, CFG.instance_tag)
    with pytest.raises(ValueError):
        sign_message(Prepare(0, 1, D, NodeId(2)), KEYS.signers[1])


def test_constructors_refuse_invalid_fields() -> None:
    with pytest.raises(ValueError):
        Prepare(-1, 1, D, NodeId(0))
    with pytest.raises(ValueError):
        Prepare(0, 1, b"short", NodeId(0))
    with pytest.raises(ValueError):
        Checkpoint(1, D, NodeId(0), b"\x01" * 10)


@settings(max_examples=60, deadline=None)
@given(
    view=st.integers(0, 2**64 - 1),
    seq=st.integers(0, 2**64 - 1),
    value=st.binary(max_size=300),
    sender=st.integers(0, 2**32 - 1),
    sig=st.binary(min_size=64, max_size=64),
)
def test_pre_prepare_codec_round_trips(view: int, seq: int, value: bytes, sender: int, sig: bytes) -> None:
    msg = PrePrepare(view, seq, CFG.digest_of(value), value, NodeId(sender), sig)
    assert decode_message(msg.encode()) == msg


@given(data=st.binary(max_size=200))
def test_decoder_never_raises_anything_but_invalid_message(data: bytes) -> None:
    try:
        msg = decode_message(data)
    except InvalidMessage:
        return
    assert msg.encode() == data


_rlp_items = st.recursive(st.binary(max_size=70), lambda inner: st.lists(inner, max_size=4), max_leaves=10)


@settings(max_examples=40, deadline=None)
@given(item=_rlp_items)
def test_fast_encoder_matches_the_rlp_library(item: object) -> None:
    from consensus.pbft._codec import rlp_encode

    assert rlp_encode(item) == rlp.encode(item)


def test_memoised_signed_bytes_follow_the_tag_and_never_leak_into_equality() -> None:
    p = KEYS.prepare(0, 1, b"v", 2)
    first = p.signed_bytes(b"a")
    assert p.signed_bytes(b"b") != first and p.signed_bytes(b"a") == first
    fresh = Prepare(p.view, p.seq, p.digest, p.sender, p.signature)
    assert fresh == p and hash(fresh) == hash(p)
    moved = Prepare(p.view, p.seq + 1, p.digest, p.sender, p.signature)
    assert moved.signed_bytes(b"a") != first


@pytest.mark.parametrize("msg", all_messages(), ids=lambda m: type(m).__name__)
def test_memoised_encoding_is_per_object_and_never_leaks_into_equality_or_copies(msg: object) -> None:
    data = msg.encode()  # type: ignore[attr-defined]
    assert msg.encode() is data  # type: ignore[attr-defined]
    again = decode_message(data)
    assert again == msg and again.encode() == data  # decoded objects encode afresh
    unsigned = msg.with_signature(b"")
    assert unsigned != msg
    assert unsigned.encode() != data and decode_message(data).encode() == data
