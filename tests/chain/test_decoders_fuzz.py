"""Every decoder of outside bytes, fed random, truncated, mutated and oversized input.

The only exception a decoder may raise is ``DecodeError``; when it accepts bytes, they must
be the canonical encoding of what it returned.

To cover a new decoder, append ``("name", callable)`` to :data:`DECODERS` and one or more
valid encodings to :data:`SEEDS` (mutations of seeds reach deep into the format).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

import pytest
import rlp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.block import (
    EMPTY_CERTIFICATE,
    ZERO_HASH,
    Block,
    CommitCertificate,
    Header,
    build_block,
    decode_block,
    decode_certificate,
    decode_header,
    make_certificate,
)
from chain.encoding import (
    MAX_DECODE_BYTES,
    decode,
    encode_list,
    split_list,
    string_items,
    uint64,
    uint256,
)
from chain.errors import DecodeError
from chain.keys import PrivateKey
from chain.merkle import decode_proof, encode_proof, merkle_proof
from chain.receipt import Log, Receipt, decode_receipt
from chain.state import EMPTY_CODE_HASH, Account, decode_account
from chain.tx import MAX_TX_BYTES, Transaction, decode_transaction, make_transaction

#: (name, decoder) for every function that decodes bytes from outside. Append yours.
DECODERS: list[tuple[str, Callable[[bytes], Any]]] = [
    ("transaction", decode_transaction),
    ("transaction_rlp", lambda b: decode(b, Transaction, what="transaction")),
    ("header", decode_header),
    ("certificate", decode_certificate),
    ("block", decode_block),
    ("merkle_proof", decode_proof),
    ("uint64", lambda b: decode(b, uint64, what="uint64")),
    ("uint256", lambda b: decode(b, uint256, what="uint256")),
    ("account", decode_account),
    ("receipt", decode_receipt),
]


def _seeds() -> list[bytes]:
    key = PrivateKey.from_seed(b"\x0f" * 32)
    txs = [
        make_transaction(
            key,
            chain_id=3,
            nonce=i,
            to=b"\x01" * 20 if i else b"",
            amount=i,
            fee=1,
            gas_limit=100,
            data=b"\x60" * (i * 30),
        )
        for i in range(3)
    ]
    b1 = build_block(
        chain_id=3,
        height=1,
        parent_hash=b"\x02" * 32,
        timestamp=5,
        proposer=key.address,
        state_root=ZERO_HASH,
        transactions=txs,
        last_commit=EMPTY_CERTIFICATE,
    )
    cert = make_certificate(
        height=1, view=2, block_hash=b1.hash, votes=[(0, b"\x03" * 64), (4, b"\x04" * 64)]
    )
    b2 = build_block(
        chain_id=3,
        height=2,
        parent_hash=b1.hash,
        timestamp=6,
        proposer=key.address,
        state_root=b"\x05" * 32,
        transactions=txs[:1],
        last_commit=cert,
    )
    return [
        *(tx.encoded for tx in txs),
        b1.header.encoded,
        cert.encoded,
        EMPTY_CERTIFICATE.encoded,
        b1.encoded,
        b2.encoded,
        encode_proof(merkle_proof([tx.hash for tx in txs], 2)),
        encode_proof(merkle_proof([b"x"] * 9, 8)),
        rlp.encode(12345),
        rlp.encode((1 << 256) - 1),
    ]


#: Valid encodings whose mutations are fed to every decoder. Append yours.
SEEDS: list[bytes] = _seeds()
SEEDS += [
    rlp.encode(Account(nonce=3, balance=10**20, code_hash=EMPTY_CODE_HASH)),
    rlp.encode(
        Receipt(
            b"\x07" * 32,
            0,
            21_000,
            42_000,
            b"revert at pc 3",
            (Log(b"\x08" * 20, (b"\x09" * 32, b"\x0a" * 32), b"event"),),
            b"\x0b" * 20,
            b"\x0c" * 4,
        )
    ),
]

_OPS = ("flip", "set", "insert", "delete", "truncate", "append", "splice")


def _mutate(seed: bytes, rng: random.Random) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(_OPS)
        i = rng.randrange(len(data) + 1)
        val = rng.randrange(256)
        if op == "flip" and data:
            data[i % len(data)] ^= 1 << (val % 8)
        elif op == "set" and data:
            data[i % len(data)] = val
        elif op == "insert":
            data.insert(i, val)
        elif op == "delete" and data:
            del data[i % len(data)]
        elif op == "truncate":
            del data[i:]
        elif op == "append":
            data.append(val)
        elif op == "splice" and data:  # duplicate a slice: repeated fields, items, lists
            j = rng.randrange(len(data) + 1)
            data[i:i] = data[min(i, j) : max(i, j)]
    return bytes(data)


def _random_item(rng: random.Random, depth: int = 0) -> Any:
    if depth < 3 and rng.random() < 0.4:
        return [_random_item(rng, depth + 1) for _ in range(rng.randrange(10))]
    size = rng.choice((0, 1, 1, 2, 8, 20, 32, 33, 64, 65, rng.randrange(100)))
    return rng.randbytes(size)


_LENGTHS = (0, 1, 2, 8, 9, 19, 20, 21, 31, 32, 33, 55, 56, 63, 64, 65)


def _mutate_tree(item: Any, rng: random.Random) -> Any:
    """Change one node of a decoded RLP tree (a field, an item of a list)."""
    if isinstance(item, list) and item and rng.random() < 0.7:
        i = rng.randrange(len(item))
        copy = list(item)
        copy[i] = _mutate_tree(item[i], rng)
        return copy
    choice = rng.randrange(8)
    if isinstance(item, list):
        copy = list(item)
        if choice == 0 and copy:
            del copy[rng.randrange(len(copy))]
        elif choice == 1 and copy:
            copy.insert(rng.randrange(len(copy) + 1), rng.choice(copy))
        elif choice == 2 and len(copy) > 1:
            i, j = rng.sample(range(len(copy)), 2)
            copy[i], copy[j] = copy[j], copy[i]
        elif choice == 3:
            copy.append(rng.randbytes(rng.choice(_LENGTHS)))
        else:
            return rng.randbytes(rng.choice(_LENGTHS))
        return copy
    if choice == 0:
        return b"\x00" + item  # leading zero
    if choice == 1:
        return item[1:]
    if choice == 2:
        return item + rng.randbytes(1)
    if choice == 3:
        return []
    if choice == 4:
        return [item]
    if choice == 5:
        return b"\xff" * len(item)  # largest value of that width
    return rng.randbytes(rng.choice(_LENGTHS))


def _prefix(length: int, offset: int, odd: int) -> bytes:
    """An RLP length prefix; ``odd`` 1 = long form when short, 2 = zero-padded length."""
    if length < 56 and odd not in (1, 2):
        return bytes([offset + length])
    size = length.to_bytes(max(1, (length.bit_length() + 7) // 8), "big")
    if odd == 2:
        size = b"\x00" + size
    return bytes([offset + 55 + len(size)]) + size


def _encode_odd(item: Any, rng: random.Random, p: float) -> bytes:
    """RLP-encode ``item``, making each node's prefix non-canonical with probability ``p``."""
    odd = rng.choice((1, 2, 3)) if rng.random() < p else 0
    if isinstance(item, list):
        payload = b"".join(_encode_odd(x, rng, p) for x in item)
        return _prefix(len(payload), 0xC0, odd if odd != 3 else 0) + payload
    if len(item) == 1 and item[0] < 0x80 and odd == 0:
        return bytes(item)
    if odd == 3:  # wrap a byte string the canonical way regardless of the single-byte rule
        return _prefix(len(item), 0x80, 0) + item
    return _prefix(len(item), 0x80, odd) + item


