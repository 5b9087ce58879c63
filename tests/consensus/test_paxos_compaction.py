"""WAL compaction of Paxos records: the compacted log restores the same acceptor.

A restarted replica must never promise or accept below what it promised before the crash,
and must still hold every value it accepted above the stable checkpoint; compaction may
drop only what the checkpoint made obsolete.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.contract import NodeId
from consensus.paxos.messages import Ballot
from consensus.paxos.records import (
    AcceptedRecord,
    CheckpointRecord,
    IncarnationRecord,
    PromisedRecord,
    Record,
    compact_records,
    decode_record,
)
from tests.consensus.paxos_cluster import Cluster


def _restored_state(cluster: Cluster, node: NodeId, records: list[Record]) -> tuple[Any, ...]:
    replica = cluster._build(node)
    replica.restore(records)
    return (replica.promised, dict(replica._accepted), replica._incarnation, replica.low,
            replica._low_root)


def test_compacted_log_of_a_running_cluster_restores_the_same_acceptor() -> None:
    c = Cluster(3, seed=4)
    c.tick(5)
    for k in range(60):
        c.propose(c.ids[k % 3], b"v%d" % k)
        c.tick(1)
    c.crash(NodeId(2))
    c.restart(NodeId(2))
    c.tick(10)
    for node in c.ids:
        records = [decode_record(b) for b in c.records[node]]
        compacted = compact_records(records)
        assert any(isinstance(r, CheckpointRecord) for r in records)
        assert len(compacted) < len(records) / 2, (len(records), len(compacted))
        assert _restored_state(c, node, compacted) == _restored_state(c, node, records)
        # every compacted record survives the WAL's strict codec
        assert [decode_record(r.encode()) for r in compacted] == compacted


_ballots = st.builds(Ballot, st.integers(0, 6), st.integers(0, 2))
_records = st.lists(
    st.one_of(
        st.builds(PromisedRecord, _ballots),
        st.builds(AcceptedRecord, _ballots,
                  st.lists(st.tuples(st.integers(1, 30), st.sampled_from([b"a", b"b", b"c"])),
                           max_size=4).map(tuple)),
        st.builds(CheckpointRecord, st.integers(1, 25), st.sampled_from([b"r1", b"r2"])),
        st.builds(IncarnationRecord, st.integers(0, 5)),
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(_records)
def test_compaction_never_changes_what_restore_rebuilds(records: list[Record]) -> None:
    c = Cluster(3, seed=random.Random(len(records)).randrange(10))
    before = _restored_state(c, NodeId(0), records)
    after = _restored_state(c, NodeId(0), compact_records(records))
    assert before == after
    assert compact_records(compact_records(records)) == compact_records(records)


def test_without_a_checkpoint_nothing_is_dropped() -> None:
    log: list[Record] = [PromisedRecord(Ballot(1, 0)), AcceptedRecord(Ballot(1, 0), ((1, b"x"),))]
    assert compact_records(log) == log
