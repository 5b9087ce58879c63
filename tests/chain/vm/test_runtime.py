"""The runtime hook: addresses, deployment rules, value, read-only queries, receipts."""

from __future__ import annotations

import hashlib

from chain.vm import VMRuntime
from chain.vm.abi import decode_words, encode_call
from chain.vm.assembler import assemble, deploy_code, loader_for
from chain.vm.host import VMConfig
from chain.vm.interpreter import CodeCache
from chain.vm.runtime import contract_address, run_create
from tests.chain.vm.helpers import CALLER, CTX, FUNDS, Chain, example, fresh_state

COUNTER_GET = encode_call(0x02)


def test_contract_address_is_the_documented_hash() -> None:
    sender = bytes(range(20))
    expected = hashlib.sha256(b"phalanx/create" + sender + (7).to_bytes(8, "big")).digest()[:20]
    assert contract_address(sender, 7) == expected
    assert contract_address(sender, 8) != expected


def test_deploy_with_value_funds_the_contract_and_stores_runtime_code() -> None:
    chain = Chain()
    source = example("counter")
    address = chain.deploy("alice", source, amount=123)
    assert chain.state.balance(address) == 123
    assert chain.state.get_code(address) == deploy_code(source)[12:]


def test_deploy_to_a_used_address_fails_and_keeps_the_fee() -> None:
    chain = Chain()
    alice = chain.addr("alice")
    target = contract_address(alice, chain.state.nonce(alice))
    chain.state.set_code(target, b"\x00")
    r = chain.send("alice", b"", data=deploy_code(example("counter")))
    assert not r.succeeded
    assert r.reason_text == f"address 0x{target.hex()} is already in use"
    assert r.gas_used == r.fee_paid > 0  # the whole gas limit beyond intrinsic is burnt
    assert chain.state.get_code(target) == b"\x00"


def test_deployed_code_over_the_limit_fails() -> None:
    state = fresh_state({CALLER: FUNDS})
    config = VMConfig(code_bytes_max=30)
    out = run_create(
        state, CTX, sender=CALLER, nonce=0, value=5, init_code=assemble("PUSH 31\nPUSH 0\nRETURN").code,
        gas=100_000, config=config,
    )  # fmt: skip
    assert not out.success
    assert out.reason == "deployed code of 31 bytes exceeds 30"
    assert out.gas_used == 100_000
    assert state.get_code(contract_address(CALLER, 0)) == b""
    assert state.balance(CALLER) == FUNDS  # the value went back


def test_failing_init_code_leaves_no_contract_and_returns_the_value() -> None:
    chain = Chain()
    alice = chain.addr("alice")
    before = chain.state.balance(alice)
    r = chain.send("alice", b"", data=bytes([0x01]), amount=50)  # ADD on an empty stack
    assert not r.succeeded and r.reason_text == "stack underflow at pc 0 (ADD)"
    assert r.contract_address == b""
    assert chain.state.balance(alice) == before - r.fee_paid


def test_query_is_read_only_even_for_writing_methods() -> None:
    chain = Chain()
    counter = chain.deploy("alice", example("counter"))
    runtime = chain.executor.runtime
    commitment_probe = chain.state.get_storage(counter, bytes(32))
    for _ in range(3):
        out = runtime.query(chain.state, CTX, to=counter, data=encode_call(0x01), gas=50_000)  # type: ignore[union-attr]
        assert out.success and decode_words(out.return_data) == [1]
    assert chain.state.get_storage(counter, bytes(32)) == commitment_probe
    out = runtime.query(chain.state, CTX, to=counter, data=COUNTER_GET, gas=10)  # type: ignore[union-attr]
    assert not out.success and out.reason.startswith("out of gas at pc")


def test_call_value_is_returned_when_the_call_fails() -> None:
    chain = Chain()
    counter = chain.deploy("alice", example("counter"))
    bob = chain.addr("bob")
    before = chain.state.balance(bob)
    r = chain.send("bob", counter, data=encode_call(0x99), amount=1_000)
    assert not r.succeeded
    assert chain.state.balance(counter) == 0
    assert chain.state.balance(bob) == before - r.fee_paid


def test_running_code_over_the_limit_is_a_fault() -> None:
    state = fresh_state({CALLER: FUNDS})
    out = run_create(
        state, CTX, sender=CALLER, nonce=0, value=0, init_code=loader_for(bytes(20)) + bytes(20),
        gas=100_000, config=VMConfig(code_bytes_max=31),
    )  # fmt: skip
    assert out.reason == "code of 32 bytes exceeds 31"


def test_code_cache_is_bounded_lru_and_kept_by_the_runtime() -> None:
    cache = CodeCache(2)
    a, b, c = assemble("x:\nSTOP").code, assemble("PUSH1 0x5b\ny:").code, b"\x00"
    assert cache.jump_map(a) == b"\x01\x00"
    assert cache.jump_map(b) == b"\x00\x00\x01"  # the 0x5b inside PUSH data is not a target
    cache.jump_map(a)  # a is now the most recent
    cache.jump_map(c)
    assert len(cache) == 2
    assert cache.jump_map(a) is cache.jump_map(a)
    chain = Chain()
    counter = chain.deploy("alice", example("counter"))
    runtime = chain.executor.runtime
    assert isinstance(runtime, VMRuntime)
    cached = len(runtime.code_cache)
    for _ in range(3):
        assert chain.send("bob", counter, data=encode_call(0x01)).succeeded
    assert len(runtime.code_cache) == cached + 1  # the runtime code, analysed once
