"""Checks of PBFT proofs: commit certificates, checkpoint proofs, prepared certificates,
view changes and new views; and the computation of a new view's O set.

Every function here is pure (config + verifier in, verdict out) so that the replica, the
node's catch-up code and the simulator's checkers all judge proofs the same way.

Theory of the new view (Castro & Liskov, section 4.4): from a quorum of view changes take
``min_s`` = the highest stable checkpoint among them and ``max_s`` = the highest sequence
number with a prepared certificate. For every ``seq`` in ``(min_s, max_s]`` the new primary
re-issues the value of the certificate with the highest view (a value that may have committed
is prepared at an honest replica inside every quorum, so it is always among them), and a null
request where no certificate exists. Replicas recompute O from the same view changes and
accept the new view only if it matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from consensus.contract import Certificate, NodeId, Verifier
from consensus.pbft.config import NULL_DIGEST, PbftConfig
from consensus.pbft.messages import (
    Checkpoint,
    Commit,
    CommittedProof,
    NewView,
    PreparedCert,
    ViewChange,
    verify_message,
)

__all__ = [
    "OEntry",
    "certificate_from_commits",
    "check_checkpoint_proof",
    "check_committed_proof",
    "check_new_view",
    "check_prepared_cert",
    "check_view_change",
    "compute_o",
    "verify_certificate",
]


def _member(cfg: PbftConfig, node: int) -> bool:
    return 0 <= node < cfg.n


def certificate_from_commits(cfg: PbftConfig, commits: Sequence[Commit]) -> Certificate:
    """Build the certificate of the first ``quorum`` commits (by node id) of one (view, seq, digest)."""
    first = commits[0]
    chosen = sorted(commits, key=lambda c: c.sender)[: cfg.quorum]
    return Certificate(
        seq=first.seq,
        view=first.view,
        digest=first.digest,
        signatures=tuple((int(c.sender), c.signature) for c in chosen),
    )


def verify_certificate(cfg: PbftConfig, verifier: Verifier, cert: Certificate, value_digest: bytes) -> bool:
    """True iff ``cert`` holds a quorum of valid commit signatures for ``value_digest``.

    Args:
        cfg: the instance's configuration (n, f, instance tag).
        verifier: checks replica signatures.
        cert: the certificate delivered with a value.
        value_digest: digest of the value the certificate should cover.
    """
    if cert.digest != value_digest:
        return False
    nodes = [node for node, _ in cert.signatures]
    if len(set(nodes)) != len(nodes) or len(nodes) < cfg.quorum:
        return False
    if nodes != sorted(nodes) or not all(_member(cfg, n) for n in nodes):
        return False
    for node, sig in cert.signatures:
        try:
            commit = Commit(cert.view, cert.seq, cert.digest, NodeId(node), sig)
        except ValueError:
            return False
        if not verify_message(commit, verifier, cfg.instance_tag):
            return False
    return True


def check_checkpoint_proof(
    cfg: PbftConfig, verifier: Verifier, seq: int, checkpoints: Sequence[Checkpoint]
) -> bytes | None:
    """The stable state root at ``seq`` if ``checkpoints`` prove it, else None."""
    if len(checkpoints) < cfg.quorum:
        return None
    senders = {c.sender for c in checkpoints}
    roots = {c.state_root for c in checkpoints}
    if len(senders) != len(checkpoints) or len(roots) != 1:
        return None
    for c in checkpoints:
        if c.seq != seq or not _member(cfg, c.sender) or not verify_message(c, verifier, cfg.instance_tag):
            return None
    return roots.pop()


def check_prepared_cert(cfg: PbftConfig, verifier: Verifier, cert: PreparedCert) -> bool:
    """True iff ``cert`` is a pre-prepare of its view's primary plus quorum-1 matching prepares."""
    pp = cert.pre_prepare
    primary = cfg.primary_of(pp.view)
    if pp.sender != primary or cfg.digest_of(pp.value) != pp.digest:
        return False
    if len(cert.prepares) < cfg.quorum - 1:
        return False
    senders = {p.sender for p in cert.prepares}
    if len(senders) != len(cert.prepares) or primary in senders:
        return False
    for p in cert.prepares:
        if (p.view, p.seq, p.digest) != (pp.view, pp.seq, pp.digest) or not _member(cfg, p.sender):
            return False
    if not verify_message(pp, verifier, cfg.instance_tag):
        return False
    return all(verify_message(p, verifier, cfg.instance_tag) for p in cert.prepares)


