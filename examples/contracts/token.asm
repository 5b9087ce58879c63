; Token: a fixed supply minted to the deployer, balances in a mapping, transfers with events.
;
; Storage: slot 0 = total supply; balance of A at slot sha256(A as a 32-byte word).
; ABI (selector byte, then 32-byte arguments; see README.md):
;   0x01 transfer(to, amount) -> 1; reverts with "insufficient balance" when the caller
;                                holds less than amount; emits Transfer(from, to) with data amount
;   0x02 balance_of(addr)      -> balance
;   0x03 total_supply()        -> supply
; Event Transfer: LOG3 topics [sha256("Transfer"), from, to], data = amount (32 bytes).
; The constructor mints SUPPLY to the deployer and emits Transfer(0, deployer).

.const SUPPLY 1000000
.const TRANSFER 0x01
.const BALANCE_OF 0x02
.const TOTAL_SUPPLY 0x03
.const TRANSFER_TOPIC 0xdde8bef78cbb720683fa1fe76bfb900592099ed4346ed995bcbc514e9aa67256 ; sha256("Transfer")
.const ADDRESS_MASK 0xffffffffffffffffffffffffffffffffffffffff
.const INSUFFICIENT 0x696e73756666696369656e742062616c616e6365 ; "insufficient balance"

; ---- constructor (runs once at deployment) ----
    PUSH SUPPLY
    PUSH 0
    SSTORE                  ; total supply
    CALLER
    PUSH 0
    MSTORE
    PUSH SUPPLY
    PUSH 32
    PUSH 0
    SHA256                  ; [SUPPLY, balance slot of the deployer]
    SSTORE
    PUSH SUPPLY
    PUSH 0
    MSTORE                  ; event data: the amount
    CALLER                  ; topic 2: to
    PUSH 0                  ; topic 1: from (nobody)
    PUSH TRANSFER_TOPIC
    PUSH 32
    PUSH 0
    LOG3
    PUSH @runtime.size      ; return the runtime code below
    DUP1
    PUSH @runtime.offset
    PUSH 0
    CODECOPY
    PUSH 0
    RETURN

.runtime
    PUSH 0
    CALLDATALOAD
    PUSH 248
    SHR                     ; [selector]
    CALLVALUE
    PUSH @fail
    JUMPI                   ; the token holds no native value
    DUP1
    PUSH TRANSFER
    EQ
    PUSH @transfer
    JUMPI
    DUP1
    PUSH BALANCE_OF
    EQ
    PUSH @balance_of
    JUMPI
    DUP1
    PUSH TOTAL_SUPPLY
    EQ
    PUSH @total_supply
    JUMPI
fail:
    PUSH 0
    PUSH 0
    REVERT

transfer:
    PUSH @debit
    CALLER
    PUSH @balance_slot
    JUMP
debit:                      ; [sel, from_slot]
    DUP1
    SLOAD                   ; [sel, from_slot, from_balance]
    PUSH 33
    CALLDATALOAD            ; [sel, from_slot, from_balance, amount]
    DUP1
    DUP3
    LT                      ; from_balance < amount ?
    PUSH @insufficient
    JUMPI
    SWAP1
    SUB                     ; [sel, from_slot, from_balance - amount]
    SWAP1
    SSTORE                  ; written before reading the recipient: self-transfers stay exact
    PUSH @credit
    PUSH 1
    CALLDATALOAD
    PUSH ADDRESS_MASK
    AND
    PUSH @balance_slot
    JUMP
credit:                     ; [sel, to_slot]
    DUP1
    SLOAD
    PUSH 33
    CALLDATALOAD
    ADD                     ; cannot overflow: balances sum to SUPPLY
    SWAP1
    SSTORE
    PUSH 33
    CALLDATALOAD
    PUSH 0
    MSTORE                  ; event data: the amount
    PUSH 1
    CALLDATALOAD
    PUSH ADDRESS_MASK
    AND                     ; topic 2: to
    CALLER                  ; topic 1: from
    PUSH TRANSFER_TOPIC
    PUSH 32
    PUSH 0
    LOG3
    PUSH 1
    PUSH @return_word
    JUMP

insufficient:
    PUSH INSUFFICIENT
    PUSH 0
    MSTORE
    PUSH 20
    PUSH 12
    REVERT                  ; revert data: "insufficient balance"

balance_of:
    PUSH @loaded
    PUSH 1
    CALLDATALOAD
    PUSH ADDRESS_MASK
    AND
    PUSH @balance_slot
    JUMP
loaded:
    SLOAD
    PUSH @return_word
    JUMP

total_supply:
    PUSH 0
    SLOAD
return_word:                ; [..., word] -> RETURN word
    PUSH 0
    MSTORE
    PUSH 32
    PUSH 0
    RETURN

balance_slot:               ; [..., return_to, address] -> [..., slot]
    PUSH 0
    MSTORE
    PUSH 32
    PUSH 0
    SHA256
    SWAP1
    JUMP
