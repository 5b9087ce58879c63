"""Linearizability checker: a bounded Wing-Gong search per key over recorded client histories.

Theory of operation
-------------------
A history is a list of events ``{process, type, op, value, time}`` where ``type`` is
``invoke``, ``ok`` (completed), ``fail`` (definitely did not happen) or ``info`` (unknown:
the client timed out or crashed). Each process has at most one operation open at a time;
an invoke is paired with the next completion of the same process. A ``fail`` operation is
dropped; an ``info`` operation (or one never completed) may have taken effect at any point
after its invoke, or never, so its return time is infinite and it need not be placed.

Wing & Gong's search builds a total order one operation at a time. An operation may come
next iff it was invoked before every still-unplaced *completed* operation returned (nothing
unplaced strictly precedes it in real time) and the sequential model accepts it in the
current state (a read must return the current value). The search backtracks on a dead end;
Lowe's memoization skips any ``(placed set, model state)`` pair already explored, which
makes typical histories cheap. The history is linearizable iff every completed operation is
placed.

Linearizability is *local* (Herlihy & Wing): a history of single-key operations is
linearizable iff each key's sub-history is, so :func:`check_history` checks keys
separately, which keeps each search small. A bank transfer touches two accounts; it is
split into a debit on one and a credit on the other (:func:`check_bank`), which checks each
account's balance sequence (stale reads, lost updates, overdrafts) but not the atomicity of
the pair (a separate total-balance check covers that).

Bounds: a key with more than ``ops_max`` operations, or a search that visits more than
``states_max`` configurations, gives a clear ``too-large`` result rather than an answer.

Who calls it: the testnet checkers over client histories, tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BANK_MODEL",
    "INVALID",
    "REGISTER_MODEL",
    "HistoryError",
    "KeyResult",
    "LinearizabilityResult",
    "Model",
    "Operation",
    "check_bank",
    "check_history",
    "check_operations",
    "pair_operations",
]

OPS_MAX = 400
STATES_MAX = 200_000
_TYPES = ("invoke", "ok", "fail", "info")


class HistoryError(ValueError):
    """The recorded history itself is malformed (unknown type, completion without invoke)."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One paired operation: ``call``/``ret`` times (``ret`` is ``inf`` when unknown)."""

    index: int
    process: Hashable
    op: str
    arg: Any
    result: Any
    call: float
    ret: float

    @property
    def completed(self) -> bool:
        return not math.isinf(self.ret)


#: A sequential model: ``step(state, op, arg, result, completed) -> new state | INVALID``
#: (:data:`INVALID`: the model cannot produce that result in that state). ``completed`` is False for
#: an operation whose result is unknown (the result must then not be checked).
class _Invalid:
    """The type of :data:`INVALID` (a state that no model uses)."""


INVALID = _Invalid()
Step = Callable[[Hashable, str, Any, Any, bool], Hashable]


@dataclass(frozen=True, slots=True)
class Model:
    """A sequential specification: an initial state and a step function."""

    name: str
    initial: Hashable
    step: Step


def _register_step(state: Hashable, op: str, arg: Any, result: Any,
                   completed: bool) -> Hashable:
    if op == "write":
        written: Hashable = arg
        return written
    if op == "read":
        return state if (not completed or result == state) else INVALID
    if op == "cas":
        old, new = arg
        return new if state == old else INVALID
    raise HistoryError(f"register: unknown op {op!r}")


def _account_step(state: Hashable, op: str, arg: Any, result: Any,
                  completed: bool) -> Hashable:
    assert isinstance(state, int)
    if op == "add":
        new = state + int(arg)
        return new if new >= 0 else INVALID      # an applied debit never overdraws
    if op == "read":
        return state if (not completed or result == state) else INVALID
    raise HistoryError(f"account: unknown op {op!r}")


REGISTER_MODEL = Model("register", None, _register_step)
BANK_MODEL = Model("account", 0, _account_step)


@dataclass(frozen=True, slots=True)
class KeyResult:
    """The verdict for one key: ``linearizable``, ``not-linearizable`` or ``too-large``."""

    key: Hashable
    status: str
    operations: int
    explored: int
    order: tuple[int, ...] = ()         # a linearization (operation indexes), when found
    detail: str = ""


@dataclass(slots=True)
class LinearizabilityResult:
    """Per-key verdicts; ``ok`` only when every key is linearizable."""

    keys: dict[Hashable, KeyResult] = field(default_factory=dict)

    @property
    def status(self) -> str:
        statuses = {r.status for r in self.keys.values()}
        for s in ("not-linearizable", "too-large"):
            if s in statuses:
                return s
        return "linearizable"

    @property
    def ok(self) -> bool:
        return self.status == "linearizable"

    def violations(self) -> list[KeyResult]:
        return [r for r in self.keys.values() if r.status == "not-linearizable"]


