"""ChainApp: proposals, validity, deliveries (including no-ops) and synced blocks."""

from __future__ import annotations

import trio
import trio.testing

from chain.block import EMPTY_CERTIFICATE, Vote, build_block
from chain.db.memory import MemoryDB
from chain.ledger import Ledger
from chain.tx import make_transaction
from node.app import block_digest
from tests.node.cluster import (
    CHAIN_ID,
    GENESIS_TIME,
    build_driver,
    make_cluster,
    start_node,
    wait_height,
)


def _block(app, *, chain_id: int = CHAIN_ID, proposer: bytes | None = None, ts: int | None = None,
           txs: tuple = (), height: int | None = None) -> bytes:  # type: ignore[no-untyped-def]
    head = app.ledger.head
    return bytes(build_block(
        chain_id=chain_id, height=head.height + 1 if height is None else height,
        parent_hash=head.block_hash, timestamp=GENESIS_TIME + 1 if ts is None else ts,
        proposer=proposer or app.key.address, state_root=head.state_root,
        transactions=txs,
        last_commit=app.ledger.certificate(head.height) if head.height else EMPTY_CERTIFICATE,
    ).encoded)


async def test_digest_is_the_block_hash_and_junk_gets_another_domain(
    autojump_clock: trio.testing.MockClock,
) -> None:
    c = make_cluster(4)
    app = build_driver(c, 0).app
    value = app.build_proposal()
    from chain.block import decode_block

    assert block_digest(value) == decode_block(value).hash
    assert block_digest(b"\x01\x02junk") != block_digest(b"\x01\x02junq")
    assert len(block_digest(b"")) == 32


async def test_validity_refuses_bad_proposals_with_a_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    c = make_cluster(4)
    app = build_driver(c, 1).app
    assert app.check_proposal(_block(app))
    bad = [
        (b"\xc0junk", "undecodable"),
        (_block(app, chain_id=CHAIN_ID + 1), "chain"),
        (_block(app, proposer=b"\x55" * 20), "not a validator"),
        (_block(app, ts=GENESIS_TIME + 3_600_000), "ahead of the validators' median time"),
        (_block(app, ts=GENESIS_TIME), "not after its parent"),
    ]
    tx = make_transaction(c.user, chain_id=CHAIN_ID, nonce=0, to=b"\x01" * 20, amount=1, fee=1,
                          gas_limit=21_000)
    forged = type(tx)(*[*list(tx)[:-1], b"\x07" * 64])
    bad.append((_block(app, txs=(forged,)), "bad signature"))
    for value, why in bad:
        assert not app.check_proposal(value), why
        assert why in app.last_invalid_reason, (why, app.last_invalid_reason)
    # An old timestamp is accepted (a re-proposal after a view change is old) as long as it
    # is after its parent's.
    await trio.sleep(60)
    assert app.check_proposal(_block(app, ts=GENESIS_TIME + 1))


async def test_deliveries_that_do_not_extend_the_head_are_noops_everywhere(
    autojump_clock: trio.testing.MockClock,
) -> None:
    c = make_cluster(4)
    async with trio.open_nursery() as nursery:
        for i in range(4):
            await start_node(c, nursery, i)
        await wait_height(c, 3)
        nursery.cancel_scope.cancel()
    h = min(led.height for led in c.ledgers)
    apps = [build_driver(c, i).app for i in range(4)]
    stale = bytes(c.ledgers[0].block(h).encoded)  # already committed: does not extend
    for a in apps:
        head, sid = a.head, a.state_id()
        out = a.execute(10_000, 0, stale, ())
        assert out.block is None and "does not extend" in out.skipped
        assert a.head == head and a.state_id() == sid
        null = a.execute(10_001, 0, b"", ())
        assert null.block is None and null.skipped == "null request"


async def test_synced_blocks_verify_their_certificates(autojump_clock: trio.testing.MockClock) -> None:
    c = make_cluster(4)
    async with trio.open_nursery() as nursery:
        for i in range(4):
            await start_node(c, nursery, i)
        c.driver(0).app.admit(c.tx())
        await wait_height(c, 4)
        nursery.cancel_scope.cancel()
    source = c.ledgers[0]
    # a fresh validator ledger catches up from blocks + certificates
    c.ledgers[3] = Ledger.open(MemoryDB(), c.genesis)
    app = build_driver(c, 3).app
    b1, c1 = source.block(1), source.certificate(1)
    tampered = type(c1)(c1.height, c1.view, c1.seq + 1, c1.block_hash, c1.votes)
    try:
        app.apply_synced(b1, tampered)
        raise AssertionError("a certificate for another seq was accepted")
    except Exception as e:
        assert "certificate" in str(e)
    too_few = type(c1)(c1.height, c1.view, c1.seq, c1.block_hash, tuple(c1.votes)[:1])
    try:
        app.apply_synced(b1, too_few)
        raise AssertionError("a certificate without a quorum was accepted")
    except Exception as e:
        assert "certificate" in str(e)
    forged_vote = type(c1)(c1.height, c1.view, c1.seq, c1.block_hash,
                           tuple(Vote(v.validator_index, b"\x01" * 64) for v in c1.votes))
    assert not app.certificate_ok(forged_vote, lambda: b"")
    for h in range(1, 4):
        out = app.apply_synced(source.block(h), source.certificate(h))
        assert out.block is not None and out.seq == source.certificate(h).seq
    assert app.head.block_hash == source.block(3).hash
    assert app.head_seq == source.certificate(3).seq
