"""Byzantine behaviours: each one rewrites an honest engine's output as its name says.

The inner engine here is scripted (it emits chosen PBFT messages), so each test sees exactly
what the wrapper changed; the sweeps run the same wrappers over the real engines.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from consensus.byzantine import BEHAVIOURS, PRIMARY_KINDS, TWINS, ByzantineContext, ForgedBytes
from consensus.contract import ALL, InvalidMessage, NodeId, Output, Propose, Tick
from consensus.pbft import messages as pm
from consensus.pbft.config import PbftConfig
from consensus.signing import make_keyring

SIGNERS, VERIFIER = make_keyring(4, "hash")
ME = NodeId(0)


class Scripted:
    """An 'honest engine' that sends whatever the test queued for the next step."""

    def __init__(self) -> None:
        self.node_id = ME
        self.config = PbftConfig(n=4)
        self.queue: list[tuple[Any, Any]] = []
        self.restored: list[Any] = []

    def step(self, event: Any) -> Output:
        out = Output(persist=["rec"], send=list(self.queue))
        self.queue.clear()
        return out

    def restore(self, records: Sequence[Any]) -> None:
        self.restored = list(records)

    def statistics(self) -> Any:
        return {"ok": 1}


def _wrap(kind: str, seed: int = 1) -> tuple[Any, Scripted, list[bytes]]:
    inner = Scripted()
    forged: list[bytes] = []

    def forge() -> bytes:
        forged.append(b"tx-0-forged-%d" % len(forged))
        return forged[-1]

    ctx = ByzantineContext(ME, 4, 1, SIGNERS[0], random.Random(seed), forge)
    return BEHAVIOURS[kind](inner, ctx), inner, forged  # type: ignore[arg-type]


def _signed(msg: Any) -> Any:
    return pm.sign_message(msg, SIGNERS[0])


def _pp(seq: int = 1, value: bytes = b"tx-0-1") -> pm.PrePrepare:
    return _signed(pm.PrePrepare(0, seq, PbftConfig(n=4).digest_of(value), value, ME))


def _valid(msg: Any) -> bool:
    return pm.verify_message(msg, VERIFIER)


def test_registry_names_every_behaviour() -> None:
    assert set(BEHAVIOURS) == {"silent", "equivocate", "double-vote", "bad-signature", "replay",
                               "wrong-checkpoint", "view-change-spam", "slow-primary", "flood",
                               TWINS}
    assert set(BEHAVIOURS) >= PRIMARY_KINDS


def test_wrappers_delegate_restore_persist_and_statistics() -> None:
    w, inner, _ = _wrap("silent")
    w.restore(["a", "b"])
    assert inner.restored == ["a", "b"]
    assert w.step(Propose(b"tx")).persist == ["rec"]
    assert w.statistics()["inner"] == {"ok": 1} and w.node_id == ME


def test_silent_sends_nothing() -> None:
    w, inner, _ = _wrap("silent")
    inner.queue = [(ALL, _pp())]
    assert w.step(Tick(1)).send == []


def test_equivocate_tells_half_the_peers_another_validly_signed_value() -> None:
    w, inner, forged = _wrap("equivocate")
    inner.queue = [(ALL, _pp())]
    sends = w.step(Tick(1)).send
    assert sorted(int(d) for d, _ in sends) == [1, 2, 3]
    values = {int(d): m.value for d, m in sends}
    assert set(values.values()) == {b"tx-0-1", forged[0]}
    for _, m in sends:
        assert _valid(m) and m.digest == PbftConfig(n=4).digest_of(m.value)
    # a retransmission tells every peer the same story as before
    inner.queue = [(ALL, _pp())]
    again = {int(d): m.value for d, m in w.step(Tick(2)).send}
    assert again == values and len(forged) == 1


def test_double_vote_adds_conflicting_signed_votes() -> None:
    conflicting = 0
    for seed in range(5):
        w, inner, _ = _wrap("double-vote", seed)
        vote = _signed(pm.Prepare(0, 1, b"d" * 32, ME))
        inner.queue = [(ALL, vote)]
        sends = w.step(Tick(1)).send
        assert sends[0] == (ALL, vote)
        for _, m in sends[1:]:
            assert isinstance(m, pm.Prepare) and m.seq == 1 and m.digest != vote.digest
            assert _valid(m)
            conflicting += 1
    assert conflicting > 0


def test_bad_signature_messages_fail_verification() -> None:
    w, inner, _ = _wrap("bad-signature", 3)
    votes = [_signed(pm.Commit(0, s, b"d" * 32, ME)) for s in range(1, 40)]
    inner.queue = [(ALL, v) for v in votes]
    sends = w.step(Tick(1)).send
    bad = [m for _, m in sends if not _valid(m)]
    assert len(bad) > 10
    assert all(isinstance(m, pm.Commit) for m in bad)


def test_replay_resends_old_messages() -> None:
    w, inner, _ = _wrap("replay")
    old = _pp(1)
    inner.queue = [(ALL, old)]
    w.step(Propose(b"x"))
    replayed = [m for t in range(2, 12) for _, m in w.step(Tick(t)).send]
    assert replayed and all(m == old for m in replayed)


def test_wrong_checkpoint_signs_another_state_root() -> None:
    w, inner, _ = _wrap("wrong-checkpoint")
    cp = _signed(pm.Checkpoint(10, b"r" * 32, ME))
    inner.queue = [(ALL, cp)]
    [(_, m)] = w.step(Tick(1)).send
    assert isinstance(m, pm.Checkpoint) and m.seq == 10 and m.state_root != cp.state_root
    assert _valid(m)


def test_view_change_spam_asks_for_ever_higher_views() -> None:
    w, _, _ = _wrap("view-change-spam")
    sent = [m for t in range(1, 10) for _, m in w.step(Tick(t)).send]
    assert sent and all(isinstance(m, pm.ViewChange) and _valid(m) for m in sent)
    assert all(m.new_view >= 1 for m in sent)


def test_slow_primary_holds_proposals_until_just_under_the_timeout() -> None:
    w, inner, _ = _wrap("slow-primary")
    vote = _signed(pm.Prepare(0, 1, b"d" * 32, ME))
    inner.queue = [(ALL, _pp()), (ALL, vote)]
    assert w.step(Tick(1)).send == [(ALL, vote)]
    timeout = PbftConfig(n=4).view_timeout_ticks
    released = {t: w.step(Tick(t)).send for t in range(2, timeout + 2)}
    [(due, sends)] = [(t, s) for t, s in released.items() if s]
    assert due == 1 + timeout - 3 and sends[0][1] == _pp()


def test_flood_sends_junk_oversized_and_duplicates_that_decoders_reject() -> None:
    w, inner, _ = _wrap("flood")
    inner.queue = [(ALL, _pp())]
    sent = [m for t in range(1, 20) for _, m in w.step(Tick(t)).send]
    raw = [m for m in sent if isinstance(m, ForgedBytes)]
    assert any(len(m.data) > pm.MESSAGE_BYTES_MAX for m in raw)
    rejected = 0
    for m in raw:
        try:
            pm.decode_message(m.encode())
        except InvalidMessage:
            rejected += 1
    assert rejected >= len(raw) // 2
    assert sum(1 for m in sent if m == _pp()) > 1


@pytest.mark.parametrize("kind", sorted(set(BEHAVIOURS) - {TWINS}))
def test_forged_messages_are_signed_by_the_wrapper_itself_never_others(kind: str) -> None:
    w, inner, _ = _wrap(kind, 2)
    for t in range(1, 30):
        inner.queue = [(ALL, _pp(t)), (ALL, _signed(pm.Commit(0, t, b"d" * 32, ME))),
                       (ALL, _signed(pm.Checkpoint(t, b"r" * 32, ME)))]
        for _, m in w.step(Tick(t)).send:
            if hasattr(m, "sender"):
                assert m.sender == ME
