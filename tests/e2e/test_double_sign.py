"""Double-sign protection: a validator killed between persisting a vote and sending it
restarts from its WAL and never signs a conflicting vote.

Validator 1 runs with the driver's test hook ``PHALANX_CRASH_AFTER_PERSIST=N``: it exits
(code 97) right after its N-th WAL append, before sending what it just persisted. It is then
restarted without the hook and catches up. Checks: its own signed votes in the WAL (before
the crash and after the restart) never give two digests for one (kind, view, seq), and no
peer has recorded evidence against anyone.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.cmd_query import find_field
from consensus.pbft import decode_record
from consensus.pbft.messages import Commit, Prepare, PrePrepare
from node.client import RpcClient
from node.wal import WriteAheadLog
from tests.e2e.net import Network, address, cli, make_network, running, wait_until

pytestmark = pytest.mark.e2e

CRASH_AFTER = 6
WAL_FILE = Path("data") / "consensus.wal"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    network = make_network(tmp_path_factory.mktemp("dsign"), 4, chain_id=80)
    network.nodes[1].env = {"PHALANX_CRASH_AFTER_PERSIST": str(CRASH_AFTER)}
    with running(network, only=(0, 2, 3)):
        network.nodes[1].start()
        yield network


def _own_votes(wal_copy: Path, me: int) -> list[tuple[str, int, int, bytes]]:
    votes = []
    with WriteAheadLog(wal_copy, sync=False) as wal:
        for raw in wal.records():
            record = decode_record(raw)
            if isinstance(record, PrePrepare | Prepare | Commit) and record.sender == me:
                votes.append((type(record).__name__, record.view, record.seq, record.digest))
    return votes


def _copy_wal(net: Network, index: int, name: str) -> Path:
    src = net.nodes[index].home / WAL_FILE
    dst = net.root / name
    shutil.copyfile(src, dst)
    return dst


def _evidence_count(url: str) -> int:
    """Evidence the node has recorded (``status.evidence``, a count)."""
    with RpcClient(url) as c:
        status = c.status()
    assert "evidence" in status, f"status reports no evidence counter: {sorted(status)}"
    return int(status["evidence"])


def test_a_validator_killed_after_persisting_does_not_sign_a_conflicting_vote(net: Network) -> None:
    victim = net.nodes[1]
    assert victim.proc is not None
    wait_until("validator 1 to hit the crash hook", lambda: victim.proc.poll() is not None, 90)  # type: ignore[union-attr]
    assert victim.proc.returncode == 97, victim.log_tail()
    before = _own_votes(_copy_wal(net, 1, "wal-at-crash"), 1)
    assert before, "the crashed validator persisted no vote"

    victim.env = {}
    victim.start()
    for amount in (1, 2, 3):
        result = cli("tx", "send", "--key", str(net.user_key_files[0]), "--to",
                         address(net.users[1]), "--amount", str(amount), "--wait", "--json",
                         "--node", net.urls((0, 2, 3)))  # fmt: skip
        assert result.returncode == 0, result.stderr
    height = int(find_field(json.loads(result.stdout), "height"))
    net.wait_height(height, timeout=90)
    after = _own_votes(_copy_wal(net, 1, "wal-after"), 1)

    slots: dict[tuple[str, int, int], set[bytes]] = {}
    for kind, view, seq, digest in before + after:
        slots.setdefault((kind, view, seq), set()).add(digest)
    conflicting = {slot: d for slot, d in slots.items() if len(d) > 1}
    assert conflicting == {}
    for node in net.nodes:
        assert _evidence_count(node.url) == 0
