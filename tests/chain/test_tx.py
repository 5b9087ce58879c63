"""Transactions: signing, verification, tamper detection, caching and the fast decoder."""

from __future__ import annotations

import hashlib

import pytest
import rlp

from chain.encoding import decode
from chain.errors import ChainError, DecodeError
from chain.keys import PrivateKey, verify_signature
from chain.tx import (
    MAX_TX_BYTES,
    MAX_TX_DATA_BYTES,
    TX_DOMAIN,
    Transaction,
    decode_transaction,
    make_transaction,
)

KEY = PrivateKey.from_seed(b"\x07" * 32)
TO = b"\x42" * 20


def _tx(**overrides: object) -> Transaction:
    args: dict[str, object] = {
        "chain_id": 9,
        "nonce": 3,
        "to": TO,
        "amount": 1_000,
        "fee": 2,
        "gas_limit": 21_000,
        "data": b"\x01\x02",
    }
    args.update(overrides)
    return make_transaction(KEY, **args)  # type: ignore[arg-type]


def test_signed_transaction_verifies_and_names_its_sender() -> None:
    tx = _tx()
    assert tx.verify_signature()
    assert tx.sender == KEY.public_key.raw
    assert tx.sender_address == KEY.address
    assert not tx.is_contract_creation
    assert _tx(to=b"").is_contract_creation
    assert tx.max_cost == 1_000 + 2 * 21_000


def test_signing_bytes_layout() -> None:
    tx = _tx()
    unsigned = rlp.encode([9, 3, KEY.public_key.raw, TO, 1_000, 2, 21_000, b"\x01\x02"])
    assert tx.signing_bytes() == TX_DOMAIN + (9).to_bytes(8, "big") + unsigned
    # and the same bytes come back after a decode (cut out of the encoding, not rebuilt)
    assert decode_transaction(tx.encoded).signing_bytes() == tx.signing_bytes()


def test_signing_bytes_of_a_large_transaction() -> None:
    tx = _tx(data=b"\xaa" * 70)  # unsigned list needs a long-form prefix
    unsigned = rlp.encode([9, 3, KEY.public_key.raw, TO, 1_000, 2, 21_000, b"\xaa" * 70])
    assert decode_transaction(tx.encoded).signing_bytes() == (
        TX_DOMAIN + (9).to_bytes(8, "big") + unsigned
    )


def test_hash_is_sha256_of_encoding() -> None:
    tx = _tx()
    assert tx.hash == hashlib.sha256(rlp.encode(tx, sedes=Transaction)).digest()
    assert tx.encoded == rlp.encode(tx, sedes=Transaction)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("chain_id", 10),
        ("nonce", 4),
        ("to", b"\x43" * 20),
        ("amount", 1_001),
        ("fee", 3),
        ("gas_limit", 21_001),
        ("data", b"\x01\x03"),
        ("sender", PrivateKey.from_seed(b"\x08" * 32).public_key.raw),
    ],
)
def test_any_tampered_field_fails_verification(field: str, value: object) -> None:
    tx = _tx()
    forged_fields = tx.as_dict()
    forged_fields[field] = value
    forged = decode_transaction(rlp.encode(Transaction(**forged_fields)))
    assert not forged.verify_signature()
    assert forged.hash != tx.hash


def test_tampered_signature_fails() -> None:
    tx = _tx()
    sig = bytearray(tx.signature)
    sig[10] ^= 1
    forged = decode_transaction(rlp.encode(tx.copy(signature=bytes(sig))))
    assert not forged.verify_signature()


def test_signature_does_not_carry_over_to_another_chain() -> None:
    tx = _tx(chain_id=1)
    other_chain = tx.signing_bytes().replace(
        TX_DOMAIN + (1).to_bytes(8, "big"), TX_DOMAIN + (2).to_bytes(8, "big"), 1
    )
    assert not verify_signature(tx.sender, other_chain, tx.signature)
    # the domain tag is part of what is signed
    without_domain = tx.signing_bytes()[len(TX_DOMAIN) :]
    assert not verify_signature(tx.sender, without_domain, tx.signature)


def test_fast_decoder_agrees_with_rlp_decoder() -> None:
    for tx in (_tx(), _tx(to=b"", data=b"\x60" * 300), _tx(amount=(1 << 256) - 1, nonce=0)):
        fast = decode_transaction(tx.encoded)
        slow = decode(tx.encoded, Transaction)
        assert fast == slow == tx
        assert tuple(fast) == tuple(slow)
        assert fast.verify_signature()


