"""Properties over random bytecode (Hypothesis).

* The interpreter raises nothing but VM errors, and those only become failed results: any
  other exception escaping ``Machine.execute`` fails the test.
* The runtime always terminates within its gas with a result, for deployments and calls.
* The same transactions on two fresh states give identical receipts and state commitments.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.receipt import Log, Receipt
from chain.runtime import CallResult
from chain.vm import VMRuntime
from chain.vm.assembler import loader_for
from chain.vm.errors import VMError
from chain.vm.host import Message, VMConfig
from chain.vm.interpreter import Machine
from chain.vm.opcodes import OPCODES, Op
from tests.chain.vm.helpers import CALLER, CONTRACT, CTX, FUNDS, Chain, fresh_state

OTHER = b"\x0b" * 20
_PLAIN = sorted(b for b in OPCODES if not Op.PUSH1 <= b <= Op.PUSH32)

small_push = st.integers(0, 80).map(lambda v: bytes([Op.PUSH1, v]))  # offsets, jump targets
instruction = st.one_of(
    st.sampled_from(_PLAIN).map(lambda b: bytes([b])),
    st.sampled_from(_PLAIN).map(lambda b: bytes([b])),
    small_push,
    small_push,
    st.sampled_from([0, 1, 32, 256, 65535, 1 << 160, (1 << 256) - 1]).map(
        lambda v: bytes([Op.PUSH32]) + v.to_bytes(32, "big")
    ),
    st.binary(min_size=1, max_size=3),  # anything, including undefined bytes and cut PUSHes
    st.just(bytes([Op.ADDRESS])),
    st.just(bytes([Op.JUMPDEST])),
)


def _program(prelude: list[bytes], body: list[bytes], loop: bool) -> bytes:
    code = b"".join(prelude + body)
    # Optionally loop back to a JUMPDEST at 0: runs until gas, steps or a fault stop it.
    return bytes([Op.JUMPDEST]) + code + bytes([Op.PUSH1, 0, Op.JUMP]) if loop else code


# A few pushes first, so that most programs get past their first instructions.
bytecode = st.builds(
    _program,
    st.lists(small_push, max_size=12),
    st.lists(instruction, max_size=48),
    st.booleans(),
)
SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(code=bytecode, data=st.binary(max_size=70), value=st.integers(0, 3), gas=st.integers(0, 60_000))
def test_random_code_only_ever_fails_with_vm_errors(
    code: bytes, data: bytes, value: int, gas: int
) -> None:
    state = fresh_state({CALLER: FUNDS, CONTRACT: 5, OTHER: 5})
    state.set_code(CONTRACT, code)  # so CALL to ADDRESS recurses into the same code
    state.set_code(OTHER, code[::-1])
    machine = Machine(state, CTX, VMConfig(call_depth_max=4, steps_max=20_000))
    result = machine.execute(Message(CALLER, CONTRACT, value, data, gas, code))
    assert 0 <= result.gas_left <= gas
    assert machine.steps <= 20_000
    if result.success:
        assert result.fault is None and result.reason == ""
    else:
        assert result.reason
        assert result.fault is None or isinstance(result.fault, VMError)
        if result.fault is not None:
            assert result.gas_left == 0


def _run_pair(code: bytes, data: bytes, amount: int) -> tuple[list[Receipt], bytes]:
    chain = Chain(config=VMConfig(call_depth_max=4, steps_max=20_000))
    receipts = [chain.send("alice", b"", data=code, gas_limit=300_000, amount=amount)]
    deployed = bytes(receipts[0].contract_address)
    receipts.append(chain.send("bob", b"", data=loader_for(code), gas_limit=400_000))
    runtime_at = bytes(receipts[1].contract_address)
    for target in (deployed, runtime_at):
        if target:
            receipts.append(chain.send("bob", target, data=data, gas_limit=150_000, amount=amount))
    for r in receipts:
        assert r.gas_used <= 400_000
        assert r.succeeded == (r.reason == b"")
    return receipts, chain.state.commit().commitment


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(code=bytecode, data=st.binary(max_size=70), amount=st.integers(0, 2))
def test_runtime_terminates_within_gas_and_is_deterministic(
    code: bytes, data: bytes, amount: int
) -> None:
    first, root_a = _run_pair(code, data, amount)
    second, root_b = _run_pair(code, data, amount)
    assert [_encode(r) for r in first] == [_encode(r) for r in second]
    assert root_a == root_b


def _encode(receipt: Receipt) -> bytes:
    from chain.encoding import encode

    return encode(receipt)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(code=bytecode, data=st.binary(max_size=40), gas=st.integers(0, 80_000))
def test_runtime_hook_returns_a_call_result_within_its_gas(code: bytes, data: bytes, gas: int) -> None:
    chain = Chain(config=VMConfig(call_depth_max=4, steps_max=20_000))
    runtime = chain.executor.runtime
    assert isinstance(runtime, VMRuntime)
    created = runtime.create(chain.state, CTX, chain.tx("alice", b"", data=code), gas)
    assert isinstance(created, CallResult)
    assert 0 <= created.gas_used <= gas
    assert created.success == (created.reason == "") == (len(created.contract_address) == 20)
    chain.state.set_code(CONTRACT, code)
    called = runtime.call(chain.state, CTX, chain.tx("bob", CONTRACT, data=data), gas)
    assert isinstance(called, CallResult)
    assert 0 <= called.gas_used <= gas
    assert called.contract_address == b""
    assert all(isinstance(log, Log) for log in called.logs)