def _from_seed(kind: int, seed: int) -> bytes:
    """Cheap structured inputs: Hypothesis draws two integers, a seeded RNG does the rest."""
    rng = random.Random(seed)
    if kind == 0:
        return _mutate(rng.choice(SEEDS), rng)
    if kind == 1:
        return rlp.encode(_random_item(rng))
    if kind == 2:  # one field or item changed, everything else (prefixes too) canonical
        return rlp.encode(_mutate_tree(rlp.decode(rng.choice(SEEDS)), rng))
    if kind == 3:  # a valid value with one or two non-canonical prefixes
        return _encode_odd(rlp.decode(rng.choice(SEEDS)), rng, 0.05)
    base = rng.choice(SEEDS)  # a valid prefix, then garbage or a cut
    return base[: rng.randrange(len(base) + 1)] + rng.randbytes(rng.randrange(4))


def _batch(raw: bytes, seed: int) -> list[bytes]:
    """One Hypothesis example: its raw bytes plus INPUTS_PER_EXAMPLE seeded structured inputs."""
    rng = random.Random(seed)
    return [raw, *(_from_seed(i % 5, rng.getrandbits(64)) for i in range(INPUTS_PER_EXAMPLE))]


# Hypothesis costs about 3 ms of CPU per example on this machine whatever it generates, so
# each example expands two drawn values into a batch of inputs with random.Random:
# EXAMPLES * (1 + INPUTS_PER_EXAMPLE) inputs per decoder (3,300 by default) in about a
# second. PHALANX_FUZZ_EXAMPLES=3000 gives a deep run (33,000 inputs per decoder).
EXAMPLES = int(os.environ.get("PHALANX_FUZZ_EXAMPLES", "300"))
INPUTS_PER_EXAMPLE = 10

_inputs = st.builds(_batch, st.binary(max_size=300), st.integers(0, (1 << 64) - 1))


