"""The chaos verdict's linearizability checker over client histories of transfers and reads."""

from __future__ import annotations

from typing import Any

from testnet.check import check_linearizable

INITIAL = {"a": 100, "b": 50}


def ev(process: str, kind: str, op: str, value: Any, t: float) -> dict[str, Any]:
    return {"process": process, "type": kind, "op": op, "value": value, "time": t}


def test_concurrent_reads_and_fees_are_linearizable() -> None:
    history = [
        ev("w0", "invoke", "transfer", ("a", "b", 10, 1), 0.0),
        ev("r0", "invoke", "read", "a", 0.5),
        ev("r0", "ok", "read", ("a", 100), 1.5),     # overlaps the transfer: old value is fine
        ev("w0", "ok", "transfer", ("a", "b", 10, 1), 2.0),
        ev("r0", "invoke", "read", "a", 3.0),
        ev("r0", "ok", "read", ("a", 89), 3.5),      # amount and fee debited
        ev("r1", "invoke", "read", "b", 3.0),
        ev("r1", "ok", "read", ("b", 60), 3.2),      # the fee is not credited to b
        ev("w1", "invoke", "transfer", ("b", "b", 5, 1), 4.0),
        ev("w1", "info", "transfer", ("b", "b", 5, 1), 5.0),   # unknown outcome
        ev("r1", "invoke", "read", "b", 6.0),
        ev("r1", "ok", "read", ("b", 59), 6.5),      # the self-transfer happened: fee only
    ]
    found, counts = check_linearizable(history, INITIAL)
    assert found == []
    assert counts == {"accounts": 2, "operations": 7, "linearizable": 2,
                      "not_linearizable": 0, "too_large": 0}  # fmt: skip


def test_negative_control_a_stale_read_is_flagged() -> None:
    history = [
        ev("w0", "invoke", "transfer", ("a", "b", 10, 1), 0.0),
        ev("w0", "ok", "transfer", ("a", "b", 10, 1), 1.0),
        ev("r0", "invoke", "read", "b", 2.0),
        ev("r0", "ok", "read", ("b", 50), 2.5),      # stale: the acknowledged credit is missing
    ]
    found, counts = check_linearizable(history, INITIAL)
    assert [v.check for v in found] == ["linearizability"]
    assert "account b" in found[0].detail
    assert counts["not_linearizable"] == 1 and counts["linearizable"] == 1


def test_a_failed_transfer_never_happened() -> None:
    history = [
        ev("w0", "invoke", "transfer", ("a", "b", 10, 1), 0.0),
        ev("w0", "fail", "transfer", ("a", "b", 10, 1), 1.0),
        ev("r0", "invoke", "read", "a", 2.0),
        ev("r0", "ok", "read", ("a", 89), 2.5),      # a debit that did not happen: flagged
    ]
    found, counts = check_linearizable(history, INITIAL)
    assert len(found) == 1 and counts["accounts"] == 1
