"""Blocks, headers and commit certificates.

A :class:`Block` is ``[header, transactions, last_commit]``. The header commits to the
transactions (``tx_root``: Merkle root of the transaction hashes), to the state *after the
parent block* (``state_root``) and to the parent's commit certificate
(``last_commit_hash``). ``last_commit`` is the certificate of block ``N-1`` carried in block
``N`` (as sawtooth-pbft's seal), so a lagging node can check the chain without old logs.

Conventions for the first blocks: block 0 (genesis) has ``parent_hash = state_root =
ZERO_HASH``; blocks 0 and 1 carry :data:`EMPTY_CERTIFICATE` and ``last_commit_hash =
ZERO_HASH`` (block 0 is never voted on).

A :class:`CommitCertificate` lists ``(validator_index, signature)`` votes sorted by index
with no duplicates; this is enforced when one is built and when one is decoded. What a vote
signs is decided by consensus, so :meth:`CommitCertificate.verify` takes the check from the
caller.

Decoders (:func:`decode_block`, :func:`decode_header`, :func:`decode_certificate`) are strict
and raise only :class:`~chain.errors.DecodeError`. Block decoding hands each transaction to
:func:`chain.tx.decode_transaction` (the fast path) and keeps every encoding cached.

Called by the block builder (node), the executor, the ledger, sync and the API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import rlp

from chain.encoding import (
    CachedEncoding,
    CountableList,
    decode,
    encode,
    encode_list,
    hash32,
    signature64,
    split_list,
    uint32,
    uint64,
)
from chain.encoding import address as address_sedes
from chain.errors import ChainError, DecodeError
from chain.merkle import merkle_root
from chain.tx import MAX_TX_BYTES, Transaction, decode_transaction

__all__ = [
    "EMPTY_CERTIFICATE",
    "MAX_BLOCK_BYTES",
    "MAX_BLOCK_TXS",
    "MAX_CERTIFICATE_VOTES",
    "ZERO_HASH",
    "Block",
    "CommitCertificate",
    "Header",
    "Vote",
    "build_block",
    "decode_block",
    "decode_certificate",
    "decode_header",
    "make_certificate",
    "tx_root_of",
]

ZERO_HASH = b"\0" * 32
#: Most transactions one block may carry.
MAX_BLOCK_TXS = 10_000
#: Most bytes one encoded block may take.
MAX_BLOCK_BYTES = 8 * 1024 * 1024
#: Most votes in one certificate (bounds the validator set a certificate can describe).
MAX_CERTIFICATE_VOTES = 1024

assert MAX_TX_BYTES < MAX_BLOCK_BYTES


class Header(CachedEncoding, rlp.Serializable):  # type: ignore[misc]
    """A block header (immutable); its ``hash`` (SHA-256 of the encoding) is the block hash.

    Attributes:
        chain_id: the chain.
        height: block number, 0 for genesis.
        parent_hash: hash of block ``height - 1`` (zero for genesis).
        timestamp: milliseconds since the Unix epoch, chosen by the proposer.
        proposer: the proposer's 20-byte address.
        tx_root: Merkle root of the transaction hashes.
        state_root: state commitment after the parent block (zero for genesis).
        last_commit_hash: hash of block ``height - 1``'s certificate (zero for 0 and 1).
    """

    fields = (
        ("chain_id", uint64),
        ("height", uint64),
        ("parent_hash", hash32),
        ("timestamp", uint64),
        ("proposer", address_sedes),
        ("tx_root", hash32),
        ("state_root", hash32),
        ("last_commit_hash", hash32),
    )

    chain_id: int
    height: int
    parent_hash: bytes
    timestamp: int
    proposer: bytes
    tx_root: bytes
    state_root: bytes
    last_commit_hash: bytes


class Vote(rlp.Serializable):  # type: ignore[misc]
    """One validator's signature in a certificate."""

    fields = (("validator_index", uint32), ("signature", signature64))

    validator_index: int
    signature: bytes


