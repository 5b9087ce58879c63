"""Blocks, headers and commit certificates: building, structure checks, strict decoding."""

from __future__ import annotations

import hashlib

import pytest
import rlp

from chain.block import (
    EMPTY_CERTIFICATE,
    MAX_BLOCK_TXS,
    ZERO_HASH,
    Block,
    CommitCertificate,
    Header,
    Vote,
    build_block,
    decode_block,
    decode_certificate,
    decode_header,
    make_certificate,
)
from chain.errors import ChainError, DecodeError
from chain.keys import PrivateKey
from chain.merkle import merkle_root
from chain.tx import Transaction, make_transaction

KEY = PrivateKey.from_seed(b"\x03" * 32)
CHAIN = 5


def _txs(n: int, chain_id: int = CHAIN) -> list[Transaction]:
    return [
        make_transaction(
            KEY, chain_id=chain_id, nonce=i, to=b"\x09" * 20, amount=i, fee=1, gas_limit=10
        )
        for i in range(n)
    ]


def _chain() -> tuple[Block, Block, CommitCertificate, Block]:
    b0 = build_block(
        chain_id=CHAIN,
        height=0,
        parent_hash=ZERO_HASH,
        timestamp=1_000,
        proposer=b"\x00" * 20,
        state_root=ZERO_HASH,
        transactions=[],
        last_commit=EMPTY_CERTIFICATE,
    )
    b1 = build_block(
        chain_id=CHAIN,
        height=1,
        parent_hash=b0.hash,
        timestamp=2_000,
        proposer=KEY.address,
        state_root=b"\x11" * 32,
        transactions=_txs(3),
        last_commit=EMPTY_CERTIFICATE,
    )
    cert = make_certificate(
        height=1, view=0, block_hash=b1.hash, votes=[(2, b"\x22" * 64), (0, b"\x20" * 64)]
    )
    b2 = build_block(
        chain_id=CHAIN,
        height=2,
        parent_hash=b1.hash,
        timestamp=3_000,
        proposer=KEY.address,
        state_root=b"\x12" * 32,
        transactions=_txs(1),
        last_commit=cert,
    )
    return b0, b1, cert, b2


def test_build_computes_roots_and_round_trips() -> None:
    b0, b1, cert, b2 = _chain()
    assert b1.header.tx_root == merkle_root([tx.hash for tx in b1.transactions])
    assert b0.header.tx_root == hashlib.sha256(b"").digest()
    assert b1.header.last_commit_hash == ZERO_HASH
    assert b2.header.last_commit_hash == cert.hash
    for block in (b0, b1, b2):
        assert block.hash == block.header.hash == hashlib.sha256(block.header.encoded).digest()
        assert block.encoded == rlp.encode(block, sedes=Block)
        again = decode_block(block.encoded)
        assert again == block
        assert again.hash == block.hash
        again.validate_structure()
        assert [tx.hash for tx in again.transactions] == [tx.hash for tx in block.transactions]


def test_header_and_certificate_decoders() -> None:
    _, _, cert, b2 = _chain()
    assert decode_header(b2.header.encoded) == b2.header
    assert decode_certificate(cert.encoded) == cert
    assert cert.signer_indices() == (0, 2)
    assert cert.hash == hashlib.sha256(rlp.encode(cert, sedes=CommitCertificate)).digest()


def test_decode_block_caches_and_verifies_transactions() -> None:
    _, b1, _, _ = _chain()
    again = decode_block(b1.encoded)
    assert all(tx.verify_signature() for tx in again.transactions)
    assert again.transactions[0].encoded == b1.transactions[0].encoded


@pytest.mark.parametrize(
    "votes",
    [
        [(1, b"\x01" * 64), (0, b"\x00" * 64)],  # unsorted
        [(1, b"\x01" * 64), (1, b"\x02" * 64)],  # duplicate
    ],
)
def test_certificate_rejects_unsorted_or_duplicate_votes(votes: list[tuple[int, bytes]]) -> None:
    with pytest.raises(ChainError, match="sorted"):
        CommitCertificate(1, 0, 0, b"\x00" * 32, tuple(Vote(i, s) for i, s in votes))
    raw = rlp.encode([1, 0, 0, b"\x00" * 32, [[i, s] for i, s in votes]])
    with pytest.raises(DecodeError, match="sorted"):
        decode_certificate(raw)


def test_make_certificate_sorts_but_refuses_two_votes_from_one_validator() -> None:
    cert = make_certificate(height=1, view=0, block_hash=b"\x01" * 32, votes=[(3, b"\x03" * 64)])
    assert cert.signer_indices() == (3,)
    with pytest.raises(ChainError):
        make_certificate(
            height=1, view=0, block_hash=b"\x01" * 32, votes=[(3, b"\x03" * 64), (3, b"\x04" * 64)]
        )
    with pytest.raises(ChainError):
        make_certificate(height=1, view=0, block_hash=b"\x01" * 3, votes=[])


def test_certificate_verify_uses_the_callers_check_and_quorum() -> None:
    cert = make_certificate(
        height=4,
        view=1,
        block_hash=b"\x07" * 32,
        votes=[(0, b"\x00" * 64), (1, b"\x01" * 64), (2, b"\x02" * 64)],
    )
    seen: list[int] = []

    def honest(index: int, signature: bytes) -> bool:
        seen.append(index)
        return signature == bytes([index]) * 64

    assert cert.verify(honest, quorum=3)
    assert seen == [0, 1, 2]
    assert not cert.verify(honest, quorum=4)  # not enough votes
    assert not cert.verify(honest, quorum=0)
    assert not cert.verify(lambda i, s: i != 1, quorum=2)  # one forged vote sinks it
    assert not EMPTY_CERTIFICATE.verify(honest, quorum=1)


