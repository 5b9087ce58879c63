"""Multi-Paxos for ``n = 2f+1`` crash-only replicas, behind the same engine contract as PBFT.

The leader is chosen by bully election over a heartbeat failure detector; see
:mod:`consensus.paxos.replica` for the theory of operation.
"""

from consensus.paxos.config import PaxosConfig, PaxosStatistics, Role, verify_certificate
from consensus.paxos.messages import Ballot, decode_message
from consensus.paxos.records import decode_record
from consensus.paxos.replica import PaxosReplica

__all__ = [
    "Ballot",
    "PaxosConfig",
    "PaxosReplica",
    "PaxosStatistics",
    "Role",
    "decode_message",
    "decode_record",
    "verify_certificate",
]
