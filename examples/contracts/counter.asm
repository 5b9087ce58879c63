; Counter: a number in storage slot 0 that anyone can increase and read.
;
; ABI (call data = selector byte, then 32-byte arguments; see README.md):
;   0x01 increment()   -> new value (32 bytes); emits Incremented(new value)
;   0x02 get()         -> value (32 bytes)
;   0x03 add(n)        -> new value (32 bytes); emits Incremented(new value)
; Any other selector reverts. No constructor: `phalanx contract build` adds the loader.

.const INCREMENT 0x01
.const GET 0x02
.const ADD_N 0x03
.const INCREMENTED 0xc9ff444cc091e1117cc8c6605c0f2e5357438dff690cd5221adbee61af5c6255 ; sha256("Incremented")

    PUSH 0
    CALLDATALOAD
    PUSH 248
    SHR                     ; [selector]
    DUP1
    PUSH INCREMENT
    EQ
    PUSH @increment
    JUMPI
    DUP1
    PUSH GET
    EQ
    PUSH @get
    JUMPI
    DUP1
    PUSH ADD_N
    EQ
    PUSH @add
    JUMPI
    PUSH 0
    PUSH 0
    REVERT                  ; unknown selector

increment:
    PUSH 1
    PUSH @apply
    JUMP
add:
    PUSH 1
    CALLDATALOAD            ; [selector, n]
apply:
    PUSH 0
    SLOAD
    ADD                     ; [selector, value + n]
    DUP1
    PUSH 0
    SSTORE                  ; slot 0 = value + n
    PUSH 0
    MSTORE                  ; memory[0..32] = value + n
    PUSH INCREMENTED
    PUSH 32
    PUSH 0
    LOG1
    PUSH 32
    PUSH 0
    RETURN

get:
    PUSH 0
    SLOAD
    PUSH 0
    MSTORE
    PUSH 32
    PUSH 0
    RETURN
