"""Transactions: the signed, canonical unit of work users submit.

A :class:`Transaction` is an RLP list of nine fields (chain_id, nonce, sender, to, amount,
fee, gas_limit, data, signature). ``sender`` is the Ed25519 public key; the account that
pays is its address. ``to`` is a 20-byte address, or empty for a contract creation.

Signing: the signature covers ``TX_DOMAIN || chain_id (8 bytes, big-endian) || RLP of the
first eight fields``, so a signature is valid for one chain and one purpose only.

Theory of operation (speed): the mempool decodes, hashes and verifies every incoming
transaction, so :func:`decode_transaction` does not go through ``rlp.decode``. It splits
the bytes with the strict helpers of :mod:`chain.encoding`, checks every field, then builds
the object and caches its encoding. ``.hash``, ``.signing_bytes()`` and the signature check
are computed once per object and cached on it (objects are immutable). The unsigned RLP is
cut out of the cached encoding, not re-encoded: the signature is always the last 66 bytes.

Called by the mempool, executor, block builder, API and CLI.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import rlp

from chain.encoding import (
    CachedEncoding,
    address_or_empty,
    bounded_binary,
    decode_uint,
    encode,
    encode_list,
    pubkey32,
    signature64,
    string_items,
    uint64,
    uint256,
)
from chain.errors import ChainError, DecodeError
from chain.keys import PrivateKey, address_of, verify_signature

__all__ = [
    "MAX_TX_BYTES",
    "MAX_TX_DATA_BYTES",
    "TX_DOMAIN",
    "Transaction",
    "decode_transaction",
    "make_transaction",
    "read_fields",
]

TX_DOMAIN = b"phalanx/tx/v1"
MAX_TX_DATA_BYTES = 64 * 1024

_SIG_ITEM_BYTES = 2 + 64  # 0xb8 0x40 + 64 bytes: always the last item of the encoding

_FIELDS: tuple[tuple[str, Any], ...] = (
    ("chain_id", uint64),
    ("nonce", uint64),
    ("sender", pubkey32),
    ("to", address_or_empty),
    ("amount", uint256),
    ("fee", uint64),
    ("gas_limit", uint64),
    ("data", bounded_binary(MAX_TX_DATA_BYTES)),
    ("signature", signature64),
)


class Transaction(CachedEncoding, rlp.Serializable):  # type: ignore[misc]
    """A signed transfer, contract call or contract creation (immutable).

    Attributes:
        chain_id: the chain this transaction is valid on.
        nonce: the sender's account nonce this transaction consumes.
        sender: the sender's 32-byte Ed25519 public key.
        to: recipient address (20 bytes), or ``b""`` to create a contract.
        amount: value transferred.
        fee: price per unit of gas.
        gas_limit: most gas this transaction may use.
        data: call data or contract code (at most ``MAX_TX_DATA_BYTES``).
        signature: 64-byte Ed25519 signature of :meth:`signing_bytes`.
    """

    fields = _FIELDS

    chain_id: int
    nonce: int
    sender: bytes
    to: bytes
    amount: int
    fee: int
    gas_limit: int
    data: bytes
    signature: bytes

    _signing: bytes | None = None
    _sig_ok: bool | None = None
    _sender_address: bytes | None = None

    @property
    def sender_address(self) -> bytes:
        """The 20-byte address of the sender's public key (cached)."""
        a = self._sender_address
        if a is None:
            a = address_of(self.sender)
            self._sender_address = a
        return a

    @property
    def is_contract_creation(self) -> bool:
        """True when ``to`` is empty."""
        return self.to == b""

    @property
    def max_cost(self) -> int:
        """The most this transaction can debit: ``amount + fee * gas_limit``."""
        return int(self.amount + self.fee * self.gas_limit)

    def signing_bytes(self) -> bytes:
        """``TX_DOMAIN || chain_id (8 bytes) || RLP([the eight unsigned fields])``."""
        s = self._signing
        if s is None:
            s = _signing_bytes_from_encoding(self.encoded, self.chain_id)
            self._signing = s
        return s

    def verify_signature(self) -> bool:
        """True when ``signature`` is the sender's signature of :meth:`signing_bytes`."""
        ok = self._sig_ok
        if ok is None:
            ok = verify_signature(self.sender, self.signing_bytes(), self.signature)
            self._sig_ok = ok
        return ok

    def __repr__(self) -> str:
        return f"Transaction(hash={self.hash.hex()}, nonce={self.nonce})"

    # rlp.Serializable's copy/pickle copies the instance dict; drop our caches on copies.
    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        for name in ("_digest", "_signing", "_sig_ok", "_sender_address"):
            state.pop(name, None)
        return state


def _signing_bytes_from_encoding(encoded: bytes, chain_id: int) -> bytes:
    b0 = encoded[0]
    start = 1 if b0 < 0xF8 else 1 + (b0 - 0xF7)
    unsigned_payload = encoded[start:-_SIG_ITEM_BYTES]
    n = len(unsigned_payload)
    if n < 56:
        prefix = bytes((0xC0 + n,))
    else:
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        prefix = bytes((0xF7 + len(size),)) + size
    return TX_DOMAIN + chain_id.to_bytes(8, "big") + prefix + unsigned_payload


def _max_tx_bytes() -> int:
    biggest = Transaction(
        (1 << 64) - 1,
        (1 << 64) - 1,
        b"\xff" * 32,
        b"\xff" * 20,
        (1 << 256) - 1,
        (1 << 64) - 1,
        (1 << 64) - 1,
        b"\xff" * MAX_TX_DATA_BYTES,
        b"\xff" * 64,
    )
    return len(encode(biggest))


