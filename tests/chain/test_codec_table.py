"""Codec tables: (value, expected bytes) round trips, and byte strings that must be refused.

Expected bytes are written out by hand from the RLP rules, not produced by the encoder
under test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import rlp

from chain.block import (
    EMPTY_CERTIFICATE,
    CommitCertificate,
    Header,
    Vote,
    decode_block,
    decode_certificate,
    decode_header,
)
from chain.encoding import (
    address,
    address_or_empty,
    bounded_binary,
    decode,
    encode,
    hash32,
    pubkey32,
    signature64,
    uint8,
    uint32,
    uint64,
    uint256,
)
from chain.errors import DecodeError
from chain.tx import Transaction, decode_transaction

H = bytes.fromhex
b4 = bounded_binary(4)
b100 = bounded_binary(100)

SEDES_TABLE: list[tuple[str, Any, Any, bytes]] = [
    ("uint64 0", uint64, 0, H("80")),
    ("uint64 1", uint64, 1, H("01")),
    ("uint64 127", uint64, 127, H("7f")),
    ("uint64 128", uint64, 128, H("8180")),
    ("uint64 255", uint64, 255, H("81ff")),
    ("uint64 256", uint64, 256, H("820100")),
    ("uint64 1024", uint64, 1024, H("820400")),
    ("uint64 max", uint64, (1 << 64) - 1, H("88") + b"\xff" * 8),
    ("uint8 max", uint8, 255, H("81ff")),
    ("uint32 max", uint32, (1 << 32) - 1, H("84ffffffff")),
    ("uint256 max", uint256, (1 << 256) - 1, H("a0") + b"\xff" * 32),
    ("uint256 2^64", uint256, 1 << 64, H("89010000000000000000")),
    ("hash32", hash32, b"\x11" * 32, H("a0") + b"\x11" * 32),
    ("address", address, b"\x22" * 20, H("94") + b"\x22" * 20),
    ("address_or_empty empty", address_or_empty, b"", H("80")),
    ("address_or_empty full", address_or_empty, b"\x33" * 20, H("94") + b"\x33" * 20),
    ("pubkey32", pubkey32, b"\x44" * 32, H("a0") + b"\x44" * 32),
    ("signature64", signature64, b"\x55" * 64, H("b840") + b"\x55" * 64),
    ("bytes empty", b4, b"", H("80")),
    ("bytes 00", b4, b"\x00", H("00")),
    ("bytes 7f", b4, b"\x7f", H("7f")),
    ("bytes 80", b4, b"\x80", H("8180")),
    ("bytes abcd", b4, b"abcd", H("8461626364")),
    ("bytes 55", b100, b"x" * 55, H("b7") + b"x" * 55),
    ("bytes 56", b100, b"x" * 56, H("b838") + b"x" * 56),
]


@pytest.mark.parametrize(
    ("name", "sedes", "value", "expected"), SEDES_TABLE, ids=[c[0] for c in SEDES_TABLE]
)
def test_sedes_round_trip(name: str, sedes: Any, value: Any, expected: bytes) -> None:
    assert encode(value, sedes) == expected
    assert decode(expected, sedes, what=name) == value


SENDER = b"\x22" * 32
TX = Transaction(1, 0, SENDER, b"\x33" * 20, 1000, 1, 21000, b"", b"\x44" * 64)
TX_BYTES = (
    H("f882")  # list, 130-byte payload
    + H("01")  # chain_id 1
    + H("80")  # nonce 0
    + H("a0")
    + SENDER
    + H("94")
    + b"\x33" * 20
    + H("8203e8")  # amount 1000
    + H("01")  # fee 1
    + H("825208")  # gas_limit 21000
    + H("80")  # data empty
    + H("b840")
    + b"\x44" * 64
)

HEADER = Header(
    1, 2, b"\x11" * 32, 1_700_000_000_000, b"\x55" * 20, b"\x66" * 32, b"\x77" * 32, b"\x88" * 32
)
HEADER_BYTES = (
    H("f8a2")  # list, 162-byte payload
    + H("01")
    + H("02")
    + H("a0")
    + b"\x11" * 32
    + H("86018bcfe56800")  # 1_700_000_000_000 ms
    + H("94")
    + b"\x55" * 20
    + H("a0")
    + b"\x66" * 32
    + H("a0")
    + b"\x77" * 32
    + H("a0")
    + b"\x88" * 32
)

CERT = CommitCertificate(5, 1, 7, b"\x99" * 32, (Vote(0, b"\xaa" * 64), Vote(3, b"\xbb" * 64)))
VOTE0 = H("f843") + H("80") + H("b840") + b"\xaa" * 64
VOTE3 = H("f843") + H("03") + H("b840") + b"\xbb" * 64
CERT_BYTES = H("f8b0") + H("05") + H("01") + H("07") + H("a0") + b"\x99" * 32 + H("f88a") + VOTE0 + VOTE3
EMPTY_CERT_BYTES = H("e5") + H("80") + H("80") + H("80") + H("a0") + b"\x00" * 32 + H("c0")

OBJECT_TABLE: list[tuple[str, Any, bytes, Callable[[bytes], Any]]] = [
    ("transaction", TX, TX_BYTES, decode_transaction),
    ("transaction (rlp path)", TX, TX_BYTES, lambda b: decode(b, Transaction)),
    ("header", HEADER, HEADER_BYTES, decode_header),
    ("certificate", CERT, CERT_BYTES, decode_certificate),
    ("empty certificate", EMPTY_CERTIFICATE, EMPTY_CERT_BYTES, decode_certificate),
]


@pytest.mark.parametrize(
    ("name", "value", "expected", "decoder"), OBJECT_TABLE, ids=[c[0] for c in OBJECT_TABLE]
)
def test_object_round_trip(
    name: str, value: Any, expected: bytes, decoder: Callable[[bytes], Any]
) -> None:
    assert rlp.encode(value, sedes=type(value)) == expected
    assert value.encoded == expected
    decoded = decoder(expected)
    assert tuple(decoded) == tuple(value)


def test_block_round_trip_by_hand() -> None:
    block_bytes_payload = HEADER_BYTES + H("f884") + TX_BYTES + EMPTY_CERT_BYTES
    n = len(block_bytes_payload)
    block_bytes = H("f9") + n.to_bytes(2, "big") + block_bytes_payload
    block = decode_block(block_bytes)
    assert block.header == HEADER
    assert block.transactions == (TX,)
    assert block.last_commit == EMPTY_CERTIFICATE
    assert block.encoded == block_bytes
    assert rlp.encode(block, sedes=type(block)) == block_bytes


def _rlp_list(*items: bytes) -> bytes:
    """Wrap raw item encodings in a list prefix, following the RLP rule by hand."""
    payload = b"".join(items)
    n = len(payload)
    if n < 56:
        return bytes([0xC0 + n]) + payload
    if n < 256:
        return H("f8") + bytes([n]) + payload
    return H("f9") + n.to_bytes(2, "big") + payload


HEADER_ITEMS = [
    H("01"),
    H("02"),
    H("a0") + b"\x11" * 32,
    H("86018bcfe56800"),
    H("94") + b"\x55" * 20,
    H("a0") + b"\x66" * 32,
    H("a0") + b"\x77" * 32,
    H("a0") + b"\x88" * 32,
]
CERT_HEAD = [H("05"), H("01"), H("07"), H("a0") + b"\x99" * 32]


def _replace_tx_field(index: int, item_bytes: bytes) -> bytes:
    """TX_BYTES with field ``index`` replaced by raw item bytes (list prefix recomputed)."""
    items = [
        H("01"),
        H("80"),
        H("a0") + SENDER,
        H("94") + b"\x33" * 20,
        H("8203e8"),
        H("01"),
        H("825208"),
        H("80"),
        H("b840") + b"\x44" * 64,
    ]
    if index == len(items):
        items.append(item_bytes)
    elif item_bytes == b"DROP":
        del items[index]
    else:
        items[index] = item_bytes
    payload = b"".join(items)
    assert 56 <= len(payload) < 256
    return H("f8") + bytes([len(payload)]) + payload


REJECT_SEDES: list[tuple[str, Any, bytes]] = [
    ("empty input", uint64, b""),
    ("int leading zero", uint64, H("820001")),
    ("int zero as 00", uint64, H("00")),
    ("int single byte wrapped", uint64, H("8105")),
    ("int 9 bytes for uint64", uint64, H("89010000000000000000")),
    ("uint8 two bytes", uint8, H("820100")),
    ("uint256 33 bytes", uint256, H("a101") + b"\x00" * 32),
    ("int as list", uint64, H("c0")),
    ("long form short string", b100, H("b80161")),
    ("long form length leading zero", b100, H("b90038") + b"x" * 56),
    ("trailing bytes", uint64, H("0100")),
    ("truncated", hash32, H("a0") + b"\x11" * 31),
    ("hash 31 bytes", hash32, H("9f") + b"\x11" * 31),
    ("hash as list", hash32, H("c0")),
    ("address 19 bytes", address, H("93") + b"\x22" * 19),
    ("address_or_empty 19 bytes", address_or_empty, H("93") + b"\x22" * 19),
    ("signature 63 bytes", signature64, H("b83f") + b"\x55" * 63),
    ("bytes too long", b4, H("8561626364ff")),
]


@pytest.mark.parametrize(("name", "sedes", "data"), REJECT_SEDES, ids=[c[0] for c in REJECT_SEDES])
def test_sedes_rejects(name: str, sedes: Any, data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(data, sedes, what=name)


#: What the fast decoder must say for each rejected transaction (the reason, not just "no").
TX_REASONS = {
    "8 fields": "expected 9 fields, got 8",
    "10 fields": "expected 9 fields, got 10",
    "trailing byte": "trailing",
    "truncated": "truncated",
    "list announces more than given": "truncated",
    "list length too short": "trailing",
    "long list prefix for short list": "long-form prefix",
    "length prefix with leading zero": "zero byte",
    "string instead of list": "expected a list",
    "nonce leading zero": "nonce: integer has a leading zero",
    "gas_limit leading zero": "gas_limit: integer has a leading zero",
    "nonce wrapped single byte": "single byte below 0x80",
    "chain_id over uint64": "chain_id: too many bytes",
    "amount over uint256": "amount: too many bytes",
    "field is a list": "field 5 must be a string",
    "sender 31 bytes": "sender: must be 32 bytes",
    "to 19 bytes": "to: must be 20 bytes or empty",
    "signature 63 bytes": "signature: must be 64 bytes",
    "data long form for short": "long-form prefix",
    "empty list": "expected 9 fields, got 0",
    "empty input": "truncated",
}

REJECT_TX: list[tuple[str, bytes]] = [
    ("8 fields", _replace_tx_field(8, b"DROP")),
    ("10 fields", _replace_tx_field(9, H("80"))),
    ("trailing byte", TX_BYTES + H("00")),
    ("truncated", TX_BYTES[:-1]),
    ("list announces more than given", H("f883") + TX_BYTES[2:]),
    ("list length too short", H("f881") + TX_BYTES[2:]),
    ("long list prefix for short list", H("f803") + H("010203")),
    ("length prefix with leading zero", H("f90082") + TX_BYTES[2:]),
    ("string instead of list", H("83010203")),
    ("nonce leading zero", _replace_tx_field(1, H("820001"))),
    ("gas_limit leading zero", _replace_tx_field(6, H("83005208"))),
    ("nonce wrapped single byte", _replace_tx_field(1, H("8101"))),
    ("chain_id over uint64", _replace_tx_field(0, H("89") + b"\x01" * 9)),
    ("amount over uint256", _replace_tx_field(4, H("a1") + b"\x01" * 33)),
    ("field is a list", _replace_tx_field(5, H("c101"))),
    ("sender 31 bytes", _replace_tx_field(2, H("9f") + b"\x22" * 31)),
    ("to 19 bytes", _replace_tx_field(3, H("93") + b"\x33" * 19)),
    ("signature 63 bytes", _replace_tx_field(8, H("b83f") + b"\x44" * 63)),
    ("data long form for short", _replace_tx_field(7, H("b80161"))),
    ("empty list", H("c0")),
    ("empty input", b""),
]


@pytest.mark.parametrize(("name", "data"), REJECT_TX, ids=[c[0] for c in REJECT_TX])
def test_transaction_rejects(name: str, data: bytes) -> None:
    with pytest.raises(DecodeError, match=TX_REASONS[name]):
        decode_transaction(data)
    with pytest.raises(DecodeError):  # the generic path agrees
        decode(data, Transaction)


REJECT_OTHER: list[tuple[str, Callable[[bytes], Any], bytes]] = [
    ("header 7 fields", decode_header, _rlp_list(*HEADER_ITEMS[:7])),
    ("header 9 fields", decode_header, _rlp_list(*HEADER_ITEMS, H("80"))),
    ("header trailing", decode_header, HEADER_BYTES + H("80")),
    (
        "header proposer 21 bytes",
        decode_header,
        _rlp_list(*HEADER_ITEMS[:4], H("95") + b"\x55" * 21, *HEADER_ITEMS[5:]),
    ),
    (
        "header timestamp leading zero",
        decode_header,
        _rlp_list(*HEADER_ITEMS[:3], H("8700018bcfe56800"), *HEADER_ITEMS[4:]),
    ),
    ("certificate unsorted", decode_certificate, _rlp_list(*CERT_HEAD, _rlp_list(VOTE3, VOTE0))),
    ("certificate duplicate", decode_certificate, _rlp_list(*CERT_HEAD, _rlp_list(VOTE0, VOTE0))),
    (
        "vote with 3 fields",
        decode_certificate,
        _rlp_list(*CERT_HEAD, _rlp_list(_rlp_list(H("80"), H("80"), H("b840") + b"\xaa" * 64))),
    ),
    (
        "validator index over uint32",
        decode_certificate,
        _rlp_list(*CERT_HEAD, _rlp_list(_rlp_list(H("850100000000"), H("b840") + b"\xaa" * 64))),
    ),
    ("votes as string", decode_certificate, _rlp_list(*CERT_HEAD, H("80"))),
    ("block of 2 fields", decode_block, _rlp_list(HEADER_BYTES, H("c0"))),
    ("block certificate as empty list", decode_block, _rlp_list(HEADER_BYTES, H("c0"), H("c0"))),
    (
        "block transactions as string",
        decode_block,
        _rlp_list(HEADER_BYTES, H("80"), EMPTY_CERT_BYTES),
    ),
    (
        "block with trailing byte",
        decode_block,
        _rlp_list(HEADER_BYTES, H("c0"), EMPTY_CERT_BYTES) + H("00"),
    ),
]


OTHER_REASONS = {
    "header 7 fields": r"length \(7\)",
    "header 9 fields": r"length \(9\)",
    "header trailing": r"superfluous",
    "header proposer 21 bytes": r"proposer",
    "header timestamp leading zero": r"timestamp",
    "certificate unsorted": r"sorted",
    "certificate duplicate": r"without duplicates",
    "vote with 3 fields": r"votes",
    "validator index over uint32": r"votes",
    "votes as string": r"votes",
    "block of 2 fields": r"expected 3 fields",
    "block certificate as empty list": r"certificate",
    "block transactions as string": r"block.transactions: expected a list",
    "block with trailing byte": r"trailing",
}


def test_hand_built_vectors_are_well_formed() -> None:
    """The helper agrees with the hand-written constants (so reject vectors differ in one way)."""
    assert _rlp_list(*HEADER_ITEMS) == HEADER_BYTES
    assert _rlp_list(*CERT_HEAD, _rlp_list(VOTE0, VOTE3)) == CERT_BYTES
    assert _replace_tx_field(7, H("80")) == TX_BYTES
    assert decode_block(_rlp_list(HEADER_BYTES, H("c0"), EMPTY_CERT_BYTES)).header == HEADER


@pytest.mark.parametrize(
    ("name", "decoder", "data"), REJECT_OTHER, ids=[c[0] for c in REJECT_OTHER]
)
def test_other_rejects(name: str, decoder: Callable[[bytes], Any], data: bytes) -> None:
    with pytest.raises(DecodeError, match=OTHER_REASONS[name]):
        decoder(data)
