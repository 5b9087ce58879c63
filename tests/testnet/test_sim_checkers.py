"""The safety checker on hand-made deliveries: each property can fail, with both values."""

from __future__ import annotations

from consensus.contract import Certificate, Delivery, Evidence, NodeId
from testnet.sim.checkers import SafetyChecker


def _d(seq: int, value: bytes) -> Delivery:
    return Delivery(seq, value, Certificate(seq, 0, b"d" * 32, ((0, b"s"),)))


def _checker(verify: bool = True, honest: tuple[int, ...] = (0, 1, 2)) -> SafetyChecker:
    return SafetyChecker(honest=set(honest), node_of={0: 0, 1: 1, 2: 2, 3: 3},
                         verify=lambda d: verify,
                         is_valid_value=lambda v: v == b"" or v.startswith(b"tx-"),
                         honest_nodes=set(honest))


def test_agreement_violation_records_both_replicas_and_values() -> None:
    c = _checker()
    assert c.on_delivery(1, 0, _d(1, b"tx-a"), [])
    c.on_app_value(1, 0, 1, b"tx-a")
    assert c.violation is None
    c.on_delivery(2, 1, _d(1, b"tx-b"), [])
    v = c.violation
    assert v is not None and v.prop == "agreement" and v.seq == 1
    assert (v.first_endpoint, v.first_value, v.second_endpoint, v.second_value) == (
        0, b"tx-a", 1, b"tx-b")
    assert "tx-a" in v.describe() and "tx-b" in v.describe()


def test_byzantine_replicas_may_deliver_anything() -> None:
    c = _checker(honest=(0, 1, 2))
    c.on_delivery(1, 0, _d(1, b"tx-a"), [])
    c.on_delivery(1, 3, _d(1, b"evil"), [])
    c.on_delivery(1, 3, _d(7, b"tx-z"), [])
    assert c.violation is None


def test_a_gap_in_one_replicas_sequence_is_an_order_violation() -> None:
    c = _checker()
    log: list[bytes] = []
    for seq in (1, 2):
        assert c.on_delivery(1, 0, _d(seq, b"tx-%d" % seq), log)
        log.append(b"tx-%d" % seq)
    c.on_delivery(1, 0, _d(4, b"tx-4"), log)
    assert c.violation is not None and c.violation.prop == "order" and c.violation.seq == 4


def test_a_repeat_within_one_incarnation_is_an_order_violation() -> None:
    c = _checker()
    c.on_delivery(1, 0, _d(1, b"tx-1"), [])
    c.on_delivery(1, 0, _d(1, b"tx-1"), [b"tx-1"])
    assert c.violation is not None and c.violation.prop == "order"


def test_after_restart_redelivery_of_held_values_is_fine_but_must_match() -> None:
    c = _checker()
    log = [b"tx-1", b"tx-2"]
    c.on_restart(0)
    assert not c.on_delivery(1, 0, _d(1, b"tx-1"), log)   # already held: not appended
    assert not c.on_delivery(1, 0, _d(2, b"tx-2"), log)
    assert c.on_delivery(1, 0, _d(3, b"tx-3"), log)
    assert c.violation is None
    c.on_restart(0)
    c.on_delivery(1, 0, _d(2, b"tx-other"), log)
    assert c.violation is not None and c.violation.prop == "agreement"
    assert (c.violation.first_value, c.violation.second_value) == (b"tx-2", b"tx-other")


def test_after_a_state_install_delivery_resumes_above_the_checkpoint() -> None:
    c = _checker()
    c.on_install(0, 10)
    assert c.on_delivery(1, 0, _d(11, b"tx-11"), [b"tx-x"] * 10)
    assert c.violation is None


def test_a_value_nobody_proposed_breaks_validity() -> None:
    c = _checker()
    c.on_delivery(1, 0, _d(1, b"junk"), [])
    assert c.violation is not None and c.violation.prop == "validity"


def test_null_values_are_valid() -> None:
    c = _checker()
    c.on_delivery(1, 0, _d(1, b""), [])
    assert c.violation is None


def test_a_rejected_certificate_is_a_violation() -> None:
    c = _checker(verify=False)
    c.on_delivery(1, 0, _d(1, b"tx-1"), [])
    assert c.violation is not None and c.violation.prop == "certificate"


def test_evidence_against_an_honest_node_is_a_violation_but_not_against_a_faulty_one() -> None:
    c = _checker(honest=(0, 1, 2))
    c.on_evidence(1, 0, Evidence(NodeId(3), "equivocation", "a", "b"))
    assert c.violation is None
    c.on_evidence(1, 0, Evidence(NodeId(2), "equivocation", "a", "b"))
    assert c.violation is not None and c.violation.prop == "evidence"
