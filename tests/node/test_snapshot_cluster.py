"""Aligned checkpoints and snapshot install through real drivers (in-process PBFT cluster).

The driver reports a ledger checkpoint's digest at every PBFT checkpoint seq, so each stable
checkpoint's 2f+1 signatures vouch for a snapshot root; a validator that never saw the
first blocks installs a peer's snapshot through its engine task and then commits with the
others.
"""

from __future__ import annotations

from collections.abc import Callable

import trio
import trio.testing

from chain.ledger import NotFound
from consensus.pbft import CheckpointProof, decode_record
from node.engines import make_signing
from node.snapshot_sync import (
    Request,
    SnapshotFetcher,
    SnapshotServer,
    StableCheckpointKeeper,
    decode_snapshot_request,
    encode_snapshot_response,
    make_installer,
    pbft_proof_checker,
)
from tests.node.cluster import Cluster, make_cluster, start_node, wait_height

K = 4


def _keep(c: Cluster, i: int, retain: int) -> None:
    driver = c.driver(i)
    driver.on_stable_checkpoint = StableCheckpointKeeper(c.ledgers[i], driver.run_blocking, retain)


def _serve_from(c: Cluster, i: int) -> Request:
    server = SnapshotServer(c.ledgers[i], trio.current_time)

    async def request(peer: int, build: Callable[[int], bytes]) -> bytes | None:
        rid, height, index = decode_snapshot_request(build(7))
        return encode_snapshot_response(rid, c.ledgers[i].height, server.part(height, index))

    return request


async def test_stable_checkpoints_sign_ledger_checkpoints_and_old_blocks_are_pruned(
    autojump_clock: trio.testing.MockClock,
) -> None:
    c = make_cluster(4, checkpoint_interval=K)
    async with trio.open_nursery() as nursery:
        for i in range(4):
            await start_node(c, nursery, i)
            _keep(c, i, retain=2)
        await wait_height(c, 4 * K + 2)
        nursery.cancel_scope.cancel()
    _, _, verifier = make_signing(c.genesis, c.keys[0])
    check = pbft_proof_checker(c.driver(0).kit, verifier)
    for ledger in c.ledgers:
        stable = None
        for h in range(ledger.height, -1, -1):
            try:
                stable = (h, ledger.checkpoint_proof(h))
                break
            except NotFound:
                continue
        assert stable is not None, "no stable checkpoint proof was kept"
        height, raw = stable
        proof = check(raw)
        assert proof is not None and isinstance(decode_record(raw), CheckpointProof)
        assert proof.digest == ledger.checkpoint(height).digest  # signed = the snapshot's root
        assert 0 < ledger.floor <= height - 2


async def test_validator_installs_a_peers_snapshot_through_its_engine_and_commits_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    c = make_cluster(4, checkpoint_interval=K)
    async with trio.open_nursery() as nursery:
        for i in range(3):
            await start_node(c, nursery, i)
            _keep(c, i, retain=1)
        await wait_height(c, 3 * K + 1, nodes=[0, 1, 2])
        late = await start_node(c, nursery, 3)
        _keep(c, 3, retain=1)
        _, _, verifier = make_signing(c.genesis, c.keys[3])
        penalised: list[int] = []
        fetcher = SnapshotFetcher(c.ledgers[3], pbft_proof_checker(late.kit, verifier),
                                  make_installer(late), penalize=lambda p, why: penalised.append(p),
                                  run_blocking=late.run_blocking)  # fmt: skip
        assert await fetcher.fetch(_serve_from(c, 0), [0])
        assert fetcher.last_installed is not None and penalised == []
        installed_height, seq = fetcher.last_installed
        assert c.ledgers[3].floor == installed_height > 0
        assert late.app.head_seq == seq
        target = max(ledger.height for ledger in c.ledgers) + 3
        await wait_height(c, target)
        nursery.cancel_scope.cancel()
    assert len({ledger.block(target).hash for ledger in c.ledgers}) == 1
    # Block `target` carries the state root after `target - 1`: the same everywhere.
    assert len({ledger.block(target).header.state_root for ledger in c.ledgers}) == 1
