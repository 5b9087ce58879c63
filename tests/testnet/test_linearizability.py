"""The Wing-Gong linearizability checker: accepts, rejects, bounds, and a Hypothesis property."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testnet.linearizability import (
    REGISTER_MODEL,
    HistoryError,
    LinearizabilityResult,
    check_bank,
    check_history,
    pair_operations,
)


def ev(process: Any, type_: str, op: str, value: Any, time: float) -> dict[str, Any]:
    return {"process": process, "type": type_, "op": op, "value": value, "time": time}


def test_sequential_register_history_is_linearizable() -> None:
    h = [ev(0, "invoke", "write", 1, 0), ev(0, "ok", "write", 1, 1),
         ev(1, "invoke", "read", None, 2), ev(1, "ok", "read", 1, 3)]
    r = check_history(h, REGISTER_MODEL)
    assert r.ok and r.keys[None].order == (0, 2)


def test_concurrent_read_may_see_either_value() -> None:
    for seen in (None, 1):
        h = [ev(0, "invoke", "write", 1, 0), ev(1, "invoke", "read", None, 1),
             ev(1, "ok", "read", seen, 2), ev(0, "ok", "write", 1, 3)]
        assert check_history(h, REGISTER_MODEL).ok


def test_negative_control_stale_read_after_completed_write_is_rejected() -> None:
    h = [ev(0, "invoke", "write", 1, 0), ev(0, "ok", "write", 1, 1),
         ev(1, "invoke", "read", None, 2), ev(1, "ok", "read", None, 3)]
    r = check_history(h, REGISTER_MODEL)
    assert r.status == "not-linearizable"
    assert "read" in r.violations()[0].detail


def test_concurrent_reads_disagreeing_in_order_are_rejected() -> None:
    # Two sequential reads during one write: the second cannot go back to the old value.
    h = [ev(0, "invoke", "write", 1, 0),
         ev(1, "invoke", "read", None, 1), ev(1, "ok", "read", 1, 2),
         ev(2, "invoke", "read", None, 3), ev(2, "ok", "read", None, 4),
         ev(0, "ok", "write", 1, 5)]
    assert not check_history(h, REGISTER_MODEL).ok


def test_failed_op_is_dropped_and_info_op_may_or_may_not_apply() -> None:
    failed = [ev(0, "invoke", "write", 1, 0), ev(0, "fail", "write", 1, 1),
              ev(1, "invoke", "read", None, 2), ev(1, "ok", "read", 1, 3)]
    assert not check_history(failed, REGISTER_MODEL).ok
    for seen in (None, 1):
        info = [ev(0, "invoke", "write", 1, 0), ev(0, "info", "write", 1, 1),
                ev(1, "invoke", "read", None, 2), ev(1, "ok", "read", seen, 3)]
        assert check_history(info, REGISTER_MODEL).ok
    never = [ev(0, "invoke", "write", 1, 0),     # never completed: like info
             ev(1, "invoke", "read", None, 2), ev(1, "ok", "read", 1, 3)]
    assert check_history(never, REGISTER_MODEL).ok


def test_bank_lost_update_is_rejected_and_correct_bank_accepted() -> None:
    good = [ev(0, "invoke", "transfer", ("a", "b", 3), 0), ev(0, "ok", "transfer", None, 1),
            ev(1, "invoke", "transfer", ("a", "b", 3), 0.5), ev(1, "ok", "transfer", None, 2),
            ev(2, "invoke", "read", "a", 3), ev(2, "ok", "read", ("a", 4), 4),
            ev(3, "invoke", "read", "b", 3), ev(3, "ok", "read", ("b", 6), 4)]
    assert check_bank(good, {"a": 10}).ok
    lost = list(good)
    lost[5] = ev(2, "ok", "read", ("a", 7), 4)   # one debit lost
    r = check_bank(lost, {"a": 10})
    assert r.status == "not-linearizable"
    assert [k.key for k in r.violations()] == ["a"]


def test_bank_overdraft_is_rejected() -> None:
    h = [ev(0, "invoke", "transfer", ("a", "b", 30), 0), ev(0, "ok", "transfer", None, 1)]
    assert not check_bank(h, {"a": 10}).ok


def test_too_large_is_a_clear_result() -> None:
    h = []
    for p in range(30):
        h.append(ev(p, "invoke", "write", p, 0))
    for p in range(30):
        h.append(ev(p, "ok", "write", p, 1))
    h += [ev(99, "invoke", "read", None, 2), ev(99, "ok", "read", -1, 3)]
    r = check_history(h, REGISTER_MODEL, states_max=1_000)
    assert r.status == "too-large" and "states_max" in r.keys[None].detail
    r = check_history(h, REGISTER_MODEL, ops_max=10)
    assert r.status == "too-large" and "ops_max" in r.keys[None].detail


def test_malformed_histories_raise() -> None:
    with pytest.raises(HistoryError):
        check_history([ev(0, "ok", "write", 1, 0)], REGISTER_MODEL)
    with pytest.raises(HistoryError):
        check_history([ev(0, "invoke", "write", 1, 0), ev(0, "invoke", "write", 2, 1)],
                      REGISTER_MODEL)
    with pytest.raises(HistoryError):
        check_history([ev(0, "begin", "write", 1, 0)], REGISTER_MODEL)


@st.composite
def bank_histories(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """A real sequential bank execution, each op stretched into a random concurrency window."""
    accounts = ["a", "b", "c"]
    balances = {a: draw(st.integers(0, 20)) for a in accounts}
    initial = dict(balances)
    n = draw(st.integers(1, 14))
    events: list[tuple[float, int, dict[str, Any]]] = []
    for i in range(n):
        point = 10.0 * i                    # the linearization point, in real time
        call = point - draw(st.integers(0, 25))
        ret = point + draw(st.integers(0, 25))
        crash = draw(st.integers(0, 9)) == 0
        if draw(st.booleans()):
            src, dst = draw(st.sampled_from([(x, y) for x in accounts for y in accounts
                                             if x != y]))
            amount = draw(st.integers(0, 10))
            if balances[src] < amount:
                events += [(call, 0, ev(i, "invoke", "transfer", (src, dst, amount), call)),
                           (ret, 1, ev(i, "fail", "transfer", None, ret))]
                continue
            balances[src] -= amount
            balances[dst] += amount
            events.append((call, 0, ev(i, "invoke", "transfer", (src, dst, amount), call)))
            events.append((ret, 1, ev(i, "info" if crash else "ok", "transfer", None, ret)))
        else:
            acct = draw(st.sampled_from(accounts))
            events.append((call, 0, ev(i, "invoke", "read", acct, call)))
            events.append((ret, 1, ev(i, "ok", "read", (acct, balances[acct]), ret)))
    events.sort(key=lambda t: (t[0], t[1]))
    return [e for _, _, e in events], initial


@settings(max_examples=100, deadline=None)
@given(bank_histories())
def test_histories_from_a_real_sequential_execution_are_accepted(
        case: tuple[list[dict[str, Any]], dict[str, int]]) -> None:
    history, initial = case
    r = check_bank(history, initial)
    assert r.ok, [k.detail for k in r.keys.values()]


def _replay_witness(history: list[dict[str, Any]], initial: dict[str, int],
                    r: LinearizabilityResult) -> None:
    """The order the checker returns is itself a legal, real-time-respecting execution."""
    ops = {o.index: o for o in pair_operations(history)}
    for acct, kr in r.keys.items():
        balance = initial.get(str(acct), 0)
        for i, a in enumerate(kr.order):
            assert not any(ops[b].ret < ops[a].call for b in kr.order[i + 1:])
            o = ops[a]
            if o.op == "transfer":
                src, dst, amount = o.arg
                balance += (amount if dst == acct else 0) - (amount if src == acct else 0)
                assert balance >= 0
            else:
                assert o.result[1] == balance
        completed = {o.index for o in ops.values() if o.completed and (
            o.arg == acct if o.op == "read" else acct in o.arg[:2])}
        assert completed <= set(kr.order)


@settings(max_examples=60, deadline=None)
@given(bank_histories())
def test_the_returned_linearization_replays_legally(
        case: tuple[list[dict[str, Any]], dict[str, int]]) -> None:
    history, initial = case
    r = check_bank(history, initial)
    assert r.ok
    _replay_witness(history, initial, r)
