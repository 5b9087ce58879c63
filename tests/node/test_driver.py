"""The consensus driver: real engines and apps in one Trio process over a fake transport."""

from __future__ import annotations

import trio
import trio.testing

from consensus.paxos.records import AcceptedRecord, CheckpointRecord
from consensus.paxos.records import decode_record as decode_paxos_record
from tests.node.cluster import make_cluster, start_node, stop_node, wait_height


async def test_four_pbft_nodes_commit_blocks_of_transactions(autojump_clock: trio.testing.MockClock) -> None:
    c = make_cluster(4)
    async with trio.open_nursery() as nursery:
        drivers = [await start_node(c, nursery, i) for i in range(4)]
        txs = [c.tx() for _ in range(30)]
        for t in txs:
            drivers[1].app.admit(t)          # at a backup: reaches the primary by gossip
            drivers[0].app.admit(t.encoded)  # (here simply admitted at the primary too)
        await wait_height(c, 3)
        with trio.fail_after(60):
            while any(len(d.app.mempool) for d in drivers[:1]):
                await trio.sleep(0.05)
        await wait_height(c, c.ledgers[0].height)
        nursery.cancel_scope.cancel()
    heights = {led.height for led in c.ledgers}
    top = min(heights)
    assert top >= 3
    for h in range(1, top + 1):
        assert len({led.block(h).hash for led in c.ledgers}) == 1, f"fork at {h}"
    for t in txs:
        loc = c.ledgers[2].transaction(t.hash)
        assert loc.receipt.status == 1
    # certificates carry the consensus seq and verify with the engine's check
    cert = c.ledgers[3].certificate(2)
    assert cert.seq >= 2
    kit = c.driver(0).kit if c.drivers[0] else None
    assert kit is not None
    assert kit.verify_commit(cert, lambda: b"")
    forged = type(cert)(cert.height, cert.view, cert.seq + 1, cert.block_hash, cert.votes)
    assert not kit.verify_commit(forged, lambda: b"")


async def test_persist_happens_before_send(autojump_clock: trio.testing.MockClock) -> None:
    c = make_cluster(4)
    async with trio.open_nursery() as nursery:
        for i in range(4):
            await start_node(c, nursery, i)
        await wait_height(c, 2)
        nursery.cancel_scope.cancel()
    # Every vote a node sends was persisted by that node earlier in the log: check that a
    # node's first send of each prepare/commit payload comes after at least one persist.
    from consensus.pbft import Commit, Prepare, decode_message

    persisted_votes = 0
    for i in range(4):
        wal = {bytes(r) for r in c.wals[i].items}
        seen_persist = False
        for entry in c.log:
            if entry[1] != i:
                continue
            if entry[0] == "persist":
                seen_persist = True
            elif entry[0] == "send":
                msg = decode_message(entry[2])
                if isinstance(msg, Prepare | Commit):
                    assert seen_persist
                    # the very same signed vote is in this node's WAL
                    assert entry[2] in wal or msg.seq <= 0
                    persisted_votes += 1
    assert persisted_votes > 0


async def test_restarted_node_never_signs_a_conflicting_vote(autojump_clock: trio.testing.MockClock) -> None:
    c = make_cluster(4)
    async with trio.open_nursery() as nursery:
        for i in range(4):
            await start_node(c, nursery, i)
        await wait_height(c, 3)
        stop_node(c, 2)
        before = list(c.wals[2].items)
        await trio.sleep(1)
        await start_node(c, nursery, 2)
        await wait_height(c, c.ledgers[0].height + 2)
        nursery.cancel_scope.cancel()
    from consensus.pbft import Commit, Prepare, PrePrepare, decode_record

    votes: dict[tuple[str, int, int], bytes] = {}
    for raw in c.wals[2].items:
        rec = decode_record(raw)
        if isinstance(rec, Prepare | Commit | PrePrepare) and rec.sender == 2:
            key = (type(rec).__name__, rec.view, rec.seq)
            assert votes.setdefault(key, rec.digest) == rec.digest, f"conflicting {key}"
    assert before and set(before) <= set(c.wals[2].items) | set(before)
    # the restarted node caught up and agrees with the others
    h = min(led.height for led in c.ledgers)
    assert c.ledgers[2].block(h).hash == c.ledgers[0].block(h).hash


async def test_three_paxos_nodes_commit(autojump_clock: trio.testing.MockClock) -> None:
    c = make_cluster(3, engine="paxos")
    async with trio.open_nursery() as nursery:
        drivers = [await start_node(c, nursery, i) for i in range(3)]
        txs = [c.tx() for _ in range(5)]
        for d in drivers:
            for t in txs:
                d.app.admit(t.encoded)
        await wait_height(c, 3)
        nursery.cancel_scope.cancel()
    h = min(led.height for led in c.ledgers)
    for k in range(1, h + 1):
        assert len({led.block(k).hash for led in c.ledgers}) == 1


async def test_paxos_wal_is_compacted_at_checkpoints_and_a_restart_resumes(
        autojump_clock: trio.testing.MockClock) -> None:
    c = make_cluster(3, engine="paxos", checkpoint_interval=4)
    async with trio.open_nursery() as nursery:
        drivers = [await start_node(c, nursery, i) for i in range(3)]
        for k in range(12):
            t = c.tx()
            for d in drivers:
                d.app.admit(t.encoded)
            await wait_height(c, k + 1)
        records = [decode_paxos_record(r) for r in c.wals[1].items]
        checkpoints = [r for r in records if isinstance(r, CheckpointRecord)]
        # compacted: one checkpoint (the newest) and only what lies above it
        assert len(checkpoints) == 1 and checkpoints[0].seq >= 8
        assert len(records) < 12
        assert all(slot > checkpoints[0].seq for r in records if isinstance(r, AcceptedRecord)
                   for slot, _ in r.entries)
        stop_node(c, 1)
        restarted = await start_node(c, nursery, 1)
        t = c.tx()
        for d in (drivers[0], restarted, drivers[2]):
            d.app.admit(t.encoded)
        await wait_height(c, 13)
        nursery.cancel_scope.cancel()
    for k in range(1, 14):
        assert len({led.block(k).hash for led in c.ledgers}) == 1
