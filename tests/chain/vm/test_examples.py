"""The example contracts, deployed and called through the real executor with signed txs."""

from __future__ import annotations

import hashlib

from chain.vm.abi import address_word, decode_words, encode_call
from chain.vm.assembler import deploy_code
from tests.chain.vm.helpers import CTX, FUNDS, Chain, example

INC, GET, ADD_N = 0x01, 0x02, 0x03
TRANSFER, BALANCE_OF, TOTAL_SUPPLY = 0x01, 0x02, 0x03
DEPOSIT, RELEASE, REFUND, STATUS = 0x01, 0x02, 0x03, 0x04
SUPPLY = 1_000_000


def topic(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def test_counter_increments_adds_reads_and_emits() -> None:
    chain = Chain()
    counter = chain.deploy("alice", example("counter"))
    r = chain.send("bob", counter, data=encode_call(INC))
    assert r.succeeded and decode_words(r.return_data) == [1]
    assert [(log.address, log.topics) for log in r.logs] == [(counter, (topic("Incremented"),))]
    r = chain.send("carol", counter, data=encode_call(ADD_N, 41))
    assert decode_words(r.return_data) == [42]
    r = chain.send("alice", counter, data=encode_call(GET))
    assert r.succeeded and decode_words(r.return_data) == [42] and r.logs == ()
    r = chain.send("alice", counter, data=encode_call(0x77))
    assert not r.succeeded and r.reason_text.startswith("reverted at pc")


def test_read_only_query_sees_state_and_changes_nothing() -> None:
    chain = Chain()
    counter = chain.deploy("alice", example("counter"))
    chain.send("bob", counter, data=encode_call(INC))
    runtime = chain.executor.runtime
    out = runtime.query(chain.state, CTX, to=counter, data=encode_call(INC), gas=100_000)  # type: ignore[union-attr]
    assert out.success and decode_words(out.return_data) == [2]
    out = runtime.query(chain.state, CTX, to=counter, data=encode_call(GET), gas=100_000)  # type: ignore[union-attr]
    assert decode_words(out.return_data) == [1]


def _balance(chain: Chain, token: bytes, who: bytes) -> int:
    r = chain.send("carol", token, data=encode_call(BALANCE_OF, address_word(who)))
    assert r.succeeded, r.reason_text
    return decode_words(r.return_data)[0]


def test_token_mints_to_deployer_transfers_and_emits() -> None:
    chain = Chain()
    alice, bob = chain.addr("alice"), chain.addr("bob")
    nonce = chain.state.nonce(alice)
    deploy = chain.send("alice", b"", data=deploy_code(example("token")))
    assert deploy.succeeded, deploy.reason_text
    token = bytes(deploy.contract_address)
    assert chain.state.nonce(alice) == nonce + 1
    (minted,) = deploy.logs
    assert minted.topics == (topic("Transfer"), bytes(32), address_word(alice))
    assert decode_words(minted.data) == [SUPPLY]
    assert _balance(chain, token, alice) == SUPPLY

    r = chain.send("alice", token, data=encode_call(TRANSFER, address_word(bob), 300))
    assert r.succeeded and decode_words(r.return_data) == [1]
    (event,) = r.logs
    assert event.address == token
    assert event.topics == (topic("Transfer"), address_word(alice), address_word(bob))
    assert decode_words(event.data) == [300]
    assert _balance(chain, token, alice) == SUPPLY - 300
    assert _balance(chain, token, bob) == 300

    r = chain.send("bob", token, data=encode_call(TRANSFER, address_word(bob), 300))
    assert r.succeeded  # a self-transfer keeps the balance exact
    assert _balance(chain, token, bob) == 300
    r = chain.send("carol", token, data=encode_call(TOTAL_SUPPLY))
    assert decode_words(r.return_data) == [SUPPLY]


def test_token_transfer_beyond_balance_reverts_with_reason_and_keeps_fee() -> None:
    chain = Chain()
    alice, bob = chain.addr("alice"), chain.addr("bob")
    token = chain.deploy("alice", example("token"))
    chain.send("alice", token, data=encode_call(TRANSFER, address_word(bob), 10))
    bob_native = chain.state.balance(bob)
    r = chain.send("bob", token, data=encode_call(TRANSFER, address_word(alice), 11))
    assert not r.succeeded
    assert r.reason_text.startswith("reverted at pc")
    assert r.return_data == b"insufficient balance"
    assert r.logs == ()
    assert r.fee_paid == r.gas_used > 0
    assert chain.state.balance(bob) == bob_native - r.fee_paid
    assert _balance(chain, token, bob) == 10
    assert _balance(chain, token, alice) == SUPPLY - 10


def test_token_refuses_native_value() -> None:
    chain = Chain()
    token = chain.deploy("alice", example("token"))
    r = chain.send("alice", token, data=encode_call(TOTAL_SUPPLY), amount=5)
    assert not r.succeeded
    assert chain.state.balance(token) == 0


def _status(chain: Chain, escrow: bytes) -> int:
    r = chain.send("carol", escrow, data=encode_call(STATUS))
    return decode_words(r.return_data)[0]


def test_escrow_release_pays_the_beneficiary() -> None:
    chain = Chain(names=("alice", "bob", "carol", "dave"))
    alice, bob, carol = chain.addr("alice"), chain.addr("bob"), chain.addr("carol")
    escrow = chain.deploy("dave", example("escrow"))
    data = encode_call(DEPOSIT, address_word(bob), address_word(carol))
    r = chain.send("alice", escrow, data=data, amount=5_000)
    assert r.succeeded, r.reason_text
    assert chain.state.balance(escrow) == 5_000 and _status(chain, escrow) == 1
    assert r.logs[0].topics == (topic("Deposited"), address_word(alice))

    assert not chain.send("alice", escrow, data=data, amount=1).succeeded  # already funded
    assert not chain.send("bob", escrow, data=encode_call(RELEASE)).succeeded  # not allowed
    bob_before = chain.state.balance(bob)
    r = chain.send("carol", escrow, data=encode_call(RELEASE))
    assert r.succeeded, r.reason_text
    assert chain.state.balance(bob) == bob_before + 5_000
    assert chain.state.balance(escrow) == 0 and _status(chain, escrow) == 2
    assert r.logs[0].topics == (topic("Released"), address_word(bob))
    assert not chain.send("alice", escrow, data=encode_call(REFUND)).succeeded


def test_escrow_refund_returns_value_to_the_depositor() -> None:
    chain = Chain()
    alice, bob = chain.addr("alice"), chain.addr("bob")
    escrow = chain.deploy("alice", example("escrow"))
    data = encode_call(DEPOSIT, address_word(bob), address_word(alice))
    assert chain.send("alice", escrow, data=data, amount=700).succeeded
    alice_before = chain.state.balance(alice)
    r = chain.send("bob", escrow, data=encode_call(REFUND))
    assert r.succeeded, r.reason_text
    assert chain.state.balance(alice) == alice_before + 700
    assert _status(chain, escrow) == 3


def test_escrow_deposit_needs_value() -> None:
    chain = Chain()
    escrow = chain.deploy("alice", example("escrow"))
    data = encode_call(DEPOSIT, address_word(chain.addr("bob")), address_word(chain.addr("carol")))
    r = chain.send("alice", escrow, data=data)
    assert not r.succeeded
    assert _status(chain, escrow) == 0
    assert chain.state.balance(chain.addr("bob")) == FUNDS
