; Escrow: a depositor locks value for a beneficiary; an arbiter decides.
;
; Storage: 0 = state (0 empty, 1 funded, 2 released, 3 refunded), 1 = depositor,
;          2 = beneficiary, 3 = arbiter, 4 = amount.
; ABI (selector byte, then 32-byte arguments; see README.md):
;   0x01 deposit(beneficiary, arbiter)  payable, only while empty, value must be > 0;
;                                       emits Deposited(depositor) with data amount
;   0x02 release()   arbiter or depositor: pays the amount to the beneficiary; emits Released
;   0x03 refund()    arbiter or beneficiary: pays the amount back to the depositor; emits Refunded
;   0x04 status()    -> state
; Anything else, value sent to a non-payable method, or a caller without the right reverts.
; No constructor: `phalanx contract build` adds the loader.

.const DEPOSIT 0x01
.const RELEASE 0x02
.const REFUND 0x03
.const STATUS 0x04
.const STATE 0
.const DEPOSITOR 1
.const BENEFICIARY 2
.const ARBITER 3
.const AMOUNT 4
.const ADDRESS_MASK 0xffffffffffffffffffffffffffffffffffffffff
.const DEPOSITED_TOPIC 0xc3b806d68595c8662bf3298fd737c492d1593fd57f23dbc114c0e2f7349be244 ; sha256("Deposited")
.const RELEASED_TOPIC 0xf33deea9b1009db3148f2614e5da59c03c6fe43df55972f3860d8b871e1b2ace ; sha256("Released")
.const REFUNDED_TOPIC 0x117f6a7cf0372277233d0477c1eb99523af847c2b8bdd41fc3cc53fab78bb80c ; sha256("Refunded")

    PUSH 0
    CALLDATALOAD
    PUSH 248
    SHR                     ; [selector]
    DUP1
    PUSH DEPOSIT
    EQ
    PUSH @deposit
    JUMPI
    CALLVALUE
    PUSH @fail
    JUMPI                   ; only deposit takes value
    DUP1
    PUSH RELEASE
    EQ
    PUSH @release
    JUMPI
    DUP1
    PUSH REFUND
    EQ
    PUSH @refund
    JUMPI
    DUP1
    PUSH STATUS
    EQ
    PUSH @status
    JUMPI
fail:
    PUSH 0
    PUSH 0
    REVERT

deposit:
    PUSH STATE
    SLOAD
    PUSH @fail
    JUMPI                   ; must be empty
    CALLVALUE
    ISZERO
    PUSH @fail
    JUMPI                   ; must carry value
    PUSH 1
    PUSH STATE
    SSTORE
    CALLER
    PUSH DEPOSITOR
    SSTORE
    PUSH 1
    CALLDATALOAD
    PUSH ADDRESS_MASK
    AND
    PUSH BENEFICIARY
    SSTORE
    PUSH 33
    CALLDATALOAD
    PUSH ADDRESS_MASK
    AND
    PUSH ARBITER
    SSTORE
    CALLVALUE
    PUSH AMOUNT
    SSTORE
    CALLVALUE
    PUSH 0
    MSTORE
    CALLER
    PUSH DEPOSITED_TOPIC
    PUSH 32
    PUSH 0
    LOG2
    STOP

release:
    PUSH STATE
    SLOAD
    PUSH 1
    EQ
    ISZERO
    PUSH @fail
    JUMPI                   ; must be funded
    CALLER
    PUSH ARBITER
    SLOAD
    EQ
    CALLER
    PUSH DEPOSITOR
    SLOAD
    EQ
    OR
    ISZERO
    PUSH @fail
    JUMPI                   ; arbiter or depositor only
    PUSH 2
    PUSH STATE
    SSTORE
    PUSH AMOUNT
    SLOAD
    PUSH BENEFICIARY
    SLOAD
    TRANSFER                ; amount to the beneficiary
    PUSH AMOUNT
    SLOAD
    PUSH 0
    MSTORE
    PUSH BENEFICIARY
    SLOAD
    PUSH RELEASED_TOPIC
    PUSH 32
    PUSH 0
    LOG2
    STOP

refund:
    PUSH STATE
    SLOAD
    PUSH 1
    EQ
    ISZERO
    PUSH @fail
    JUMPI                   ; must be funded
    CALLER
    PUSH ARBITER
    SLOAD
    EQ
    CALLER
    PUSH BENEFICIARY
    SLOAD
    EQ
    OR
    ISZERO
    PUSH @fail
    JUMPI                   ; arbiter or beneficiary only
    PUSH 3
    PUSH STATE
    SSTORE
    PUSH AMOUNT
    SLOAD
    PUSH DEPOSITOR
    SLOAD
    TRANSFER                ; amount back to the depositor
    PUSH AMOUNT
    SLOAD
    PUSH 0
    MSTORE
    PUSH DEPOSITOR
    SLOAD
    PUSH REFUNDED_TOPIC
    PUSH 32
    PUSH 0
    LOG2
    STOP

status:
    PUSH STATE
    SLOAD
    PUSH 0
    MSTORE
    PUSH 32
    PUSH 0
    RETURN