def _check(decoder: Callable[[bytes], Any], data: bytes) -> None:
    try:
        value = decoder(data)
    except DecodeError:
        return
    if isinstance(value, rlp.Serializable):
        # Accepted bytes are canonical: re-encoding from the fields (no cache) gives them back.
        assert rlp.encode(value, sedes=type(value)) == data


@pytest.mark.parametrize(("name", "decoder"), DECODERS, ids=[d[0] for d in DECODERS])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=_inputs)
def test_only_decode_error_escapes(
    name: str, decoder: Callable[[bytes], Any], batch: list[bytes]
) -> None:
    for data in batch:
        _check(decoder, data)


@pytest.mark.parametrize(("name", "decoder"), DECODERS, ids=[d[0] for d in DECODERS])
def test_every_seed_is_accepted_by_some_decoder_and_survives_truncation(
    name: str, decoder: Callable[[bytes], Any]
) -> None:
    for seed in SEEDS:
        for cut in range(0, len(seed), max(1, len(seed) // 50)):
            _check(decoder, seed[:cut])
        _check(decoder, seed)


def test_seeds_are_valid() -> None:
    """The seeds must decode somewhere, or mutating them tests nothing deep."""
    for seed in SEEDS:
        accepted = []
        for name, decoder in DECODERS:
            try:
                decoder(seed)
                accepted.append(name)
            except DecodeError:
                pass
        assert accepted, f"no decoder accepts seed {seed[:16].hex()}..."


def _deep_nesting(depth: int) -> bytes:
    x = b"\xc0"
    for _ in range(depth):
        n = len(x)
        if n < 56:
            x = bytes([0xC0 + n]) + x
        else:
            size = n.to_bytes((n.bit_length() + 7) // 8, "big")
            x = bytes([0xF7 + len(size)]) + size + x
    return x


_HUGE = [
    ("over the decode limit", b"\xc0" * (MAX_DECODE_BYTES + 1)),
    ("over the transaction limit", b"\x80" * (MAX_TX_BYTES + 1)),
    ("prefix claims 2^56 bytes", b"\xff" + b"\x01" * 8 + b"\x00" * 16),
    ("string claims 2^56 bytes", b"\xbf" + b"\x01" * 8 + b"\x00" * 16),
    ("deep nesting", _deep_nesting(3000)),
    ("many empty items", rlp.encode([b""] * 100_000)),
]


@pytest.mark.parametrize(("name", "decoder"), DECODERS, ids=[d[0] for d in DECODERS])
@pytest.mark.parametrize(("what", "data"), _HUGE, ids=[h[0] for h in _HUGE])
def test_oversized_and_hostile_inputs(
    name: str, decoder: Callable[[bytes], Any], what: str, data: bytes
) -> None:
    with pytest.raises(DecodeError):
        decoder(data)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=_inputs)
def test_fast_transaction_decoder_agrees_with_rlp(batch: list[bytes]) -> None:
    """decode_transaction must accept exactly what the rlp-based decoder accepts."""
    for data in batch:
        try:
            fast: Transaction | None = decode_transaction(data)
        except DecodeError:
            fast = None
        try:
            slow: Transaction | None = decode(data, Transaction)
        except DecodeError:
            slow = None
        assert (fast is None) == (slow is None), data.hex()
        if fast is not None and slow is not None:
            assert tuple(fast) == tuple(slow)
            assert fast.signing_bytes() == slow.signing_bytes()


def test_decoded_types() -> None:
    seeds = _seeds()
    assert isinstance(decode_transaction(seeds[0]), Transaction)
    assert isinstance(decode_header(seeds[3]), Header)
    assert isinstance(decode_certificate(seeds[4]), CommitCertificate)
    assert isinstance(decode_block(seeds[6]), Block)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=_inputs)
def test_fast_helpers_agree_with_rlp(batch: list[bytes]) -> None:
    """split_list is shallow (items are decoded by the caller) but never more lenient at its
    own level; string_items accepts exactly the flat lists rlp.decode accepts."""
    for data in batch:
        try:
            value: Any = rlp.decode(data, strict=True)
        except (rlp.DecodingError, rlp.DeserializationError):
            value = None
        try:
            parts: list[bytes] | None = split_list(data, "fuzz")
        except DecodeError:
            parts = None
        if isinstance(value, list):
            assert parts is not None, data.hex()
            assert [rlp.decode(p) for p in parts] == value
            assert encode_list(parts) == data
        elif parts is not None:  # accepted shallowly: some item must be malformed inside
            with pytest.raises(rlp.DecodingError):
                for p in parts:
                    rlp.decode(p, strict=True)
        flat = isinstance(value, list) and all(isinstance(x, bytes) for x in value)
        for count in {len(value) if flat else 0, 9}:
            try:
                items: list[bytes] | None = string_items(data, "fuzz", count)
            except DecodeError:
                items = None
            assert (items is not None) == (flat and len(value) == count)
            if items is not None:
                assert items == value