def check_view_change(cfg: PbftConfig, verifier: Verifier, vc: ViewChange) -> bool:
    """True iff ``vc``'s content is valid (its own signature is checked by the caller)."""
    if vc.stable_seq % cfg.checkpoint_interval:
        return False
    if vc.stable_seq == 0:
        if vc.checkpoint_proof:
            return False
    elif check_checkpoint_proof(cfg, verifier, vc.stable_seq, vc.checkpoint_proof) is None:
        return False
    seqs = [c.seq for c in vc.prepared]
    if len(set(seqs)) != len(seqs):
        return False
    for cert in vc.prepared:
        if cert.view >= vc.new_view:
            return False
        if not vc.stable_seq < cert.seq <= vc.stable_seq + cfg.window:
            return False
        if not check_prepared_cert(cfg, verifier, cert):
            return False
    return True


@dataclass(frozen=True, slots=True)
class OEntry:
    """One pre-prepare of a new view's O set, before the primary signs it."""

    seq: int
    digest: bytes
    value: bytes


def compute_o(view_changes: Iterable[ViewChange]) -> tuple[ViewChange | None, list[OEntry]]:
    """Compute a new view's O set from (already validated) view changes.

    Returns:
        ``(vc_with_max_stable, entries)``: the view change carrying the highest stable
        checkpoint (None if every stable_seq is 0) and the entries for ``(min_s, max_s]``.
    """
    vcs = list(view_changes)
    best_stable = max(vcs, key=lambda v: (v.stable_seq, v.sender), default=None)
    min_s = best_stable.stable_seq if best_stable is not None else 0
    chosen: dict[int, PreparedCert] = {}
    for vc in vcs:
        for cert in vc.prepared:
            if cert.seq <= min_s:
                continue
            have = chosen.get(cert.seq)
            # Highest view wins; ties (only possible when n < 3f+1) break on the digest.
            if have is None or (cert.view, cert.digest) > (have.view, have.digest):
                chosen[cert.seq] = cert
    max_s = max(chosen, default=min_s)
    entries = []
    for seq in range(min_s + 1, max_s + 1):
        got = chosen.get(seq)
        if got is None:
            entries.append(OEntry(seq, NULL_DIGEST, b""))
        else:
            entries.append(OEntry(seq, got.digest, got.pre_prepare.value))
    return (best_stable if min_s > 0 else None), entries


def check_new_view(cfg: PbftConfig, verifier: Verifier, nv: NewView) -> str | None:
    """Why ``nv`` is invalid, or None when it is valid (its own signature is checked by the caller).

    Checks: a quorum of view changes for ``nv.view`` from distinct members, each valid and
    signed, and ``nv.pre_prepares`` equal to the recomputed O, each signed by the primary.
    """
    if nv.sender != cfg.primary_of(nv.view):
        return "not-primary"
    senders = {vc.sender for vc in nv.view_changes}
    if len(senders) != len(nv.view_changes) or len(senders) < cfg.quorum:
        return "view-change-quorum"
    for vc in nv.view_changes:
        if vc.new_view != nv.view or not _member(cfg, vc.sender):
            return "view-change-view"
        if not verify_message(vc, verifier, cfg.instance_tag) or not check_view_change(cfg, verifier, vc):
            return "invalid-view-change"
    _, entries = compute_o(nv.view_changes)
    if len(entries) != len(nv.pre_prepares):
        return "o-mismatch"
    for entry, pp in zip(entries, nv.pre_prepares, strict=True):
        if (pp.view, pp.seq, pp.digest, pp.value, pp.sender) != (
            nv.view,
            entry.seq,
            entry.digest,
            entry.value,
            nv.sender,
        ):
            return "o-mismatch"
        if not verify_message(pp, verifier, cfg.instance_tag):
            return "o-signature"
    return None


def check_committed_proof(cfg: PbftConfig, verifier: Verifier, proof: CommittedProof) -> Certificate | None:
    """The certificate if ``proof`` holds a quorum of valid matching commits for its value."""
    if len(proof.value) > cfg.value_bytes_max or len(proof.commits) < cfg.quorum:
        return None
    digest = cfg.digest_of(proof.value)
    first = proof.commits[0]
    senders = {c.sender for c in proof.commits}
    if len(senders) != len(proof.commits):
        return None
    for c in proof.commits:
        if (c.view, c.seq, c.digest) != (first.view, proof.seq, digest) or not _member(cfg, c.sender):
            return None
    if not all(verify_message(c, verifier, cfg.instance_tag) for c in proof.commits):
        return None
    return certificate_from_commits(cfg, proof.commits)