class CommitCertificate(CachedEncoding, rlp.Serializable):  # type: ignore[misc]
    """Proof that a quorum committed ``block_hash`` at ``height`` in ``view``.

    Attributes:
        height: the block's height.
        view: the consensus view the commit happened in.
        seq: the consensus sequence number the block was ordered at (the signed votes
            cover it, so a certificate can only be re-verified knowing it; 0 for chains
            committed without consensus, such as ``phalanx demo``).
        block_hash: the committed block's hash.
        votes: signatures sorted by strictly increasing validator index.

    Raises:
        ChainError: (at construction) votes unsorted, duplicated or too many.
    """

    fields = (
        ("height", uint64),
        ("view", uint64),
        ("seq", uint64),
        ("block_hash", hash32),
        ("votes", CountableList(Vote, max_length=MAX_CERTIFICATE_VOTES)),
    )

    height: int
    view: int
    seq: int
    block_hash: bytes
    votes: tuple[Vote, ...]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        votes = self.votes
        if len(votes) > MAX_CERTIFICATE_VOTES:
            raise ChainError(f"certificate has {len(votes)} votes, max {MAX_CERTIFICATE_VOTES}")
        previous = -1
        for vote in votes:
            if not isinstance(vote, Vote):
                raise ChainError("certificate votes must be Vote objects")
            if vote.validator_index <= previous:
                raise ChainError(
                    "certificate votes must be sorted by validator index without duplicates "
                    f"(index {vote.validator_index} after {previous})"
                )
            previous = vote.validator_index

    def signer_indices(self) -> tuple[int, ...]:
        """The validator indices that signed, ascending."""
        return tuple(v.validator_index for v in self.votes)

    def verify(self, check: Callable[[int, bytes], bool], quorum: int) -> bool:
        """Check the certificate against a caller-supplied vote check.

        Every vote must pass ``check(index, signature)`` (a certificate carrying a forged
        vote is rejected as a whole) and there must be at least ``quorum`` of them.

        Args:
            check: returns True when ``signature`` is validator ``index``'s valid vote for
                this certificate's (height, view, block_hash); decided by consensus.
            quorum: votes required, at least 1.

        Returns:
            True when the certificate is valid.
        """
        if quorum < 1 or len(self.votes) < quorum:
            return False
        return all(check(v.validator_index, v.signature) for v in self.votes)


def make_certificate(
    *,
    height: int,
    view: int,
    block_hash: bytes,
    votes: Iterable[tuple[int, bytes]],
    seq: int = 0,
) -> CommitCertificate:
    """Build a certificate from ``(validator_index, signature)`` pairs in any order.

    ``seq`` is the consensus sequence number (0 for chains committed without consensus).

    Raises:
        ChainError: two votes from one validator, or a field out of range.
    """
    ordered = sorted(votes, key=lambda v: v[0])
    cert = CommitCertificate(height, view, seq, block_hash, tuple(Vote(i, s) for i, s in ordered))
    try:
        encode(cert)
    except rlp.SerializationError as e:
        raise ChainError(f"invalid certificate field: {e}") from e
    return cert


#: The certificate carried by blocks 0 and 1.
EMPTY_CERTIFICATE = CommitCertificate(0, 0, 0, ZERO_HASH, ())


class Block(rlp.Serializable):  # type: ignore[misc]
    """A header, its transactions and the parent's commit certificate (immutable)."""

    fields = (
        ("header", Header),
        ("transactions", CountableList(Transaction, max_length=MAX_BLOCK_TXS)),
        ("last_commit", CommitCertificate),
    )

    header: Header
    transactions: tuple[Transaction, ...]
    last_commit: CommitCertificate
    _cached_rlp: bytes | None

    @property
    def hash(self) -> bytes:
        """The header hash."""
        return self.header.hash

    @property
    def height(self) -> int:
        """The header's height."""
        return self.header.height

    @property
    def encoded(self) -> bytes:
        """The canonical encoding, assembled from the cached parts' encodings (cached)."""
        cached: bytes | None = self._cached_rlp
        if cached is None:
            cached = encode_list(
                [
                    self.header.encoded,
                    encode_list([tx.encoded for tx in self.transactions]),
                    self.last_commit.encoded,
                ]
            )
            self._cached_rlp = cached
        return cached

    def validate_structure(self) -> None:
        """Check what a block can check about itself, without state or votes.

        Raises:
            ChainError: tx_root does not match the transactions, a transaction has another
                chain id or appears twice, too many transactions, or last_commit /
                last_commit_hash disagree with each other, the height or the parent.
        """
        h = self.header
        txs = self.transactions
        if len(txs) > MAX_BLOCK_TXS:
            raise ChainError(f"block {h.height}: {len(txs)} transactions, max {MAX_BLOCK_TXS}")
        for i, tx in enumerate(txs):
            if tx.chain_id != h.chain_id:
                raise ChainError(
                    f"block {h.height}: transactions[{i}] has chain id {tx.chain_id}, "
                    f"expected {h.chain_id}"
                )
        hashes = [tx.hash for tx in txs]
        if len(set(hashes)) != len(hashes):
            raise ChainError(f"block {h.height}: a transaction appears twice")
        if merkle_root(hashes) != h.tx_root:
            raise ChainError(f"block {h.height}: tx_root does not match the transactions")
        if len(self.encoded) > MAX_BLOCK_BYTES:
            raise ChainError(f"block {h.height}: larger than {MAX_BLOCK_BYTES} bytes")
        cert = self.last_commit
        if h.height <= 1:
            if cert != EMPTY_CERTIFICATE or h.last_commit_hash != ZERO_HASH:
                raise ChainError(
                    f"block {h.height}: must carry the empty certificate and a zero "
                    "last_commit_hash"
                )
            if h.height == 0 and h.parent_hash != ZERO_HASH:
                raise ChainError("block 0: parent_hash must be zero")
            return
        if h.last_commit_hash != cert.hash:
            raise ChainError(f"block {h.height}: last_commit_hash does not match last_commit")
        if cert.height != h.height - 1:
            raise ChainError(
                f"block {h.height}: last_commit is for height {cert.height}, "
                f"expected {h.height - 1}"
            )
        if cert.block_hash != h.parent_hash:
            raise ChainError(f"block {h.height}: last_commit certifies another parent")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Block) and other.encoded == self.encoded

    def __hash__(self) -> int:
        return hash(self.hash)

    def __repr__(self) -> str:
        return f"Block(height={self.height}, hash={self.hash.hex()}, txs={len(self.transactions)})"


