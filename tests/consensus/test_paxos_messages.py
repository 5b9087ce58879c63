"""Paxos wire and record codecs: canonical round trips, strict rejection, certificates."""

from __future__ import annotations

from dataclasses import replace

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.contract import Certificate, InvalidMessage, NodeId
from consensus.election import Election
from consensus.failure_detector import Heartbeat
from consensus.paxos.config import verify_certificate
from consensus.paxos.messages import (
    Accept,
    Accepted,
    Ballot,
    CatchUp,
    Checkpoint,
    CheckpointProof,
    Control,
    Decided,
    DecidedEntry,
    Forward,
    Nack,
    PaxosMessage,
    Prepare,
    Promise,
    PromiseEntry,
    Vote,
    decode_message,
    digest_of,
    rlp_encode,
    vote_bytes,
)
from consensus.paxos.records import (
    AcceptedRecord,
    CheckpointRecord,
    IncarnationRecord,
    PromisedRecord,
    decode_record,
)
from consensus.signing import make_keyring

# (message, canonical bytes) worked out by hand from the RLP rules: [kind, sender, *body, sig].
TABLE = [
    (CatchUp(NodeId(2), 7), "c4 07 02 07 80"),
    (Prepare(NodeId(1), Ballot(3, 1), 5), "c7 01 01 c2 03 01 05 80"),
    (Nack(NodeId(0), Ballot(1, 1), Ballot(2, 2)), "c9 03 80 c2 01 01 c2 02 02 80"),
    (Forward(NodeId(2), 1, (b"a",)), "c6 08 02 01 c1 61 80"),
    (Checkpoint(NodeId(1), 16, b"r"), "c5 09 01 10 72 80"),
    (Control(NodeId(2), Election(NodeId(2))), "c8 0b 02 01 83 c2 01 02 80"),
    (Accept(NodeId(1), Ballot(1, 1), ((4, b"x"),), b"\x01"), "ca 04 01 c2 01 01 c3 c2 04 78 01"),
]


@pytest.mark.parametrize(("msg", "hexbytes"), TABLE)
def test_canonical_bytes_round_trip(msg: object, hexbytes: str) -> None:
    data = bytes.fromhex(hexbytes.replace(" ", ""))
    assert msg.encode() == data  # type: ignore[attr-defined]
    assert decode_message(data) == msg


EVERY_KIND = [
    Prepare(NodeId(1), Ballot(3, 1), 5, b"s"),
    Promise(NodeId(2), Ballot(3, 1), 4, (PromiseEntry(5, Ballot(2, 0), b"v"),), b"x"),
    Nack(NodeId(0), Ballot(1, 1), Ballot(2, 2)),
    Accept(NodeId(1), Ballot(3, 1), ((5, b"a"), (6, b""))),
    Accepted(NodeId(2), Ballot(3, 1), (Vote(5, b"\x01" * 32, b"sig"),)),
    Decided(NodeId(1), (DecidedEntry(5, Ballot(3, 1), b"a", ((0, b"s0"), (2, b"s2"))),)),
    CatchUp(NodeId(2), 7),
    Forward(NodeId(2), 2**63, (b"a", b"b")),
    Checkpoint(NodeId(1), 16, b"r" * 32, b"q"),
    CheckpointProof(NodeId(1), 16, b"r", ((0, b"a"), (1, b"b"))),
    Control(NodeId(2), Heartbeat(NodeId(2), 0, 5, b"p")),
    Control(NodeId(2), Election(NodeId(2))),
]


@pytest.mark.parametrize("msg", EVERY_KIND, ids=lambda m: type(m).__name__)
def test_every_kind_round_trips_and_signs_over_tag_and_kind(msg: PaxosMessage) -> None:
    assert decode_message(msg.encode()) == msg
    a = msg.signed_bytes(b"one")
    assert a != msg.signed_bytes(b"two")
    assert msg.with_signature(b"zz").signed_bytes(b"one") == a


REJECT = [
    "",  # nothing
    "c0",  # empty list
    "05",  # not a list
    "c4 63 02 07 80",  # unknown kind 99
    "c6 07 02 82 00 07 80",  # integer with a leading zero
    "c4 07 02 07 80 00",  # trailing byte
    "c5 07 02 07 07 80",  # too many fields
    "c4 07 02 c0 80",  # list where an integer belongs
    "c8 01 01 c3 03 01 01 05 80",  # ballot of three items
    "c8 0b 02 01 83 c2 01 03 80",  # Control whose inner sender differs
    "c7 09 01 10 b8 01 72 80",  # non-canonical string length
    "c6 07 83 01 00 00 07 80",  # sender beyond 16 bits
    "c8 05 02 c2 03 01 c3 c2 05 80 80",  # vote digest of the wrong length (and short vote)
    "c4 0b 02 05 80",  # Control body missing
    "c6 0b 02 07 81 01 80",  # unknown Control kind
]