def _header_with(block: Block, **changes: object) -> Header:
    return block.header.copy(**changes)


def test_validate_structure_catches_each_inconsistency() -> None:
    b0, b1, cert, b2 = _chain()
    cases = [
        (Block(_header_with(b1, tx_root=b"\x00" * 32), b1.transactions, b1.last_commit), "tx_root"),
        (Block(b1.header, b1.transactions[:2], b1.last_commit), "tx_root"),
        (Block(b2.header, b2.transactions, EMPTY_CERTIFICATE), "last_commit_hash"),
        (
            Block(_header_with(b2, last_commit_hash=b"\x01" * 32), b2.transactions, cert),
            "last_commit_hash",
        ),
        (Block(b1.header, b1.transactions, cert), "empty certificate"),
        (
            Block(_header_with(b1, last_commit_hash=cert.hash), b1.transactions, cert),
            "empty certificate",
        ),
        (Block(_header_with(b0, parent_hash=b"\x01" * 32), (), EMPTY_CERTIFICATE), "parent_hash"),
    ]
    for block, reason in cases:
        with pytest.raises(ChainError, match=reason):
            block.validate_structure()


def test_validate_structure_checks_certificate_height_and_parent() -> None:
    _, b1, _, _ = _chain()
    wrong_height = make_certificate(height=0, view=0, block_hash=b1.hash, votes=[])
    wrong_parent = make_certificate(height=1, view=0, block_hash=b"\x05" * 32, votes=[])
    for cert, reason in ((wrong_height, "height"), (wrong_parent, "another parent")):
        with pytest.raises(ChainError, match=reason):
            build_block(
                chain_id=CHAIN,
                height=2,
                parent_hash=b1.hash,
                timestamp=1,
                proposer=KEY.address,
                state_root=ZERO_HASH,
                transactions=[],
                last_commit=cert,
            )


def test_wrong_chain_id_and_duplicate_transactions_are_rejected() -> None:
    _, b1, _, _ = _chain()
    for txs, reason in ((_txs(2, chain_id=CHAIN + 1), "chain id"), (_txs(1) * 2, "twice")):
        with pytest.raises(ChainError, match=reason):
            build_block(
                chain_id=CHAIN,
                height=1,
                parent_hash=b1.hash,
                timestamp=1,
                proposer=KEY.address,
                state_root=ZERO_HASH,
                transactions=txs,
                last_commit=EMPTY_CERTIFICATE,
            )


def test_build_block_reports_bad_header_fields_as_chain_errors() -> None:
    with pytest.raises(ChainError, match="invalid header field"):
        build_block(
            chain_id=CHAIN,
            height=0,
            parent_hash=ZERO_HASH,
            timestamp=-1,
            proposer=KEY.address,
            state_root=ZERO_HASH,
            transactions=[],
            last_commit=EMPTY_CERTIFICATE,
        )


def test_decode_block_rejects_malformed_transactions_with_their_index() -> None:
    _, b1, _, _ = _chain()
    parts = rlp.decode(b1.encoded)
    parts[1][1][1] = b"\x00\x01"  # nonce with a leading zero
    with pytest.raises(DecodeError, match=r"transactions\[1\]"):
        decode_block(rlp.encode(parts))


def test_decode_block_rejects_wrong_shapes() -> None:
    _, b1, _, _ = _chain()
    parts = rlp.decode(b1.encoded)
    for bad in (
        rlp.encode(parts[:2]),
        rlp.encode([*parts, b""]),
        rlp.encode([parts[0], b"not a list", parts[2]]),
        b1.encoded + b"\x00",
        b1.encoded[:-1],
        rlp.encode(b"a string"),
    ):
        with pytest.raises(DecodeError):
            decode_block(bad)


def test_decode_block_bounds_transaction_count_before_decoding_them() -> None:
    header = rlp.decode(_chain()[0].encoded)[0]
    # MAX_BLOCK_TXS + 1 empty lists: not transactions, but the count is checked first
    data = rlp.encode([header, [[]] * (MAX_BLOCK_TXS + 1), rlp.decode(EMPTY_CERTIFICATE.encoded)])
    with pytest.raises(DecodeError, match="max"):
        decode_block(data)


def test_equality_is_by_encoding() -> None:
    _, b1, _, b2 = _chain()
    assert decode_block(b1.encoded) == b1
    assert b1 != b2
    assert len({b1, decode_block(b1.encoded), b2}) == 2


def test_decode_block_reuses_known_transactions_and_only_exact_ones() -> None:
    """``known`` (a mempool lookup) saves decoding a backup's gossiped transactions; what
    it hands back is used only if its encoding is the block's."""
    _, b1, _, _ = _chain()
    raw = bytes(b1.encoded)
    pool = {tx.hash: decode_block(raw).transactions[i] for i, tx in enumerate(b1.transactions[:2])}
    asked: list[bytes] = []

    def lookup(tx_hash: bytes) -> Transaction | None:
        asked.append(tx_hash)
        return pool.get(tx_hash)

    block = decode_block(raw, known=lookup)
    assert block == b1 and block.hash == b1.hash
    assert asked == [tx.hash for tx in b1.transactions]
    assert block.transactions[0] is pool[b1.transactions[0].hash]
    assert block.transactions[1] is pool[b1.transactions[1].hash]
    assert block.transactions[2] not in pool.values()
    assert block.transactions[2].hash == b1.transactions[2].hash
    # A lookup that answers with another transaction for a hash is not believed.
    other = _txs(5)[4]
    lying = decode_block(raw, known=lambda _h: other)
    assert lying == b1
    assert all(tx is not other for tx in lying.transactions)
