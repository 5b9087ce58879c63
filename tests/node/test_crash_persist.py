"""Double-sign protection with real processes: a validator killed right after a WAL append,
before sending what it persisted, restarts and never signs a conflicting vote.

The driver's test hook ``PHALANX_CRASH_AFTER_PERSIST=N`` makes the process ``os._exit(97)``
after its N-th WAL append. After the restart (without the hook) the network keeps
committing, the node's WAL holds no two different votes for one (kind, view, seq), and no
peer reports evidence against it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from consensus.pbft import Commit, Prepare, PrePrepare, decode_record
from node.wal import WriteAheadLog
from tests.e2e.net import make_network, running

pytestmark = pytest.mark.e2e


def _own_votes_conflict(wal_path: Path, me: int) -> list[tuple[str, int, int]]:
    seen: dict[tuple[str, int, int], bytes] = {}
    conflicts = []
    with WriteAheadLog(wal_path) as wal:
        for raw in wal.records():
            rec = decode_record(raw)
            if isinstance(rec, Prepare | Commit | PrePrepare) and rec.sender == me:
                key = (type(rec).__name__, rec.view, rec.seq)
                if seen.setdefault(key, rec.digest) != rec.digest:
                    conflicts.append(key)
    return conflicts


def test_validator_killed_between_persist_and_send_never_double_signs(tmp_path: Path) -> None:
    net = make_network(tmp_path, 4, users=1)
    victim = net.nodes[1]
    with running(net, only=(0, 2, 3)):
        victim.start(env={"PHALANX_CRASH_AFTER_PERSIST": "12"})
        assert victim.proc is not None
        assert victim.proc.wait(120) == 97, victim.log_tail()
        net.wait_height(2, only=(0, 2, 3), timeout=90)
        victim.start()
        top = max(net.nodes[i].height() for i in (0, 2, 3))
        net.wait_height(top + 3, timeout=120)
        for n in net.nodes:
            status = n.call("status")
            assert status["evidence"] == 0, (n.index, status)
        victim.stop()
    wal = victim.home / "data" / "consensus.wal"
    assert wal.exists()
    assert _own_votes_conflict(wal, 1) == []