@pytest.mark.parametrize("hexbytes", REJECT)
def test_malformed_or_non_canonical_messages_are_rejected(hexbytes: str) -> None:
    with pytest.raises(InvalidMessage):
        decode_message(bytes.fromhex(hexbytes.replace(" ", "")))


def test_constructors_refuse_invalid_fields() -> None:
    with pytest.raises(InvalidMessage):
        Prepare(NodeId(1), (3, 1), 5)  # type: ignore[arg-type]
    with pytest.raises(InvalidMessage):
        Vote(1, b"short", b"")
    with pytest.raises(InvalidMessage):
        CatchUp(NodeId(-1), 1)
    with pytest.raises(InvalidMessage):
        Accept(NodeId(1), Ballot(1, 1), ((1,),))  # type: ignore[arg-type]
    with pytest.raises(InvalidMessage):
        Control(NodeId(1), Election(NodeId(2)))


RECORDS = [
    (PromisedRecord(Ballot(1, 2)), "c4 65 c2 01 02"),
    (AcceptedRecord(Ballot(1, 2), ((3, b"x"),)), "c8 66 c2 01 02 c3 c2 03 78"),
    (CheckpointRecord(5, b"r"), "c3 67 05 72"),
    (IncarnationRecord(2), "c2 68 02"),
]


@pytest.mark.parametrize(("record", "hexbytes"), RECORDS)
def test_records_round_trip(record: object, hexbytes: str) -> None:
    data = record.encode()  # type: ignore[attr-defined]
    assert data == bytes.fromhex(hexbytes.replace(" ", ""))
    assert decode_record(data) == record


@pytest.mark.parametrize("hexbytes", ["", "c0", "c2 69 01", "c3 65 c2 01", "c4 67 05 72 00"])
def test_malformed_records_are_rejected(hexbytes: str) -> None:
    with pytest.raises(InvalidMessage):
        decode_record(bytes.fromhex(hexbytes.replace(" ", "")))


def test_certificate_needs_a_majority_of_distinct_valid_votes() -> None:
    signers, verifier = make_keyring(3, "hash", seed=b"cert")
    tag, slot, ballot, value = b"phalanx", 4, Ballot(2, 1), b"block"
    d = digest_of(value)
    sigs = tuple((i, signers[i].sign(vote_bytes(tag, slot, ballot, d))) for i in (0, 2))
    cert = Certificate(slot, ballot.packed, d, sigs)
    assert verify_certificate(cert, value, verifier, 3, tag)
    assert not verify_certificate(cert, b"other", verifier, 3, tag)
    assert not verify_certificate(cert, value, verifier, 3, b"other-cluster")
    assert not verify_certificate(replace(cert, signatures=sigs[:1]), value, verifier, 3, tag)
    assert not verify_certificate(
        replace(cert, signatures=(sigs[0], sigs[0])), value, verifier, 3, tag
    )
    assert not verify_certificate(replace(cert, seq=5), value, verifier, 3, tag)
    assert not verify_certificate(
        replace(cert, signatures=((0, sigs[0][1]), (2, sigs[0][1]))), value, verifier, 3, tag
    )
    assert Ballot.unpack(ballot.packed) == ballot


@settings(max_examples=150, deadline=None)
@given(
    which=st.integers(min_value=0, max_value=len(EVERY_KIND) - 1),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["flip", "insert", "delete"]),
            st.integers(0, 1 << 16),
            st.integers(0, 255),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_whatever_decodes_re_encodes_to_the_same_bytes(
    which: int, edits: list[tuple[str, int, int]]
) -> None:
    data = bytearray(EVERY_KIND[which].encode())
    for op, pos, byte in edits:
        k = pos % (len(data) + 1)
        if op == "insert":
            data.insert(k, byte)
        elif data and op == "flip":
            data[k % len(data)] = byte
        elif data:
            del data[k % len(data)]
    try:
        msg = decode_message(bytes(data))
    except InvalidMessage:
        return
    assert msg.encode() == bytes(data)


@settings(max_examples=60, deadline=None)
@given(
    st.recursive(
        st.binary(max_size=80) | st.integers(0, 2**80),
        lambda kids: st.lists(kids, max_size=5),
        max_leaves=20,
    )
)
def test_fast_rlp_encoder_matches_the_rlp_library(item: object) -> None:
    assert rlp_encode(item) == rlp.encode(item)