def pair_operations(history: Iterable[Mapping[str, Any]]) -> list[Operation]:
    """Pair invokes with completions; drop ``fail``; open or ``info`` ops never return.

    Raises:
        HistoryError: unknown event type, a completion without an invoke, or a second
            invoke while the process still has one open.
    """
    open_ops: dict[Hashable, tuple[Mapping[str, Any], int]] = {}
    done: list[tuple[int, Operation | None]] = []
    for position, ev in enumerate(history):
        kind, proc = ev.get("type"), ev.get("process")
        if kind not in _TYPES:
            raise HistoryError(f"event {position}: unknown type {kind!r}")
        if kind == "invoke":
            if proc in open_ops:
                raise HistoryError(f"event {position}: process {proc!r} invoked twice")
            open_ops[proc] = (ev, position)
            continue
        if proc not in open_ops:
            raise HistoryError(f"event {position}: {kind} without an invoke by {proc!r}")
        inv, at = open_ops.pop(proc)
        if kind == "fail":
            continue
        ret = float(ev["time"]) if kind == "ok" else math.inf
        result = ev.get("value") if kind == "ok" else None
        done.append((at, Operation(at, proc, str(inv["op"]), inv.get("value"), result,
                                   float(inv["time"]), ret)))
    for inv, at in open_ops.values():
        done.append((at, Operation(at, inv.get("process"), str(inv["op"]), inv.get("value"),
                                   None, float(inv["time"]), math.inf)))
    done.sort(key=lambda t: t[0])
    return [op for _, op in done if op is not None]


def check_operations(key: Hashable, ops: Sequence[Operation], model: Model,
                     ops_max: int = OPS_MAX, states_max: int = STATES_MAX) -> KeyResult:
    """Wing-Gong search with memoization over one key's operations."""
    ops = [o for o in ops if o.completed or o.op not in ("read",)]   # unknown reads: no effect
    n = len(ops)
    if n > ops_max:
        return KeyResult(key, "too-large", n, 0, detail=f"{n} operations > ops_max {ops_max}")
    must = 0
    for i, o in enumerate(ops):
        if o.completed:
            must |= 1 << i
    seen: set[tuple[int, Hashable]] = set()
    # Iterative DFS: stack of (placed mask, state, order).
    stack: list[tuple[int, Hashable, tuple[int, ...]]] = [(0, model.initial, ())]
    explored = 0
    deepest: tuple[int, ...] = ()
    while stack:
        placed, state, order = stack.pop()
        if placed & must == must:
            return KeyResult(key, "linearizable", n, explored,
                             tuple(ops[i].index for i in order))
        if (placed, state) in seen:
            continue
        seen.add((placed, state))
        explored += 1
        if explored > states_max:
            return KeyResult(key, "too-large", n, explored,
                             detail=f"search visited more than states_max {states_max}")
        if len(order) > len(deepest):
            deepest = order
        horizon = min((o.ret for i, o in enumerate(ops) if not placed >> i & 1), default=math.inf)
        for i in range(n - 1, -1, -1):
            o = ops[i]
            if placed >> i & 1 or o.call > horizon:
                continue
            new = model.step(state, o.op, o.arg, o.result, o.completed)
            if new is not INVALID:
                stack.append((placed | 1 << i, new, (*order, i)))
    stuck = [ops[i] for i in range(n) if ops[i].completed and i not in deepest]
    head = ", ".join(f"{o.process}:{o.op}({o.arg!r})->{o.result!r}@[{o.call:g},{o.ret:g}]"
                     for o in stuck[:3])
    return KeyResult(key, "not-linearizable", n, explored,
                     tuple(ops[i].index for i in deepest),
                     detail=f"no order places {len(stuck)} completed op(s), e.g. {head}")


def check_history(history: Iterable[Mapping[str, Any]], model: Model,
                  key_of: Callable[[Operation], Hashable] = lambda o: None,
                  ops_max: int = OPS_MAX, states_max: int = STATES_MAX
                  ) -> LinearizabilityResult:
    """Check a history key by key (``key_of`` picks an operation's key; default one key)."""
    by_key: dict[Hashable, list[Operation]] = {}
    for o in pair_operations(history):
        by_key.setdefault(key_of(o), []).append(o)
    out = LinearizabilityResult()
    for key, ops in by_key.items():
        out.keys[key] = check_operations(key, ops, model, ops_max, states_max)
    return out


def check_bank(history: Iterable[Mapping[str, Any]], initial: Mapping[Any, int],
               ops_max: int = OPS_MAX, states_max: int = STATES_MAX) -> LinearizabilityResult:
    """Check a bank history per account.

    Events: ``op="transfer"`` with ``value=(from, to, amount)`` or ``(from, to, amount, fee)``
    (the sender pays ``amount + fee``, the recipient gets ``amount``; a transfer to oneself
    is one debit of ``fee``); ``op="read"`` with invoke ``value=account`` and ok
    ``value=(account, balance)`` (or just the balance).

    Raises:
        HistoryError: malformed events.
    """
    per: dict[Hashable, list[Operation]] = {}
    for o in pair_operations(history):
        if o.op == "transfer":
            src, dst, amount, fee = (*o.arg, 0) if len(o.arg) == 3 else o.arg
            if src == dst:
                per.setdefault(src, []).append(
                    Operation(o.index, o.process, "add", -int(fee), None, o.call, o.ret))
                continue
            per.setdefault(src, []).append(
                Operation(o.index, o.process, "add", -int(amount) - int(fee), None, o.call, o.ret))
            per.setdefault(dst, []).append(
                Operation(o.index, o.process, "add", int(amount), None, o.call, o.ret))
        elif o.op == "read":
            res = o.result[1] if isinstance(o.result, tuple | list) else o.result
            per.setdefault(o.arg, []).append(
                Operation(o.index, o.process, "read", o.arg, res, o.call, o.ret))
        else:
            raise HistoryError(f"bank: unknown op {o.op!r}")
    out = LinearizabilityResult()
    for account, ops in per.items():
        model = Model("account", int(initial.get(account, 0)), _account_step)
        out.keys[account] = check_operations(account, ops, model, ops_max, states_max)
    return out
