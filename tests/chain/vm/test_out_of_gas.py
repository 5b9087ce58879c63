"""Out of gas at every step: each gas limit below the need fails cleanly, the exact one works.

A small contract (a loop, SLOAD/SSTORE, TRANSFER, LOG, memory, RETURN) is called through the
real executor with every gas limit from 0 up to what it needs. Below the intrinsic gas the
transaction is rejected and nothing changes; from there up, it fails with "out of gas at pc
N", burns its whole gas limit as fee, and leaves every other piece of state as it was; at the
exact amount it succeeds.
"""

from __future__ import annotations

from chain.params import intrinsic_gas
from chain.tx import Transaction
from chain.vm.assembler import assemble
from chain.vm.disassembler import instructions
from tests.chain.vm.helpers import PROPOSER, Chain

SMALL = """
    PUSH 3                  ; loop counter
loop:
    PUSH 1
    SWAP1
    SUB                     ; counter - 1
    DUP1
    PUSH @loop
    JUMPI
    POP
    PUSH 0
    SLOAD
    PUSH 1
    ADD
    DUP1
    PUSH 0
    SSTORE                  ; slot 0 += 1
    PUSH 0
    MSTORE
    PUSH 1
    CALLER
    TRANSFER                ; 1 unit back to the caller
    PUSH 32
    PUSH 0
    LOG0
    PUSH 32
    PUSH 0
    RETURN
"""
SLOT0 = bytes(32)


def _unsigned(chain: Chain, tx: Transaction, gas_limit: int) -> Transaction:
    # The executor is told signatures are verified, so a copy with another gas limit works
    # without re-signing (the sweep runs tens of thousands of transactions).
    return Transaction(
        tx.chain_id, tx.nonce, tx.sender, tx.to, tx.amount, tx.fee, gas_limit, tx.data,
        tx.signature,
    )  # fmt: skip


def test_every_gas_limit_below_the_need_fails_cleanly_and_the_exact_need_succeeds() -> None:
    chain = Chain()
    contract = chain.deploy("alice", SMALL)
    chain.state.add_balance(contract, 1_000)
    assert chain.send("bob", contract, data=b"first").succeeded  # slot 0 becomes non-zero
    bob = chain.addr("bob")
    base = chain.tx("bob", contract, data=b"second", fee=3)
    intrinsic = intrinsic_gas(len(base.data), is_creation=False)

    def observe() -> tuple[int, int, int, int, bytes]:
        s = chain.state
        return (s.balance(bob), s.nonce(bob), s.balance(contract), s.balance(PROPOSER),
                s.get_storage(contract, SLOT0))  # fmt: skip

    before = observe()
    mark = chain.state.snapshot()
    ok = chain.apply(base)
    assert ok.succeeded, ok.reason_text
    need = ok.gas_used
    chain.state.revert(mark)
    assert need > intrinsic + 5_000
    pcs = set()
    for gas_limit in range(need + 1):
        mark = chain.state.snapshot()
        receipt = chain.apply(_unsigned(chain, base, gas_limit))
        after = observe()
        chain.state.revert(mark)
        if gas_limit < intrinsic:
            assert not receipt.succeeded and receipt.gas_used == 0
            assert after == before
            continue
        fee = gas_limit * 3
        if gas_limit == need:
            assert receipt.succeeded, receipt.reason_text
            assert after[2] == before[2] - 1
            assert int.from_bytes(after[4], "big") == int.from_bytes(before[4], "big") + 1
            continue
        reason = receipt.reason_text
        assert not receipt.succeeded, gas_limit
        assert reason.startswith("out of gas at pc "), (gas_limit, reason)
        pcs.add(int(reason.removeprefix("out of gas at pc ")))
        assert receipt.gas_used == gas_limit and receipt.fee_paid == fee
        assert receipt.logs == () and receipt.return_data == b""
        assert after == (before[0] - fee, before[1] + 1, before[2], before[3] + fee, before[4])
    # Every instruction of the contract that costs gas was, at some limit, the one that ran
    # out (RETURN costs nothing here: its memory is already paid for).
    code = assemble(SMALL).code
    assert pcs == {ins.pc for ins in instructions(code) if ins.info and ins.info.name != "RETURN"}


def test_deployment_out_of_gas_for_storing_code_leaves_no_contract() -> None:
    from chain.vm.assembler import deploy_code
    from chain.vm.runtime import contract_address

    chain = Chain()
    alice = chain.addr("alice")
    data = deploy_code(SMALL)
    probe = chain.tx("alice", b"", data=data)
    mark = chain.state.snapshot()
    need = chain.apply(probe).gas_used
    chain.state.revert(mark)
    address = contract_address(alice, probe.nonce)
    short = chain.apply(_unsigned(chain, probe, need - 1))
    assert not short.succeeded
    assert short.reason_text == f"out of gas storing {len(assemble(SMALL).code)} bytes of code"
    assert chain.state.get_code(address) == b""
    assert short.contract_address == b""
