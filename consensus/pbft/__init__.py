"""PBFT (Castro & Liskov): a sans-IO replica, its messages, configuration and proof checks.

Public names: :class:`PbftReplica`, :class:`PbftConfig`, the message classes,
:func:`decode_message`, :func:`sign_message`, :func:`verify_message` and
:func:`verify_certificate` (for checkers and catch-up).
"""

from consensus.pbft._core import PbftStatistics, Phase
from consensus.pbft._proofs import (
    check_checkpoint_proof,
    check_committed_proof,
    compute_o,
    verify_certificate,
)
from consensus.pbft.config import DEFAULT_INSTANCE_TAG, NULL_DIGEST, PbftConfig, sha256_digest
from consensus.pbft.messages import (
    DOMAIN_TAG,
    Checkpoint,
    CheckpointProof,
    Commit,
    CommittedProof,
    NewView,
    PbftMessage,
    Prepare,
    PreparedCert,
    PrePrepare,
    Request,
    Status,
    ViewChange,
    decode_message,
    decode_record,
    sign_message,
    verify_message,
)
from consensus.pbft.replica import PbftReplica

__all__ = [
    "DEFAULT_INSTANCE_TAG",
    "DOMAIN_TAG",
    "NULL_DIGEST",
    "Checkpoint",
    "CheckpointProof",
    "Commit",
    "CommittedProof",
    "NewView",
    "PbftConfig",
    "PbftMessage",
    "PbftReplica",
    "PbftStatistics",
    "Phase",
    "PrePrepare",
    "Prepare",
    "PreparedCert",
    "Request",
    "Status",
    "ViewChange",
    "check_checkpoint_proof",
    "check_committed_proof",
    "compute_o",
    "decode_message",
    "decode_record",
    "sha256_digest",
    "sign_message",
    "verify_certificate",
    "verify_message",
]