#: The largest possible canonical transaction encoding (every field at its maximum).
MAX_TX_BYTES = _max_tx_bytes()


def make_transaction(
    key: PrivateKey,
    *,
    chain_id: int,
    nonce: int,
    to: bytes,
    amount: int,
    fee: int,
    gas_limit: int,
    data: bytes = b"",
) -> Transaction:
    """Build and sign a transaction from ``key``.

    Raises:
        ChainError: a field is out of range or of the wrong type or length.
    """
    to_b, data_b = _as_bytes(to, "to"), _as_bytes(data, "data")
    if len(to_b) not in (0, 20):
        raise ChainError(
            f"invalid transaction field: to: must be 20 bytes or empty, got {len(to_b)}"
        )
    if len(data_b) > MAX_TX_DATA_BYTES:
        raise ChainError(
            f"invalid transaction field: data: {len(data_b)} bytes exceeds {MAX_TX_DATA_BYTES}"
        )
    sender = key.public_key.raw
    # Encoded by hand (same bytes as rlp.encode, checked by the tests): pyrlp's generic
    # encoder costs more than the signature.
    unsigned = encode_list(
        [
            _enc_uint(chain_id, 64, "chain_id"),
            _enc_uint(nonce, 64, "nonce"),
            _enc_str(sender),
            _enc_str(to_b),
            _enc_uint(amount, 256, "amount"),
            _enc_uint(fee, 64, "fee"),
            _enc_uint(gas_limit, 64, "gas_limit"),
            _enc_str(data_b),
        ]
    )
    signing = TX_DOMAIN + chain_id.to_bytes(8, "big") + unsigned
    signature = key.sign(signing)
    b0 = unsigned[0]
    payload = unsigned[1 if b0 < 0xF8 else 1 + (b0 - 0xF7) :] + b"\xb8\x40" + signature
    tx = Transaction(chain_id, nonce, sender, to_b, amount, fee, gas_limit, data_b, signature)
    tx._cached_rlp = encode_list([payload])
    tx._signing = signing
    return tx


def _as_bytes(value: object, name: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise ChainError(
        f"invalid transaction field: {name}: must be bytes, got {type(value).__name__}"
    )


def _enc_str(b: bytes) -> bytes:
    n = len(b)
    if n == 1 and b[0] < 0x80:
        return b
    if n < 56:
        return bytes((0x80 + n,)) + b
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0xB7 + len(size),)) + size + b


def _enc_uint(value: object, bits: int, name: str) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChainError(
            f"invalid transaction field: {name}: must be an int, got {type(value).__name__}"
        )
    if value < 0 or value >> bits:
        raise ChainError(f"invalid transaction field: {name}: value out of range for uint{bits}")
    return _enc_str(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _field_reader(*names: str) -> Callable[[Transaction], tuple[Any, ...]]:
    """Read several fields of a transaction at once, from rlp's own storage attributes
    (the public properties cost ~0.4 µs each on the executor's and mempool's hot paths)."""
    meta = Transaction._meta
    attrs = dict(zip(meta.field_names, meta.field_attrs, strict=True))
    return operator.attrgetter(*(attrs[name] for name in names))


#: ``read_fields(tx) -> (chain_id, nonce, to, amount, fee, gas_limit, data)`` in one call.
read_fields = _field_reader("chain_id", "nonce", "to", "amount", "fee", "gas_limit", "data")


def decode_transaction(data: bytes) -> Transaction:
    """Decode one transaction strictly (the mempool's and the block decoder's fast path).

    Args:
        data: the canonical encoding.

    Returns:
        The transaction, with its encoding cached.

    Raises:
        DecodeError: oversized input, malformed or non-canonical RLP, wrong field count,
            field of the wrong type, length or range.
    """
    if not isinstance(data, bytes):
        if isinstance(data, bytearray | memoryview):
            data = bytes(data)
        else:
            raise DecodeError(f"transaction: expected bytes, got {type(data).__name__}")
    if len(data) > MAX_TX_BYTES:
        raise DecodeError(f"transaction: {len(data)} bytes exceeds MAX_TX_BYTES={MAX_TX_BYTES}")
    f = string_items(data, "transaction", 9)
    sender, to, payload, sig = f[2], f[3], f[7], f[8]
    if len(sender) != 32:
        raise DecodeError(f"transaction.sender: must be 32 bytes, got {len(sender)}")
    if len(to) != 20 and to:
        raise DecodeError(f"transaction.to: must be 20 bytes or empty, got {len(to)}")
    if len(payload) > MAX_TX_DATA_BYTES:
        raise DecodeError(f"transaction.data: {len(payload)} bytes exceeds {MAX_TX_DATA_BYTES}")
    if len(sig) != 64:
        raise DecodeError(f"transaction.signature: must be 64 bytes, got {len(sig)}")
    tx = Transaction(
        decode_uint(f[0], 64, "transaction.chain_id"),
        decode_uint(f[1], 64, "transaction.nonce"),
        sender,
        to,
        decode_uint(f[4], 256, "transaction.amount"),
        decode_uint(f[5], 64, "transaction.fee"),
        decode_uint(f[6], 64, "transaction.gas_limit"),
        payload,
        sig,
    )
    tx._cached_rlp = data
    return tx
