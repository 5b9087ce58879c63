"""Transactions accepted by a validator cut off from the others commit after the heal.

Four PBFT validators behind the fault proxy; ``phalanx testnet partition 3/0,1,2`` isolates
validator 3, which keeps accepting transfers on its API (``broadcast_tx_sync``: code 0).
It accepts more of them than the one batch its gossip core keeps for the first peer back
(``GossipConfig.batch_count_max``, 256), so the oldest never leave in the normal gossip.
After ``heal`` every one of them commits on the other validators within a bound: the
re-gossip of long-pending transactions (``node.tx_rebroadcast``, ``mempool.rebroadcast_ms``
at its default) sends them again. With ``rebroadcast_ms = 0`` in the testnet's configs the
oldest stay in validator 3's mempool (validator 3 is not the primary) and this test fails.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from chain.keys import PrivateKey
from chain.tx import Transaction, make_transaction
from cli.main import main
from node.client import RpcClient, RpcClientError
from node.config import load_config, write_config
from p2p import GossipConfig
from testnet.local import Testnet
from tests.e2e.net import wait_until

pytestmark = pytest.mark.e2e

SENDERS = GossipConfig().batch_count_max + 44    # the oldest 44 miss the kept batch
ISOLATED = 3
#: After the heal: reconnection, up to one re-gossip period (5 s default), one block.
COMMIT_BOUND_S = 25.0


def _senders() -> list[PrivateKey]:
    return [PrivateKey.from_seed(i.to_bytes(4, "big") * 8) for i in range(1, SENDERS + 1)]


def _committed(client: RpcClient, tx: Transaction) -> bool:
    try:
        client.tx("0x" + tx.hash.hex())
    except RpcClientError:
        return False
    return True


def run_partitioned_submission(directory: Path, *, rebroadcast_ms: int | None = None) -> None:
    """Isolate validator 3, submit one transfer per sender to it, heal; all must commit.

    ``rebroadcast_ms`` overrides the key in every validator's config (the negative control
    runs this with 0).
    """
    senders = _senders()
    net = Testnet.create(directory, proxy=True,
                         extra_balances={k.address: 10**12 for k in senders})
    if rebroadcast_ms is not None:
        for node in net.layout.nodes:
            config = load_config(node.home)
            write_config(replace(config, mempool=replace(config.mempool,
                                                         rebroadcast_ms=rebroadcast_ms)))
    net.start()
    d = str(directory)
    assert main(["testnet", "partition", f"{ISOLATED}/0,1,2", "--dir", d]) == 0
    isolated_url = net.layout.rpc_urls[ISOLATED]
    wait_until("validator 3 to lose its peers",
               lambda: (net.node_status(ISOLATED, timeout=3) or {}).get("peers") == [], 10)
    txs = [make_transaction(k, chain_id=net.layout.chain_id, nonce=0, to=b"\x42" * 20,
                            amount=1, fee=1, gas_limit=21_000) for k in senders]
    with RpcClient(isolated_url, timeout=10) as c:
        for tx in txs:
            assert c.broadcast_tx_sync(tx.encoded)["code"] == 0
        assert int(c.status()["mempool_size"]) == SENDERS
    assert main(["testnet", "heal", "--dir", d]) == 0

    with RpcClient(net.layout.rpc_urls[0], timeout=3) as other:
        wait_until("the oldest and newest transfers to commit on validator 0",
                   lambda: _committed(other, txs[0]) and _committed(other, txs[-1]),
                   COMMIT_BOUND_S)
        missing = [i for i, tx in enumerate(txs) if not _committed(other, tx)]
    assert missing == [], f"{len(missing)} transfers not committed on validator 0"
    status = net.node_status(ISOLATED)
    assert status is not None
    stats = status["tx_rebroadcast"]
    assert stats["rebroadcast"] >= SENDERS - GossipConfig().batch_count_max, stats


def test_transfers_accepted_by_an_isolated_validator_commit_after_the_heal(
        testnet_dir: Path) -> None:
    t0 = time.monotonic()
    run_partitioned_submission(testnet_dir)
    print(f"partition, {SENDERS} transfers, heal, all committed: {time.monotonic() - t0:.1f} s")