def tx_root_of(transactions: Sequence[Transaction]) -> bytes:
    """Merkle root of the transaction hashes."""
    return merkle_root([tx.hash for tx in transactions])


def build_block(
    *,
    chain_id: int,
    height: int,
    parent_hash: bytes,
    timestamp: int,
    proposer: bytes,
    state_root: bytes,
    transactions: Sequence[Transaction],
    last_commit: CommitCertificate,
) -> Block:
    """Assemble a block, computing ``tx_root`` and ``last_commit_hash``.

    For heights 0 and 1, ``last_commit`` must be :data:`EMPTY_CERTIFICATE` and
    ``last_commit_hash`` is zero.

    Raises:
        ChainError: the result fails :meth:`Block.validate_structure` or a field is out of
            range.
    """
    last_commit_hash = ZERO_HASH if height <= 1 else last_commit.hash
    try:
        header = Header(
            chain_id,
            height,
            parent_hash,
            timestamp,
            proposer,
            tx_root_of(transactions),
            state_root,
            last_commit_hash,
        )
        encode(header)
    except rlp.SerializationError as e:
        raise ChainError(f"invalid header field: {e}") from e
    block = Block(header, tuple(transactions), last_commit)
    block.validate_structure()
    return block


def decode_header(data: bytes) -> Header:
    """Decode a header strictly.

    Raises:
        DecodeError: the bytes are not one canonical header.
    """
    header: Header = decode(data, Header, what="header")
    return header


def decode_certificate(data: bytes) -> CommitCertificate:
    """Decode a commit certificate strictly (sorted, unique votes).

    Raises:
        DecodeError: the bytes are not one canonical certificate.
    """
    cert: CommitCertificate = decode(data, CommitCertificate, what="certificate")
    return cert


def decode_block(data: bytes, known: Callable[[bytes], Transaction | None] | None = None) -> Block:
    """Decode a block strictly, using the fast transaction decoder.

    Structure is decoded, not validated: call :meth:`Block.validate_structure` next.

    Args:
        data: the block's encoding.
        known: looks a transaction up by its hash (SHA-256 of its encoding), e.g. in the
            mempool; a transaction it returns is used as it is, not decoded again. A backup
            has most of a proposed block's transactions from gossip already, decoded and
            with their signature checks cached.

    Raises:
        DecodeError: oversized, malformed or non-canonical input, or too many transactions.
    """
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise DecodeError(f"block: expected bytes, got {type(data).__name__}")
    if len(data) > MAX_BLOCK_BYTES:
        raise DecodeError(f"block: {len(data)} bytes exceeds MAX_BLOCK_BYTES={MAX_BLOCK_BYTES}")
    parts = split_list(data, "block")
    if len(parts) != 3:
        raise DecodeError(f"block: expected 3 fields, got {len(parts)}")
    header = decode_header(parts[0])
    raw_txs = split_list(parts[1], "block.transactions")
    if len(raw_txs) > MAX_BLOCK_TXS:
        raise DecodeError(f"block: {len(raw_txs)} transactions, max {MAX_BLOCK_TXS}")
    txs = []
    for i, raw in enumerate(raw_txs):
        digest = None
        if known is not None:
            digest = hashlib.sha256(raw).digest()
            tx = known(digest)
            if tx is not None and tx.encoded == raw:
                txs.append(tx)
                continue
        try:
            tx = decode_transaction(raw)
        except DecodeError as e:
            raise DecodeError(f"block.transactions[{i}]: {e}") from e
        if digest is not None:
            tx._digest = digest
        txs.append(tx)
    cert = decode_certificate(parts[2])
    block = Block(header, tuple(txs), cert)
    block._cached_rlp = data
    return block