def test_decoded_transaction_round_trips_through_bytearray_and_memoryview() -> None:
    tx = _tx()
    assert decode_transaction(bytearray(tx.encoded)) == tx
    assert decode_transaction(memoryview(tx.encoded)) == tx
    with pytest.raises(DecodeError, match="expected bytes"):
        decode_transaction("not bytes")  # type: ignore[arg-type]


def test_max_tx_bytes_is_the_largest_possible_encoding() -> None:
    biggest = Transaction(
        (1 << 64) - 1,
        (1 << 64) - 1,
        b"\x01" * 32,
        b"\x02" * 20,
        (1 << 256) - 1,
        (1 << 64) - 1,
        (1 << 64) - 1,
        b"\x03" * MAX_TX_DATA_BYTES,
        b"\x04" * 64,
    )
    data = rlp.encode(biggest)
    assert len(data) == MAX_TX_BYTES
    assert decode_transaction(data) == biggest


def test_oversized_input_rejected_before_parsing() -> None:
    with pytest.raises(DecodeError, match="MAX_TX_BYTES"):
        decode_transaction(b"\xc0" + b"\x00" * MAX_TX_BYTES)


def test_data_over_the_limit_is_rejected() -> None:
    fields = list(_tx())
    fields[7] = b"\x05" * (MAX_TX_DATA_BYTES + 1)
    data = rlp.encode(fields)
    with pytest.raises(DecodeError):
        decode_transaction(data)
    with pytest.raises(DecodeError):
        decode(data, Transaction)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"nonce": 1 << 64}, "nonce"),
        ({"chain_id": -1}, "chain_id"),
        ({"to": b"\x01" * 19}, "to"),
        ({"amount": 1 << 256}, "amount"),
        ({"data": b"\x00" * (MAX_TX_DATA_BYTES + 1)}, "data"),
    ],
)
def test_make_transaction_refuses_out_of_range_fields(
    override: dict[str, object], field: str
) -> None:
    with pytest.raises(ChainError, match=f"invalid transaction field: {field}"):
        _tx(**override)


def test_recipient_must_be_20_bytes_or_empty_in_both_decoders() -> None:
    fields = list(_tx())
    fields[3] = b"\x01" * 19
    data = rlp.encode(fields)
    with pytest.raises(DecodeError):
        decode_transaction(data)
    with pytest.raises(DecodeError):
        decode(data, Transaction)


def test_equality_and_hashing_follow_the_encoding() -> None:
    a, b, c = _tx(), _tx(), _tx(nonce=4)
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert len({a, b, c}) == 2


def test_verification_result_is_cached_per_object() -> None:
    tx = decode_transaction(_tx().encoded)
    assert tx.verify_signature()
    assert tx._sig_ok is True
    assert tx.hash is tx.hash  # computed once


@pytest.mark.parametrize(
    "data", [b"", b"\x00", b"\x7f", b"\x80", b"d" * 55, b"d" * 56, b"d" * 256, b"d" * 65536]
)
@pytest.mark.parametrize("amount", [0, 127, 128, 256, (1 << 256) - 1])
def test_hand_encoding_matches_rlp(data: bytes, amount: int) -> None:
    tx = _tx(data=data, amount=amount, to=b"" if amount == 128 else TO, nonce=amount % (1 << 64))
    assert tx.encoded == rlp.encode(tx, sedes=Transaction)
    unsigned = rlp.encode(list(tx)[:8])
    assert tx.signing_bytes() == TX_DOMAIN + (9).to_bytes(8, "big") + unsigned
    assert tx.verify_signature()
    assert decode_transaction(tx.encoded) == tx


def test_make_transaction_refuses_wrong_types() -> None:
    with pytest.raises(ChainError, match="nonce: must be an int"):
        _tx(nonce=True)
    with pytest.raises(ChainError, match="to: must be bytes"):
        _tx(to="0x" + "00" * 20)
    assert _tx(data=bytearray(b"\x01\x02")) == _tx()


def test_primitives_benchmark_runs_and_reports_every_figure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from chain.bench_primitives import PrimitiveFigures, main, run

    figures = run(count=20, repeats=1, block_txs=10, merkle_leaves=64)
    assert figures.block_txs == 10
    assert figures.merkle_leaves == 64
    assert figures.tx_bytes == 138  # a plain transfer, as in the module docstring's figures
    assert figures.verify_raw_per_s > 0 and figures.admit_per_s > 0
    assert figures.admit_to_verify_ratio > 0
    assert main(["--count", "5", "--repeats", "1", "--merkle-leaves", "10", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == set(PrimitiveFigures.__dataclass_fields__)
